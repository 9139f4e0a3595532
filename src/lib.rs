//! recorderd: a supervisor that owns its recorder processes, records each
//! job's end the moment its process ends, and serves the job API.
//!
//! Data flows `http` → `jobs` (the service decides every state change) →
//! `supervisor` (spawns, watches and signals processes; reports exits);
//! `recordings` owns a recording once its job has ended, and `processing`
//! runs its pipeline; `schedules` starts jobs at set times through the
//! job service. `store` holds every query; `startup` wires it all up.

pub mod access;
pub mod announce;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod db;
pub mod entity;
pub mod events;
pub mod faults;
pub mod http;
pub mod jobs;
pub mod memory;
pub mod metrics;
pub mod nodes;
pub mod notify;
pub mod processing;
pub mod profile;
pub mod recordings;
pub mod redact;
pub mod schedules;
pub mod signals;
pub mod startup;
pub mod store;
pub mod supervisor;
pub mod tasks;
pub mod telemetry;
pub mod template;
pub mod tls;
pub mod webhooks;
