//! End to end: instrumented rmcp servers, real rmcp clients, a real OpenTelemetry Collector
//! (rotel), `archon-mcp-exporter serve` and PostgreSQL. One binary, so the heavy parts start once
//! per test.

mod alerts;
mod architecture;
mod budgets;
mod collector;
mod corpus;
mod dashboards;
mod demo;
mod deployment;
mod docs_commands;
mod faults;
mod harness;
mod otel_env;
mod otlp_tls;
mod packaging;
mod privacy;
mod shutdown;
mod span_shape;
