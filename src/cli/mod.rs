//! The command line: its flags and subcommands (`args`); the client
//! commands that drive a running server over HTTP (`client` shared by
//! `jobs`, `watch`, `recordings`, `schedules`, `nodes` and `health`, printed through
//! `table`); and what needs no server: `config check`, completions and the
//! manual.

pub mod args;
pub mod client;
pub mod config;
pub mod generate;
pub mod health;
pub mod jobs;
pub mod nodes;
pub mod recordings;
pub mod schedules;
pub mod table;
pub mod watch;
