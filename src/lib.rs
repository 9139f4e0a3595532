//! recorderd: a supervisor that owns its recorder processes, records each
//! job's end the moment its process ends, and serves the job API.
//!
//! Data flows `http` → `jobs` (the service decides every state change) →
//! `supervisor` (spawns, watches and signals processes; reports exits) and
//! `processing` (what happens after a recording). `startup` wires them up.

pub mod cli;
pub mod config;
pub mod db;
pub mod entity;
pub mod events;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod nodes;
pub mod processing;
pub mod profile;
pub mod signals;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
pub mod template;
pub mod webhooks;
