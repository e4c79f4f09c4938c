//! OTLP → the neutral span model: pure conversion, no IO. The decoder knows only [`crate::span`];
//! mapping spans to rows is [`crate::mapping`]'s.

#[cfg(any(test, feature = "testing"))]
mod encode;
#[cfg(feature = "service")]
mod lossy;
mod wire;

pub(crate) use wire::known_key;

#[cfg(any(test, feature = "testing"))]
pub(crate) use encode::request_from_spans;

#[cfg(feature = "service")]
pub(crate) use lossy::{decode_lossy, repair_json_surrogates};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message as _;

use crate::span::{Attributes, Span, SpanKind, SpanRef, Status, StatusCode, Value};

/// A span the decoder refused: its trace id is not 16 bytes or its span id not 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// The span, its ids truncated or zero-padded to size.
    pub span: SpanRef,
    /// What was wrong, for a person reading a log.
    pub detail: String,
}

impl Undecodable {
    /// The label of decode rejects in metrics and partial-success messages.
    pub const REASON: &'static str = "invalid_id";
}

/// Every span of an OTLP export request, with its resource's attributes; spans whose ids are
/// not 16 and 8 bytes are refused.
///
/// ```
/// use archon_mcp_exporter::spans_from_request;
/// use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
///
/// let (spans, undecodable) = spans_from_request(ExportTraceServiceRequest::default());
/// assert!(spans.is_empty() && undecodable.is_empty());
/// ```
pub fn spans_from_request(request: ExportTraceServiceRequest) -> (Vec<Span>, Vec<Undecodable>) {
    let mut spans = Vec::new();
    let mut invalid = Vec::new();
    for resource_spans in request.resource_spans {
        // One resource per group, shared by its spans.
        let resource =
            std::sync::Arc::new(resource_spans.resource.map(|r| attributes(r.attributes)).unwrap_or_default());
        for scope_spans in resource_spans.scope_spans {
            for proto in scope_spans.spans {
                match convert(proto, &resource) {
                    Ok(span) => spans.push(span),
                    Err(skipped) => invalid.push(skipped),
                }
            }
        }
    }
    (spans, invalid)
}

/// Every span of an OTLP/protobuf export request body, as [`spans_from_request`] gives them
/// from prost's decoding — read in one pass that copies no name, key or value out of `body`
/// (prost decodes what that pass does not take; its error is the error).
///
/// ```
/// use archon_mcp_exporter::spans_from_protobuf;
///
/// let (spans, undecodable) = spans_from_protobuf(bytes::Bytes::new()).unwrap();
/// assert!(spans.is_empty() && undecodable.is_empty());
/// assert!(spans_from_protobuf(bytes::Bytes::from_static(&[0x0a, 0x05])).is_err());
/// ```
pub fn spans_from_protobuf(body: Bytes) -> Result<(Vec<Span>, Vec<Undecodable>), prost::DecodeError> {
    match wire::decode_request(body.clone()) {
        Some(decoded) => Ok(decoded),
        None => ExportTraceServiceRequest::decode(body).map(spans_from_request),
    }
}

fn convert(
    proto: opentelemetry_proto::tonic::trace::v1::Span,
    resource: &std::sync::Arc<Attributes>,
) -> Result<Span, Undecodable> {
    let (trace_id, span_id) = checked_ids(&proto.trace_id, &proto.span_id)?;
    let status = proto.status.unwrap_or_default();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id: <[u8; 8]>::try_from(proto.parent_span_id.as_slice()).ok(),
        name: proto.name.into(),
        kind: span_kind(proto.kind),
        start_time_unix_nano: proto.start_time_unix_nano,
        end_time_unix_nano: proto.end_time_unix_nano,
        status: Status { code: status_code(status.code), message: status.message },
        attributes: attributes(proto.attributes),
        resource: resource.clone(),
    })
}

/// A span's trace and span ids, unless they are not 16 and 8 bytes.
fn checked_ids(trace_id: &[u8], span_id: &[u8]) -> Result<([u8; 16], [u8; 8]), Undecodable> {
    match (<[u8; 16]>::try_from(trace_id), <[u8; 8]>::try_from(span_id)) {
        (Ok(trace_id), Ok(span_id)) => Ok((trace_id, span_id)),
        _ => {
            let mut padded = SpanRef { trace_id: [0; 16], span_id: [0; 8] };
            let n = trace_id.len().min(16);
            padded.trace_id[..n].copy_from_slice(&trace_id[..n]);
            let n = span_id.len().min(8);
            padded.span_id[..n].copy_from_slice(&span_id[..n]);
            Err(Undecodable {
                span: padded,
                detail: format!("trace id of {} bytes, span id of {} bytes", trace_id.len(), span_id.len()),
            })
        }
    }
}

fn span_kind(kind: i32) -> SpanKind {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => SpanKind::Internal,
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

fn status_code(code: i32) -> StatusCode {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Unset) => StatusCode::Unset,
        Ok(status::StatusCode::Ok) => StatusCode::Ok,
        Ok(status::StatusCode::Error) => StatusCode::Error,
        Err(_) => StatusCode::Unknown(code),
    }
}

fn attributes(kvs: Vec<KeyValue>) -> Attributes {
    Attributes(kvs.into_iter().filter_map(|kv| Some((kv.key.into(), value(kv.value?)?))).collect())
}

