//! Tests against a real PostgreSQL: the schema, Archon's SQL API and the store.
//! One binary, so the database server is found (or started) once.

mod api;
mod archon;
mod budgets;
mod cli;
mod definer;
mod fixtures;
mod harness;
mod hostile;
mod privacy;
mod rollups;
mod schema;
mod service;
mod store;
