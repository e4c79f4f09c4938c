//! OTLP protobuf straight into the span model, in one pass over the request's bytes: span
//! names and attribute values point into the request (no copy, no per-attribute allocation),
//! the span contract's attribute keys are static — where prost would allocate every key and
//! value and the conversion then move them.
//!
//! It reads what OTLP exporters send. Anything else — a singular message field given twice
//! (prost merges those), a group, a field of the wrong wire type, text that is not UTF-8,
//! any malformed field — makes it answer `None`, and the caller decodes with prost, the
//! reference, which also words the error. Array, map and string-table values are rare: their
//! `AnyValue` alone is decoded by prost. Tests hold both decoders to the same spans.

use std::sync::{Arc, LazyLock};

use archon_mcp_instrument::attributes as attr;
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use prost::Message as _;

use super::{Undecodable, checked_ids, span_kind, status_code, value};
use crate::span::{Attributes, KeyIndex, Span, Status, Text, Value, is_utf8};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// How deep a value decoded by prost may nest: prost refuses a request nested 100 messages
/// deep, and the value sits a few messages down; deeper ones are left to prost whole.
const MAX_VALUE_DEPTH: usize = 64;

/// Resource attribute keys outside the span contract that SDKs usually send; with the
/// contract's own ([`attr::KEYS`]) they are taken as static text instead of pointing into the
/// request.
const USUAL_RESOURCE_KEYS: [&str; 7] = [
    "service.namespace",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
    "host.name",
    "process.pid",
    "deployment.environment.name",
];

/// The known key spelled `key`: the few known keys of its length are compared.
pub(crate) fn known_key(key: &[u8]) -> Option<&'static str> {
    static KNOWN: LazyLock<KeyIndex> =
        LazyLock::new(|| KeyIndex::new(attr::KEYS.iter().chain(&USUAL_RESOURCE_KEYS).copied()));
    KNOWN.find(key).map(|(known, _)| known)
}

/// The spans of an OTLP/protobuf export request, as [`spans_from_request`](super::spans_from_request)
/// gives them after prost's decode; `None` where prost must decide (see the module docs).
pub(crate) fn decode_request(body: Bytes) -> Option<(Vec<Span>, Vec<Undecodable>)> {
    let mut decoder = Decoder { body: &body, spans: Vec::new(), invalid: Vec::new(), attributes_per_span: 0 };
    let mut reader = Reader::new(&body);
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => decoder.resource_spans(reader.bytes()?)?,
            (1, _) => return None,
            (_, wire) => reader.skip(wire)?,
        }
    }
    Some((decoder.spans, decoder.invalid))
}

/// One request's decoding: the request's bytes (which texts point into) and what is decoded.
struct Decoder<'a> {
    body: &'a Bytes,
    spans: Vec<Span>,
    invalid: Vec<Undecodable>,
    /// How many attributes the last span had: the next one's are read straight into a list
    /// of that size (spans of one producer have about as many), not copied from a buffer.
    attributes_per_span: usize,
}

