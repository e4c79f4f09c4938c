//! The checks the fuzz targets run (`fuzz/`), here so that the kept corpus replays in every
//! `cargo test` run (`tests/e2e/corpus.rs`): an input the fuzzer once found interesting stays a
//! regression test.

use std::io::Write as _;

use crate::mapping::map_spans;
use bytes::Bytes;

use crate::receiver::http::{Encoding, decode_body};

/// Decompression limit of the target (smaller than the service's, so bombs are cheap to find).
const MAX_DECOMPRESSED: usize = 1 << 20;

/// An OTLP/HTTP `/v1/traces` body, decoded as the receiver does, through to the rows it would
/// write. The first byte picks the encoding: bit 0 JSON (else protobuf), bit 1 gzip the rest
/// first (the fuzzer's bytes reach the decoder through a real gzip stream), bit 2 declare gzip
/// without compressing (corrupt and truncated streams).
///
/// Beyond "never panics", every decoded body must map to rows PostgreSQL accepts: no NUL in any
/// text, one upsert per session in id order, at most one request row per span, finite
/// non-negative durations and token counts.
///
/// ```text
/// // fuzz/fuzz_targets/otlp_http_body.rs
/// fuzz_target!(|data: &[u8]| archon_mcp_exporter::fuzzing::otlp_http_body(data));
/// ```
pub fn otlp_http_body(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else { return };
    let encoding = if mode & 1 == 1 { Encoding::Json } else { Encoding::Protobuf };
    let gzipped;
    let (content_encoding, body) = match mode & 0b110 {
        0b010 => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body).expect("writing to memory");
            gzipped = encoder.finish().expect("writing to memory");
            (Some("gzip"), gzipped.as_slice())
        }
        0b100 => (Some("gzip"), body),
        _ => (None, body),
    };
    let Ok((spans, _undecodable)) =
        decode_body(encoding, content_encoding, Bytes::copy_from_slice(body), MAX_DECOMPRESSED)
    else {
        return;
    };
    let batch = map_spans(&spans);
    let produced = batch.requests.len() + batch.skipped.len();
    assert!(produced <= spans.len(), "{produced} rows or skips from {} spans", spans.len());
    assert!(batch.sessions.windows(2).all(|w| w[0].session_id < w[1].session_id), "sessions not unique and ordered");

    let no_nul = |text: &Option<String>| text.as_deref().is_none_or(|t| !t.contains('\0'));
    for session in &batch.sessions {
        for text in [
            &session.client_name,
            &session.client_version,
            &session.disconnect_reason,
            &session.user_key,
            &session.user_email,
            &session.user_name,
            &session.user_department,
            &session.mcp_session_id,
            &session.service_name,
        ] {
            assert!(no_nul(text), "NUL in a session text: {session:?}");
        }
    }
    for request in &batch.requests {
        assert!(!request.method.contains('\0'), "NUL in a method: {request:?}");
        for text in [&request.tool_name, &request.error_type, &request.error_message, &request.model] {
            assert!(no_nul(text), "NUL in a request text: {request:?}");
        }
        assert!(request.duration_ms.is_finite() && request.duration_ms >= 0.0, "{request:?}");
        assert!(request.prompt_tokens >= 0 && request.completion_tokens >= 0, "{request:?}");
    }
}
