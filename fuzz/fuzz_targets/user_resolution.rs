//! Bearer tokens, identity headers and JWT claims through the user resolvers: see
//! `archon_mcp_instrument::fuzzing::user_resolution` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| archon_mcp_instrument::fuzzing::user_resolution(data));