impl Decoder<'_> {
    /// One `ResourceSpans`: its resource first (it may come after its spans), then its spans.
    fn resource_spans(&mut self, body: &[u8]) -> Option<()> {
        let mut reader = Reader::new(body);
        let mut resource = None;
        let mut scopes = Vec::new();
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                (1, LEN) if resource.is_none() => resource = Some(reader.bytes()?),
                (2, LEN) => scopes.push(reader.bytes()?),
                (3, LEN) => utf8(reader.bytes()?)?,
                (1..=3, _) => return None,
                (_, wire) => reader.skip(wire)?,
            }
        }
        let resource = Arc::new(match resource {
            Some(body) => self.resource(body)?,
            None => Attributes::default(),
        });
        for scope in scopes {
            self.spans.reserve(span_count(scope));
            let mut reader = Reader::new(scope);
            let mut scope_seen = false;
            while let Some((field, wire)) = reader.key()? {
                match (field, wire) {
                    (1, LEN) if !scope_seen => {
                        scope_seen = true;
                        shallow(&InstrumentationScope::decode(reader.bytes()?).ok()?.attributes)?;
                    }
                    (2, LEN) => match self.span(reader.bytes()?, &resource)? {
                        Ok(span) => self.spans.push(span),
                        Err(refused) => self.invalid.push(refused),
                    },
                    (3, LEN) => utf8(reader.bytes()?)?,
                    (1..=3, _) => return None,
                    (_, wire) => reader.skip(wire)?,
                }
            }
        }
        Some(())
    }

    fn resource(&mut self, body: &[u8]) -> Option<Attributes> {
        let mut reader = Reader::new(body);
        let mut attributes = Vec::new();
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                (1, LEN) => self.attribute(reader.bytes()?, &mut attributes)?,
                (2, VARINT) => reader.varint().map(drop)?,
                // Entity references are not read; prost must accept them all the same.
                (3, LEN) => EntityRef::decode(reader.bytes()?).map(drop).ok()?,
                (1..=3, _) => return None,
                (_, wire) => reader.skip(wire)?,
            }
        }
        Some(Attributes(attributes))
    }

    /// One span; `Err` for one whose ids are not 16 and 8 bytes, as the reference refuses it.
    fn span(&mut self, body: &[u8], resource: &Arc<Attributes>) -> Option<Result<Span, Undecodable>> {
        let mut reader = Reader::new(body);
        let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
        let mut name = Text::default();
        let (mut kind, mut start, mut end) = (0, 0, 0);
        let mut status = None;
        let mut attributes = Vec::with_capacity(self.attributes_per_span);
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                (1, LEN) => trace_id = reader.bytes()?,
                (2, LEN) => span_id = reader.bytes()?,
                (3, LEN) => utf8(reader.bytes()?)?,
                (4, LEN) => parent = reader.bytes()?,
                (5, LEN) => name = self.text(reader.bytes()?)?,
                // An enum is an int32: prost keeps the low 32 bits of the varint.
                (6, VARINT) => kind = reader.varint()? as i32,
                (7, FIXED64) => start = reader.fixed64()?,
                (8, FIXED64) => end = reader.fixed64()?,
                (9, LEN) => self.attribute(reader.bytes()?, &mut attributes)?,
                (10 | 12 | 14, VARINT) => reader.varint().map(drop)?,
                (11, LEN) => shallow(&Event::decode(reader.bytes()?).ok()?.attributes)?,
                (13, LEN) => shallow(&Link::decode(reader.bytes()?).ok()?.attributes)?,
                (15, LEN) if status.is_none() => status = Some(self.status(reader.bytes()?)?),
                (16, FIXED32) => reader.fixed32().map(drop)?,
                (1..=16, _) => return None,
                (_, wire) => reader.skip(wire)?,
            }
        }
        self.attributes_per_span = attributes.len();
        // A span with far fewer attributes than the one before does not keep the spare room.
        if attributes.capacity() > 2 * attributes.len() + 8 {
            attributes.shrink_to_fit();
        }
        let attributes = Attributes(attributes);
        let (trace_id, span_id) = match checked_ids(trace_id, span_id) {
            Ok(ids) => ids,
            Err(refused) => return Some(Err(refused)),
        };
        Some(Ok(Span {
            trace_id,
            span_id,
            parent_span_id: <[u8; 8]>::try_from(parent).ok(),
            name,
            kind: span_kind(kind),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: status.unwrap_or_default(),
            attributes,
            resource: resource.clone(),
        }))
    }

    fn status(&self, body: &[u8]) -> Option<Status> {
        let mut reader = Reader::new(body);
        let (mut code, mut message) = (0, Text::default());
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                (2, LEN) => message = self.text(reader.bytes()?)?,
                (3, VARINT) => code = reader.varint()? as i32,
                (2 | 3, _) => return None,
                (_, wire) => reader.skip(wire)?,
            }
        }
        Some(Status { code: status_code(code), message: message.into() })
    }

    /// One `KeyValue`, added to `attributes` unless it has no value (the reference drops
    /// those).
    fn attribute(&self, body: &[u8], attributes: &mut Vec<(Text, Value)>) -> Option<()> {
        let mut reader = Reader::new(body);
        let mut key: &[u8] = &[];
        let mut any = None;
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                // prost checks every key given, not only the last.
                (1, LEN) => key = utf8(key).and(reader.bytes())?,
                (2, LEN) if any.is_none() => any = Some(reader.bytes()?),
                // A string-table index of the key (profiles); the key itself is what is read.
                (3, VARINT) => reader.varint().map(drop)?,
                (1..=3, _) => return None,
                (_, wire) => reader.skip(wire)?,
            }
        }
        let key = match known_key(key) {
            Some(known) => Text::from_static(known),
            None => self.text(key)?,
        };
        let Some(any) = any else { return Some(()) };
        // The usual value, one string, is pushed as it is read: passed up as an
        // `Option<Option<Value>>` it is copied through the stack a few times.
        if let Some(string) = only_string(any) {
            attributes.push((key, Value::Str(self.text(string)?)));
        } else if let Some(value) = self.any_value(any)? {
            attributes.push((key, value));
        }
        Some(())
    }

    /// An `AnyValue`: `Some(None)` when it holds nothing. Scalars are read here (the last one
    /// given wins, as in prost); arrays, maps and string-table indexes go to prost whole.
    fn any_value(&self, body: &[u8]) -> Option<Option<Value>> {
        let mut reader = Reader::new(body);
        let mut value = None;
        while let Some((field, wire)) = reader.key()? {
            value = Some(match (field, wire) {
                (1, LEN) => Value::Str(self.text(reader.bytes()?)?),
                (2, VARINT) => Value::Bool(reader.varint()? != 0),
                (3, VARINT) => Value::I64(reader.varint()? as i64),
                (4, FIXED64) => Value::F64(f64::from_bits(reader.fixed64()?)),
                (7, LEN) => Value::Bytes(reader.bytes()?.to_vec()),
                (5 | 6 | 8, _) => return composite(body),
                (1..=8, _) => return None,
                (_, wire) => {
                    reader.skip(wire)?;
                    continue;
                }
            });
        }
        Some(value)
    }

    /// Text that points into the request, if it is UTF-8.
    fn text(&self, bytes: &[u8]) -> Option<Text> {
        if bytes.is_empty() {
            return Some(Text::default());
        }
        Text::from_utf8(self.body.slice_ref(bytes))
    }
}

