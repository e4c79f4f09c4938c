//! The SDK's [`SpanData`] straight into the span model: no OTLP message in between, and the
//! span contract's keys and static span names stay static (no copy).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, Status as SdkStatus};
use opentelemetry::{Key, KeyValue};
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::otlp::{known_key, value as proto_value};
use crate::span::{Attributes, Span, SpanKind, Status, StatusCode, Text, Value};

/// A resource's attributes, shared by the spans of one export.
pub(super) fn resource_attributes(resource: &Resource) -> Arc<Attributes> {
    Arc::new(Attributes(resource.iter().filter_map(|(k, v)| Some((key(k), value(v.clone())?))).collect()))
}

/// One finished span, as [`spans_from_request`](crate::spans_from_request) would give it from
/// the OTLP message the SDK's own conversion makes.
pub(super) fn span(data: SpanData, resource: &Arc<Attributes>) -> Span {
    let (code, message) = match data.status {
        SdkStatus::Unset => (StatusCode::Unset, String::new()),
        SdkStatus::Ok => (StatusCode::Ok, String::new()),
        SdkStatus::Error { description } => (StatusCode::Error, description.into_owned()),
    };
    Span {
        trace_id: data.span_context.trace_id().to_bytes(),
        span_id: data.span_context.span_id().to_bytes(),
        parent_span_id: (data.parent_span_id != SpanId::INVALID).then(|| data.parent_span_id.to_bytes()),
        name: match data.name {
            std::borrow::Cow::Borrowed(name) => Text::from_static(name),
            std::borrow::Cow::Owned(name) => Text::from(name),
        },
        kind: match data.span_kind {
            opentelemetry::trace::SpanKind::Client => SpanKind::Client,
            opentelemetry::trace::SpanKind::Server => SpanKind::Server,
            opentelemetry::trace::SpanKind::Producer => SpanKind::Producer,
            opentelemetry::trace::SpanKind::Consumer => SpanKind::Consumer,
            opentelemetry::trace::SpanKind::Internal => SpanKind::Internal,
        },
        start_time_unix_nano: nanos(data.start_time),
        end_time_unix_nano: nanos(data.end_time),
        status: Status { code, message },
        attributes: Attributes(
            data.attributes
                .into_iter()
                .filter_map(|KeyValue { key: k, value: v, .. }| Some((key(&k), value(v)?)))
                .collect(),
        ),
        resource: resource.clone(),
    }
}

fn key(key: &Key) -> Text {
    known_key(key.as_str().as_bytes()).map_or_else(|| Text::from(key.as_str()), Text::from_static)
}

fn value(value: opentelemetry::Value) -> Option<Value> {
    Some(match value {
        opentelemetry::Value::Bool(b) => Value::Bool(b),
        opentelemetry::Value::I64(i) => Value::I64(i),
        opentelemetry::Value::F64(f) => Value::F64(f),
        // An owned string is taken over, not copied.
        opentelemetry::Value::String(s) => Value::Str(Text::from(String::from(s))),
        // Arrays are rare: converted as the OTLP path converts them.
        array => return proto_value(AnyValue::from(array)),
    })
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry::{Array, InstrumentationScope, StringValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;
    use crate::spans_from_request;

    fn data(
        name: std::borrow::Cow<'static, str>,
        status: SdkStatus,
        parent: SpanId,
        attributes: Vec<KeyValue>,
    ) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes([7; 16]),
                SpanId::from_bytes([8; 8]),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: opentelemetry::trace::SpanKind::Server,
            name,
            start_time: UNIX_EPOCH + std::time::Duration::from_nanos(1_000),
            end_time: UNIX_EPOCH + std::time::Duration::from_nanos(2_000),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[test]
    fn converts_as_the_otlp_path_does() {
        let resource = Resource::builder_empty().with_attribute(KeyValue::new("service.name", "kb")).build();
        let spans = vec![
            data(
                "tools/call search".into(),
                SdkStatus::error("boom"),
                SpanId::from_bytes([9; 8]),
                vec![
                    KeyValue::new("mcp.method.name", "tools/call"),
                    KeyValue::new("custom.key", StringValue::from(String::from("owned"))),
                    KeyValue::new("n", 7_i64),
                    KeyValue::new("x", 0.5),
                    KeyValue::new("b", true),
                    KeyValue::new("list", opentelemetry::Value::Array(Array::I64(vec![1, 2]))),
                ],
            ),
            data(String::from("mcp.session").into(), SdkStatus::Ok, SpanId::INVALID, vec![]),
            data("plain".into(), SdkStatus::Unset, SpanId::INVALID, vec![KeyValue::new("session.id", "s")]),
        ];
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.clone(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        let (reference, undecodable) = spans_from_request(request);
        assert!(undecodable.is_empty());
        let shared = resource_attributes(&resource);
        let direct: Vec<Span> = spans.into_iter().map(|d| span(d, &shared)).collect();
        assert_eq!(direct, reference);
    }
}
