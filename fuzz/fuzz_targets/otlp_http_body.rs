//! OTLP/HTTP bodies (protobuf, JSON, gzip) through decoding and mapping: see
//! `archon_mcp_exporter::fuzzing::otlp_http_body` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| archon_mcp_exporter::fuzzing::otlp_http_body(data));
