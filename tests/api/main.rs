//! The integration suite: every test starts the real server binary on a real
//! port and drives it over HTTP, with real recorder processes and signals,
//! on SQLite and on PostgreSQL; input validation alone (`validation`) drives
//! the real router in-process, row by row.

mod helpers;

mod auth;
mod bench_smoke;
mod cli;
mod cli_tools;
mod cluster;
mod dashboard;
mod disk;
mod errors;
mod event_retention;
mod events;
mod faults;
mod ffmpeg;
mod host;
mod indexes;
mod lifecycle;
mod live_faults;
mod live_sources;
mod live_state;
mod media;
mod metrics;
mod nodes;
mod openapi;
mod outage;
mod pipeline;
mod protocols;
mod reconcile;
mod restart;
mod retention;
mod schedules;
mod search;
mod security;
mod segments;
mod shutdown;
mod sources;
mod validation;
mod webhooks;