/// The string of an `AnyValue` that holds one string field and nothing else (how exporters
/// send a string), as [`Decoder::any_value`] would read it.
fn only_string(any: &[u8]) -> Option<&[u8]> {
    let mut reader = Reader::new(any);
    if reader.key()? != Some((1, LEN)) {
        return None;
    }
    let string = reader.bytes()?;
    (reader.at == any.len()).then_some(string)
}

/// How many spans a `ScopeSpans` holds, at a glance (its fields' keys and lengths only), to
/// allocate them at once; 0 for a malformed one, which the decoding then refuses.
fn span_count(scope: &[u8]) -> usize {
    let mut reader = Reader::new(scope);
    let mut spans = 0;
    while let Some(Some((field, wire))) = reader.key() {
        spans += usize::from(field == 2);
        if reader.skip(wire).is_none() {
            return 0;
        }
    }
    spans
}

/// A composite `AnyValue`, decoded by prost and converted as the reference converts it.
fn composite(body: &[u8]) -> Option<Option<Value>> {
    let any = AnyValue::decode(body).ok()?;
    (depth(&any) <= MAX_VALUE_DEPTH).then(|| value(any))
}

/// Attributes of a part not read (scope, events, links): decodable, and not so deep that
/// the reference would refuse the request.
fn shallow(attributes: &[KeyValue]) -> Option<()> {
    attributes.iter().all(|kv| kv.value.as_ref().is_none_or(|v| depth(v) <= MAX_VALUE_DEPTH)).then_some(())
}

