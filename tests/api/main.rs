//! The integration suite: every test starts the real server binary on a real
//! port and drives it over HTTP, with real recorder processes and signals,
//! on SQLite and on PostgreSQL; input validation alone (`validation`) drives
//! the real router in-process, row by row.

mod helpers;

mod auth;
mod bench_smoke;
mod cli;
mod cli_tools;
mod dashboard;
mod errors;
mod events;
mod ffmpeg;
mod host;
mod lifecycle;
mod media;
mod metrics;
mod nodes;
mod openapi;
mod pipeline;
mod reconcile;
mod restart;
mod search;
mod shutdown;
mod validation;
mod webhooks;
