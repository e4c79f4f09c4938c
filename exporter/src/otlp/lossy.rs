//! A lenient protobuf decoding of an OTLP export, for the request the strict decoder refuses
//! because a string is not UTF-8: one bad span must not lose the whole export. The strings are
//! read as bytes and converted with U+FFFD for what is not UTF-8; everything the mapping reads
//! is kept (events and links, which it does not read, are dropped).

use opentelemetry_proto::tonic::collector::trace::v1 as collector;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use prost::Message as _;

/// Decodes `body` as an OTLP export with every string read leniently (see the module).
pub(crate) fn decode_lossy(body: &[u8]) -> Result<collector::ExportTraceServiceRequest, prost::DecodeError> {
    Ok(Request::decode(body)?.into())
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[derive(Clone, PartialEq, prost::Message)]
struct Request {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Span {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    name: Vec<u8>,
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    status: Option<Status>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(bytes = "vec", tag = "2")]
    message: Vec<u8>,
    #[prost(int32, tag = "3")]
    code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(oneof = "Any", tags = "1, 2, 3, 4, 5, 6, 7")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Any {
    #[prost(bytes, tag = "1")]
    String(Vec<u8>),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(Values),
    #[prost(message, tag = "6")]
    KvList(KeyValues),
    #[prost(bytes, tag = "7")]
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Values {
    #[prost(message, repeated, tag = "1")]
    values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValues {
    #[prost(message, repeated, tag = "1")]
    values: Vec<KeyValue>,
}

impl From<Request> for collector::ExportTraceServiceRequest {
    fn from(r: Request) -> Self {
        Self { resource_spans: r.resource_spans.into_iter().map(Into::into).collect() }
    }
}

impl From<ResourceSpans> for trace::ResourceSpans {
    fn from(r: ResourceSpans) -> Self {
        Self {
            resource: r.resource.map(|res| resource::Resource {
                attributes: res.attributes.into_iter().map(Into::into).collect(),
                ..Default::default()
            }),
            scope_spans: r
                .scope_spans
                .into_iter()
                .map(|s| trace::ScopeSpans {
                    spans: s.spans.into_iter().map(Into::into).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

impl From<Span> for trace::Span {
    fn from(s: Span) -> Self {
        Self {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            name: text(s.name),
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            attributes: s.attributes.into_iter().map(Into::into).collect(),
            status: s.status.map(|st| trace::Status { message: text(st.message), code: st.code }),
            ..Default::default()
        }
    }
}

impl From<KeyValue> for common::KeyValue {
    fn from(kv: KeyValue) -> Self {
        Self { key: text(kv.key), value: kv.value.map(Into::into), ..Default::default() }
    }
}

impl From<AnyValue> for common::AnyValue {
    fn from(v: AnyValue) -> Self {
        use common::any_value::Value as V;
        let value = v.value.map(|any| match any {
            Any::String(s) => V::StringValue(text(s)),
            Any::Bool(b) => V::BoolValue(b),
            Any::Int(i) => V::IntValue(i),
            Any::Double(d) => V::DoubleValue(d),
            Any::Array(a) => {
                V::ArrayValue(common::ArrayValue { values: a.values.into_iter().map(Into::into).collect() })
            }
            Any::KvList(l) => {
                V::KvlistValue(common::KeyValueList { values: l.values.into_iter().map(Into::into).collect() })
            }
            Any::Bytes(b) => V::BytesValue(b),
        });
        Self { value }
    }
}

/// OTLP/JSON with every lone UTF-16 surrogate escape (`"\ud800"`, which no JSON parser turns
/// into a string) replaced by `\ufffd`; `None` when there is none.
pub(crate) fn repair_json_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let unit = |at: usize| -> Option<u16> {
        let hex = body.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        if body.get(i + 1) != Some(&b'u') {
            i += 2; // another escape, `\\` included
            continue;
        }
        let Some(first) = unit(i + 2) else {
            i += 2;
            continue;
        };
        let paired = (0xD800..0xDC00).contains(&first)
            && body.get(i + 6..i + 8) == Some(b"\\u")
            && unit(i + 8).is_some_and(|second| (0xDC00..0xE000).contains(&second));
        if paired {
            i += 12;
        } else if (0xD800..0xE000).contains(&first) {
            let repaired = out.get_or_insert_with(|| body.to_vec());
            repaired[i + 2..i + 6].copy_from_slice(b"fffd");
            i += 6;
        } else {
            i += 6;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_in_a_span_name_is_replaced() {
        use prost::Message as _;
        // A request whose one span is named with invalid UTF-8 (0xff).
        let span = [0x2a, 0x02, b'x', 0xff]; // name (field 5) = "x\xff"
        let mut scope = vec![0x12, span.len() as u8];
        scope.extend(span);
        let mut resource = vec![0x12, scope.len() as u8];
        resource.extend(scope);
        let mut body = vec![0x0a, resource.len() as u8];
        body.extend(resource);
        assert!(
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&body[..]).is_err()
        );
        let request = decode_lossy(&body).unwrap();
        assert_eq!(request.resource_spans[0].scope_spans[0].spans[0].name, "x\u{fffd}");
    }

    #[test]
    fn lone_surrogates_are_replaced() {
        assert_eq!(repair_json_surrogates(br#"{"a": "x\ud800y"}"#).unwrap(), br#"{"a": "x\ufffdy"}"#);
        assert_eq!(
            repair_json_surrogates(br#"{"a": "\ud83d\ude00 \\ud800"}"#),
            None,
            "a pair, and an escaped backslash"
        );
    }
}