/// How many messages deep a value nests.
fn depth(any: &AnyValue) -> usize {
    match &any.value {
        Some(any_value::Value::ArrayValue(array)) => 2 + array.values.iter().map(depth).max().unwrap_or(0),
        Some(any_value::Value::KvlistValue(list)) => {
            3 + list.values.iter().filter_map(|kv| kv.value.as_ref()).map(depth).max().unwrap_or(0)
        }
        _ => 1,
    }
}

/// Text prost would accept.
fn utf8(bytes: &[u8]) -> Option<()> {
    is_utf8(bytes).then_some(())
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Self {
        Self { body, at: 0 }
    }

    /// The next field's number and wire type; `Some(None)` at the end of the message. Field 0,
    /// numbers beyond 32 bits and unknown wire types are malformed.
    fn key(&mut self) -> Option<Option<(u32, u8)>> {
        if self.at == self.body.len() {
            return Some(None);
        }
        let key = u32::try_from(self.varint()?).ok()?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        (field != 0 && matches!(wire, VARINT | FIXED64 | LEN | FIXED32)).then_some(Some((field, wire)))
    }

    /// A varint of at most ten bytes, the tenth at most 1 (as prost reads them).
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        // Keys, lengths of short texts and enums fit one byte.
        let first = *self.body.get(self.at)?;
        if first < 0x80 {
            self.at += 1;
            return Some(u64::from(first));
        }
        self.long_varint()
    }

    #[cold]
    fn long_varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.body.get(self.at)?;
            self.at += 1;
            if i == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn fixed64(&mut self) -> Option<u64> {
        let bytes = self.body.get(self.at..self.at.checked_add(8)?)?;
        self.at += 8;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn fixed32(&mut self) -> Option<u32> {
        let bytes = self.body.get(self.at..self.at.checked_add(4)?)?;
        self.at += 4;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }

    /// A length-delimited field's bytes.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.at.checked_add(len).filter(|end| *end <= self.body.len())?;
        let bytes = &self.body[self.at..end];
        self.at = end;
        Some(bytes)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.fixed32().map(drop),
            _ => None,
        }
    }
}