pub(crate) fn value(any: AnyValue) -> Option<Value> {
    Some(match any.value? {
        any_value::Value::StringValue(s) => Value::Str(s.into()),
        any_value::Value::BoolValue(b) => Value::Bool(b),
        any_value::Value::IntValue(i) => Value::I64(i),
        any_value::Value::DoubleValue(d) => Value::F64(d),
        any_value::Value::BytesValue(b) => Value::Bytes(b),
        // Arrays and maps are kept as their JSON text.
        other => Value::Str(json(&other).to_string().into()),
    })
}

fn json(value: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::BytesValue(b) => J::String(crate::span::hex(b)),
        any_value::Value::ArrayValue(a) => {
            J::Array(a.values.iter().filter_map(|v| v.value.as_ref()).map(json).collect())
        }
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), json(kv.value.as_ref()?.value.as_ref()?))))
                .collect(),
        ),
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn request(spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", any_value::Value::StringValue("kb".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn converts_every_field() {
        let proto = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "tools/call search".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            status: Some(opentelemetry_proto::tonic::trace::v1::Status { code: 2, message: "boom".into() }),
            attributes: vec![
                kv("mcp.method.name", any_value::Value::StringValue("tools/call".into())),
                kv("n", any_value::Value::IntValue(7)),
                kv(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue { value: Some(any_value::Value::IntValue(1)) }],
                    }),
                ),
            ],
            ..Default::default()
        };
        let (spans, invalid) = spans_from_request(request(vec![proto]));
        assert!(invalid.is_empty());
        let span = &spans[0];
        assert_eq!((span.trace_id, span.span_id, span.parent_span_id), ([1; 16], [2; 8], Some([3; 8])));
        assert_eq!((span.kind, span.start_time_unix_nano, span.end_time_unix_nano), (SpanKind::Server, 10, 20));
        assert_eq!(span.status, Status { code: StatusCode::Error, message: "boom".into() });
        assert_eq!(span.attributes.get("n"), Some(&Value::I64(7)));
        assert_eq!(span.attributes.str("list").as_deref(), Some("[1]"));
        assert_eq!(span.resource.str("service.name").as_deref(), Some("kb"));
    }

    #[test]
    fn bad_ids_and_unknown_status_codes() {
        let bad = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![1; 3],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let odd = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            status: Some(opentelemetry_proto::tonic::trace::v1::Status { code: 9, message: String::new() }),
            ..Default::default()
        };
        let (spans, invalid) = spans_from_request(request(vec![bad, odd]));
        assert_eq!(invalid.len(), 1);
        assert_eq!(invalid[0].detail, "trace id of 3 bytes, span id of 8 bytes");
        assert_eq!(spans[0].status.code, StatusCode::Unknown(9));
    }
}

/// xorshift: random cases, the same on every run.
#[cfg(test)]
mod test_rng {
    pub(super) struct Rng(pub(super) u64);

    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(super) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }
}

/// Random and mutated export bodies through decode and mapping: bounded, so it runs in every
/// test run; it fails on any panic.
#[cfg(test)]
mod robustness {
    use super::*;
    use crate::mapping::map_spans;
    use crate::span::Span as Neutral;

    use super::test_rng::Rng;

    fn valid_request() -> ExportTraceServiceRequest {
        let span = Neutral::new("tools/call search", 10, 20)
            .with_ids([1; 16], [2; 8])
            .with_attribute("mcp.method.name", "tools/call")
            .with_attribute("session.id", "s-1")
            .with_attribute("gen_ai.usage.input_tokens", 5_i64)
            .with_attribute("archon.cost.amount", 0.5)
            .with_attribute("archon.client.capabilities", "{\"roots\":{}}")
            .with_resource("service.name", "kb");
        let end = Neutral::new("mcp.session", 10, 30).with_ids([1; 16], [3; 8]).with_attribute("session.id", "s-1");
        request_from_spans(&[span, end])
    }

    fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + rng.below(8) {
            match rng.below(4) {
                0 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes.truncate(i);
                }
                2 => {
                    let i = rng.below(bytes.len() + 1);
                    bytes.insert(i, rng.next() as u8);
                }
                _ if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] = [0x00, 0xff, 0x7f, 0x80, b'"', b'{', b'0'][rng.below(7)];
                }
                _ => {}
            }
        }
        bytes
    }

    fn exercise(request: ExportTraceServiceRequest) {
        let (spans, _) = spans_from_request(request);
        let batch = map_spans(&spans);
        let _ = (batch.skipped_by_reason(), batch.rejected());
    }

    #[test]
    fn protobuf_bodies_never_panic() {
        let valid = valid_request().encode_to_vec();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let body = if round % 10 == 0 {
                (0..rng.below(256)).map(|_| rng.next() as u8).collect()
            } else {
                mutate(&mut rng, valid.clone())
            };
            if let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) {
                exercise(request);
            }
        }
    }

    #[test]
    fn json_bodies_never_panic() {
        let valid = serde_json::to_vec(&valid_request()).unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..10_000 {
            let body = mutate(&mut rng, valid.clone());
            if let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(&body) {
                exercise(request);
            }
        }
    }
}
