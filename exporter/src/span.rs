//! The neutral span model: what the mapping reads, whatever the spans came from (OTLP
//! protobuf or JSON, or the SDK's `SpanData`).
//!
//! ```
//! use archon_mcp_exporter::span::{Span, Value};
//!
//! let span = Span::new("tools/call search", 1_000, 2_000)
//!     .with_attribute("mcp.method.name", "tools/call")
//!     .with_attribute("gen_ai.usage.input_tokens", 120_i64);
//! assert_eq!(span.attributes.str("mcp.method.name").as_deref(), Some("tools/call"));
//! assert_eq!(span.attributes.get("gen_ai.usage.input_tokens"), Some(&Value::I64(120)));
//! ```

use std::borrow::Cow;

mod key_index;
mod text;
pub(crate) use key_index::KeyIndex;
pub use text::Text;
pub(crate) use text::is_utf8;

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// W3C trace id.
    pub trace_id: [u8; 16],
    /// Span id, unique within the trace.
    pub span_id: [u8; 8],
    /// The parent's span id, if any.
    pub parent_span_id: Option<[u8; 8]>,
    /// Span name.
    pub name: Text,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// Final status.
    pub status: Status,
    /// Span attributes.
    pub attributes: Attributes,
    /// Attributes of the resource (process) that produced the span, shared by the spans of
    /// one resource group.
    pub resource: std::sync::Arc<Attributes>,
}

impl Span {
    /// A span with the given name and times, zero ids and no attributes.
    pub fn new(name: impl Into<Text>, start_time_unix_nano: u64, end_time_unix_nano: u64) -> Self {
        Self {
            trace_id: [0; 16],
            span_id: [0; 8],
            parent_span_id: None,
            name: name.into(),
            kind: SpanKind::Server,
            start_time_unix_nano,
            end_time_unix_nano,
            status: Status::default(),
            attributes: Attributes::default(),
            resource: Default::default(),
        }
    }

    /// Sets the trace and span ids.
    pub fn with_ids(mut self, trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        self.trace_id = trace_id;
        self.span_id = span_id;
        self
    }

    /// Sets the kind.
    pub fn with_kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, code: StatusCode, message: impl Into<String>) -> Self {
        self.status = Status { code, message: message.into() };
        self
    }

    /// Adds a span attribute.
    pub fn with_attribute(mut self, key: impl Into<Text>, value: impl Into<Value>) -> Self {
        self.attributes.push(key, value);
        self
    }

    /// Adds a resource attribute.
    pub fn with_resource(mut self, key: impl Into<Text>, value: impl Into<Value>) -> Self {
        std::sync::Arc::make_mut(&mut self.resource).push(key, value);
        self
    }

    /// The span's identity, for reports about it.
    pub fn span_ref(&self) -> SpanRef {
        SpanRef { trace_id: self.trace_id, span_id: self.span_id }
    }
}

/// Which span a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanRef {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
}

impl std::fmt::Display for SpanRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", hex(&self.trace_id), hex(&self.span_id))
    }
}

/// Lower-case hex of bytes, as OTLP/JSON and trace UIs show ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        digits.push(char::from(DIGITS[usize::from(b >> 4)]));
        digits.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    digits
}

/// Span kind, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    /// Not given.
    #[default]
    Unspecified,
    /// Internal operation (the `mcp.session` span).
    Internal,
    /// Server side of a request (MCP request spans).
    Server,
    /// Client side of a request.
    Client,
    /// Producer of a message.
    Producer,
    /// Consumer of a message.
    Consumer,
}

/// Span status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Status code.
    pub code: StatusCode,
    /// Description, set with an error.
    pub message: String,
}

/// Status code, as in OTLP; codes this model does not know are kept so they can be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    /// Not set.
    #[default]
    Unset,
    /// Explicitly OK.
    Ok,
    /// Failed.
    Error,
    /// A code outside the OTLP enum.
    Unknown(i32),
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(Text),
    /// Raw bytes; read as lossy UTF-8 where a string is expected.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
    /// An integer.
    I64(i64),
    /// A float.
    F64(f64),
}

impl Value {
    /// The value as a string, if it is one (lossy for bytes).
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s.as_str())),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b)),
            _ => None,
        }
    }

    /// The value as an integer: integers, integral floats and numeric strings.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(v) => Some(*v),
            Value::F64(v) if v.is_finite() && v.fract() == 0.0 => Some(*v as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a float: numbers and numeric strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::I64(v) => Some(*v as f64),
            Value::F64(v) => Some(*v),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v.into())
    }
}
impl From<Text> for Value {
    fn from(v: Text) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

/// Attributes in arrival order. Spans carry about twenty, so a scan beats a map; where a key
/// repeats, the last value wins, as in the OpenTelemetry SDK.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(pub Vec<(Text, Value)>);

impl Attributes {
    /// Appends an attribute.
    pub fn push(&mut self, key: impl Into<Text>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A non-empty string value of a key.
    pub fn str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
    }
}

impl<K: Into<Text>, V: Into<Value>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}