/// Prost is the oracle: whatever this decoder gives, prost decoding and the reference
/// conversion give too, and where prost refuses a body this decoder does not answer.
#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status as ProtoStatus};

    use super::*;
    use crate::otlp::spans_from_request;

    use crate::otlp::test_rng::Rng;

    impl Rng {
        fn text(&mut self) -> String {
            let words = ["tools/call", "session.id", "", "é✓", "claude-code", "0195f3a0-0000-7000-8000-000000000001"];
            words[self.below(words.len())].to_owned()
        }

        fn bytes(&mut self, lengths: &[usize]) -> Vec<u8> {
            (0..lengths[self.below(lengths.len())]).map(|_| self.next() as u8).collect()
        }
    }

    fn any(rng: &mut Rng, depth: usize) -> AnyValue {
        use any_value::Value as V;
        let value = match rng.below(if depth > 2 { 6 } else { 9 }) {
            0 => None,
            1 => Some(V::StringValue(rng.text())),
            2 => Some(V::BoolValue(rng.below(2) == 1)),
            3 => Some(V::IntValue(rng.next() as i64)),
            4 => Some(V::DoubleValue(f64::from_bits(rng.next()))),
            5 => Some(V::BytesValue(rng.bytes(&[0, 3]))),
            6 => Some(V::ArrayValue(ArrayValue { values: (0..rng.below(3)).map(|_| any(rng, depth + 1)).collect() })),
            7 => Some(V::KvlistValue(KeyValueList { values: attributes(rng, depth + 1, 3) })),
            _ => Some(V::StringValueStrindex(rng.next() as i32)),
        };
        AnyValue { value }
    }

    fn attributes(rng: &mut Rng, depth: usize, most: usize) -> Vec<KeyValue> {
        (0..rng.below(most))
            .map(|_| KeyValue {
                key: rng.text(),
                value: (rng.below(8) != 0).then(|| any(rng, depth)),
                ..Default::default()
            })
            .collect()
    }

    fn random_request(rng: &mut Rng) -> ExportTraceServiceRequest {
        let span = |rng: &mut Rng| opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: rng.bytes(&[16, 16, 16, 0, 3]),
            span_id: rng.bytes(&[8, 8, 8, 0, 9]),
            trace_state: rng.text(),
            parent_span_id: rng.bytes(&[0, 8, 4]),
            flags: rng.next() as u32,
            name: rng.text(),
            kind: rng.below(8) as i32 - 1,
            start_time_unix_nano: rng.next(),
            end_time_unix_nano: rng.next(),
            attributes: attributes(rng, 0, 20),
            dropped_attributes_count: rng.below(3) as u32,
            events: (0..rng.below(2))
                .map(|_| Event { name: rng.text(), attributes: attributes(rng, 0, 3), ..Default::default() })
                .collect(),
            links: (0..rng.below(2))
                .map(|_| Link { trace_id: rng.bytes(&[16]), attributes: attributes(rng, 0, 3), ..Default::default() })
                .collect(),
            status: (rng.below(3) != 0).then(|| ProtoStatus { code: rng.below(5) as i32 - 1, message: rng.text() }),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: (0..1 + rng.below(3))
                .map(|_| ResourceSpans {
                    resource: (rng.below(4) != 0).then(|| Resource {
                        attributes: attributes(rng, 0, 6),
                        entity_refs: (0..rng.below(2))
                            .map(|_| EntityRef { r#type: rng.text(), ..Default::default() })
                            .collect(),
                        ..Default::default()
                    }),
                    scope_spans: (0..1 + rng.below(3))
                        .map(|_| ScopeSpans {
                            scope: (rng.below(2) == 0).then(|| InstrumentationScope {
                                name: rng.text(),
                                attributes: attributes(rng, 0, 2),
                                ..Default::default()
                            }),
                            spans: (0..rng.below(5)).map(|_| span(rng)).collect(),
                            schema_url: rng.text(),
                        })
                        .collect(),
                    schema_url: rng.text(),
                })
                .collect(),
        }
    }

    /// Holds the decoder to prost on one body; returns whether it answered.
    fn agrees(body: &[u8]) -> bool {
        let ours = decode_request(Bytes::copy_from_slice(body));
        match ExportTraceServiceRequest::decode(body) {
            Ok(request) => {
                let reference = spans_from_request(request);
                if let Some(ours) = &ours {
                    // NaN doubles compare unequal: compare their debug text.
                    assert_eq!(format!("{ours:?}"), format!("{reference:?}"), "a body of {} bytes", body.len());
                }
            }
            Err(e) => assert!(ours.is_none(), "prost refused ({e}) a body of {} bytes this decoder took", body.len()),
        }
        ours.is_some()
    }

    #[test]
    fn random_requests_decode_as_prost_decodes_them() {
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        let mut answered = 0;
        for _ in 0..3_000 {
            answered += usize::from(agrees(&random_request(&mut rng).encode_to_vec()));
        }
        // Composite values go to prost one by one, not the whole request.
        assert_eq!(answered, 3_000, "every well-formed request is decoded here");
    }

    #[test]
    fn mutated_requests_are_decoded_as_prost_decodes_them_or_left_to_it() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut answered = 0;
        for _ in 0..20_000 {
            let mut body = random_request(&mut rng).encode_to_vec();
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 if !body.is_empty() => {
                        let i = rng.below(body.len());
                        body[i] ^= 1 << rng.below(8);
                    }
                    1 if !body.is_empty() => body.truncate(rng.below(body.len())),
                    _ => body.insert(rng.below(body.len() + 1), rng.next() as u8),
                }
            }
            answered += usize::from(agrees(&body));
        }
        assert!(answered > 1_000, "only {answered} mutated bodies decoded: the comparison proves little");
    }

    #[test]
    fn the_fuzz_corpus_decodes_as_prost_decodes_it() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/otlp_http_body");
        let mut bodies = 0;
        for entry in std::fs::read_dir(dir).expect("the fuzz corpus") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            // The first byte picks encoding and compression; the rest is read as protobuf.
            if let Some((_, body)) = data.split_first() {
                agrees(body);
                bodies += 1;
            }
        }
        assert!(bodies > 1_000, "{bodies} corpus files");
    }

    #[test]
    fn what_prost_merges_is_left_to_prost() {
        let status = ProtoStatus { code: 2, message: "a".into() };
        let span = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            status: Some(status.clone()),
            ..Default::default()
        };
        // A length-delimited field, as prost encodes one.
        let field = |number: u32, body: &[u8]| {
            let mut out = Vec::new();
            prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
            prost::encoding::encode_varint(body.len() as u64, &mut out);
            out.extend_from_slice(body);
            out
        };
        let mut body = span.encode_to_vec();
        // The status again: prost merges the two.
        body.extend(field(15, &ProtoStatus { code: 0, message: "b".into() }.encode_to_vec()));
        let request = field(1, &field(2, &field(2, &body)));
        assert!(!agrees(&request), "a twice-given status is prost's to merge");
        let (spans, _) = crate::otlp::spans_from_protobuf(Bytes::from(request)).unwrap();
        assert_eq!(spans[0].status.message, "b");
        assert_eq!(spans[0].status.code, crate::span::StatusCode::Error);
    }

    #[test]
    fn a_value_with_more_than_one_field_is_read_to_its_last() {
        use prost::encoding::{WireType, bytes, encode_key, encode_varint, string};
        let text = |s: &str, out: &mut Vec<u8>| string::encode(1, &s.to_owned(), out);
        let int = |n: u64, out: &mut Vec<u8>| {
            encode_key(3, WireType::Varint, out);
            encode_varint(n, out);
        };
        let span = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        for (case, fields) in [
            ("one string", &[Ok("a")][..]),
            ("two strings", &[Ok("a"), Ok("b")]),
            ("a string, then an integer", &[Ok("a"), Err(7)]),
            ("an integer, then a string", &[Err(7), Ok("b")]),
        ] {
            let mut any = Vec::new();
            for field in fields {
                match *field {
                    Ok(s) => text(s, &mut any),
                    Err(n) => int(n, &mut any),
                }
            }
            // The span's one attribute, its `AnyValue` given as these raw fields (fields may
            // come in any order, so it is appended to the encoded span).
            let mut attribute = Vec::new();
            string::encode(1, &"k".to_owned(), &mut attribute);
            bytes::encode(2, &any, &mut attribute);
            let mut span = span.encode_to_vec();
            bytes::encode(9, &attribute, &mut span);
            // Request → `ResourceSpans` → `ScopeSpans` → the span, each a field 1 or 2.
            let (mut scope, mut resource, mut request) = (Vec::new(), Vec::new(), Vec::new());
            bytes::encode(2, &span, &mut scope);
            bytes::encode(2, &scope, &mut resource);
            bytes::encode(1, &resource, &mut request);
            assert!(agrees(&request), "{case}: decoded here, as prost decodes it");
        }
    }

    #[test]
    fn a_small_span_after_a_huge_one_keeps_no_room_for_its_attributes() {
        let huge = (0..10_000).fold(crate::span::Span::new("huge", 1, 2).with_ids([1; 16], [1; 8]), |span, i| {
            span.with_attribute(format!("k{i}"), i64::from(i))
        });
        let small = crate::span::Span::new("small", 1, 2).with_ids([1; 16], [2; 8]).with_attribute("a", 1_i64);
        let body = crate::otlp::request_from_spans(&[huge, small]).encode_to_vec();
        let (spans, _) = decode_request(Bytes::from(body)).expect("decodes");
        assert_eq!(spans[0].attributes.0.len(), 10_000);
        assert_eq!(spans[1].attributes.0.len(), 1);
        assert!(spans[1].attributes.0.capacity() < 100, "kept room for {}", spans[1].attributes.0.capacity());
    }
}
