//! [`Fields`]: the attributes a request span is mapped from, found in one pass over its
//! attributes instead of one scan of them per attribute read.

use std::borrow::Cow;
use std::sync::LazyLock;

use archon_mcp_instrument::attributes as attr;

use crate::span::{Attributes, KeyIndex, Value};

/// The attributes read from every request span: its session id, then those that describe one
/// request, never its session ([`REQUEST_ONLY`]).
const PER_REQUEST: [&str; 22] = [
    attr::SESSION_ID,
    attr::MCP_METHOD_NAME,
    attr::GEN_AI_TOOL_NAME,
    attr::GEN_AI_OPERATION_NAME,
    attr::GEN_AI_PROMPT_NAME,
    attr::MCP_RESOURCE_URI,
    attr::JSONRPC_REQUEST_ID,
    attr::CLIENT_ADDRESS,
    attr::NETWORK_PROTOCOL_NAME,
    attr::NETWORK_PROTOCOL_VERSION,
    attr::ERROR_TYPE,
    attr::RPC_RESPONSE_STATUS_CODE,
    attr::ARCHON_ERROR_MESSAGE,
    attr::GEN_AI_REQUEST_MODEL,
    attr::GEN_AI_USAGE_INPUT_TOKENS,
    attr::GEN_AI_USAGE_OUTPUT_TOKENS,
    attr::ARCHON_USAGE_ESTIMATED_INPUT_TOKENS,
    attr::ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS,
    attr::ARCHON_COST_AMOUNT,
    attr::ARCHON_COST_CURRENCY,
    attr::GEN_AI_TOOL_CALL_ARGUMENTS,
    attr::GEN_AI_TOOL_CALL_RESULT,
];

/// Attributes that describe one request, never its session: the session upsert reads none of
/// them (a unit test holds it to that). Every other attribute counts as describing the
/// session, so an attribute added later is compared — never wrongly skipped.
#[cfg(test)]
pub(super) const REQUEST_ONLY: &[&str] = PER_REQUEST.split_at(1).1;

/// The index of `key` in [`PER_REQUEST`], computed at compile time.
const fn index(key: &str) -> usize {
    let mut i = 0;
    while i < PER_REQUEST.len() {
        let known = PER_REQUEST[i].as_bytes();
        if known.len() == key.len() {
            let mut j = 0;
            while j < known.len() && known[j] == key.as_bytes()[j] {
                j += 1;
            }
            if j == known.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not an attribute read per request")
}

/// A field of [`Fields`], by its attribute key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field(usize);

impl Field {
    pub(super) const SESSION_ID: Self = Self(index(attr::SESSION_ID));
    pub(super) const METHOD: Self = Self(index(attr::MCP_METHOD_NAME));
    pub(super) const TOOL: Self = Self(index(attr::GEN_AI_TOOL_NAME));
    pub(super) const JSONRPC_REQUEST_ID: Self = Self(index(attr::JSONRPC_REQUEST_ID));
    pub(super) const ERROR_TYPE: Self = Self(index(attr::ERROR_TYPE));
    pub(super) const RPC_STATUS_CODE: Self = Self(index(attr::RPC_RESPONSE_STATUS_CODE));
    pub(super) const ERROR_MESSAGE: Self = Self(index(attr::ARCHON_ERROR_MESSAGE));
    pub(super) const MODEL: Self = Self(index(attr::GEN_AI_REQUEST_MODEL));
    pub(super) const INPUT_TOKENS: Self = Self(index(attr::GEN_AI_USAGE_INPUT_TOKENS));
    pub(super) const OUTPUT_TOKENS: Self = Self(index(attr::GEN_AI_USAGE_OUTPUT_TOKENS));
    pub(super) const ESTIMATED_INPUT_TOKENS: Self = Self(index(attr::ARCHON_USAGE_ESTIMATED_INPUT_TOKENS));
    pub(super) const ESTIMATED_OUTPUT_TOKENS: Self = Self(index(attr::ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS));
    pub(super) const COST_AMOUNT: Self = Self(index(attr::ARCHON_COST_AMOUNT));
    pub(super) const COST_CURRENCY: Self = Self(index(attr::ARCHON_COST_CURRENCY));

    /// The field of an attribute key, if it is one.
    fn of(key: &str) -> Option<Self> {
        static INDEX: LazyLock<KeyIndex> = LazyLock::new(|| KeyIndex::new(PER_REQUEST));
        INDEX.find(key.as_bytes()).map(|(_, i)| Self(i))
    }
}

/// Whether an attribute describes one request, never its session ([`REQUEST_ONLY`]).
pub(super) fn request_only(key: &str) -> bool {
    Field::of(key).is_some_and(|field| field.0 != Field::SESSION_ID.0)
}

/// A request span's per-request attributes, found in one pass; where a key repeats, the last
/// value wins, as [`Attributes::get`] reads it.
pub(super) struct Fields<'a>([Option<&'a Value>; PER_REQUEST.len()]);

impl<'a> Fields<'a> {
    pub(super) fn of(attributes: &'a Attributes) -> Self {
        let mut found = [None; PER_REQUEST.len()];
        for (key, value) in &attributes.0 {
            if let Some(field) = Field::of(key) {
                found[field.0] = Some(value);
            }
        }
        Self(found)
    }

    /// The value of a field.
    pub(super) fn get(&self, field: Field) -> Option<&'a Value> {
        self.0[field.0]
    }

    /// A non-empty string value of a field, as [`Attributes::str`] reads it.
    pub(super) fn str(&self, field: Field) -> Option<Cow<'a, str>> {
        self.get(field).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
    }
}
