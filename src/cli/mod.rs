//! The command line: its flags and subcommands (`args`), the client
//! subcommands that drive a running server over HTTP (`client`, `nodes`),
//! and the container health check (`health`).

pub mod args;
pub mod client;
pub mod health;
pub mod nodes;
