//! Opt-in capture of tool arguments and results: redacted — the values of sensitive keys, and
//! personal data and secrets found by their shape ([`Patterns`]) — then truncated.
//!
//! ```
//! use archon_mcp_instrument::capture::redact_and_truncate;
//! use serde_json::json;
//!
//! let args = json!({"query": "rust", "api_key": "sk-123", "nested": {"Authorization": "Bearer x"}});
//! let captured = redact_and_truncate(&args, 1000);
//! assert!(!captured.contains("sk-123") && !captured.contains("Bearer x"));
//! assert!(captured.contains("rust"));
//! ```

mod patterns;

pub use patterns::Patterns;

use serde_json::Value;

/// Substrings of object keys whose values are never captured (case-insensitive).
pub const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "credential",
    "private_key",
];

const REDACTED: &str = "[REDACTED]";

/// JSON with the values of sensitive keys replaced and the built-in [`Patterns`] redacted in
/// its strings, serialised and cut to `max_chars` characters (an ellipsis marks a cut).
pub fn redact_and_truncate(value: &Value, max_chars: usize) -> String {
    let text = redact(value, &Patterns::default()).to_string();
    truncate(&text, max_chars)
}

/// Cuts `text` to at most `max_chars` characters, marking the cut with `…`.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

fn redact(value: &Value, patterns: &Patterns) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SENSITIVE_KEYS.iter().any(|s| lower.contains(s)) {
                        (k.clone(), Value::String(REDACTED.into()))
                    } else {
                        (k.clone(), redact(v, patterns))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, patterns)).collect()),
        Value::String(text) => Value::String(patterns.redact(text).into_owned()),
        other => other.clone(),
    }
}

/// Which tools may have their arguments and results captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapturePolicy {
    tools: Vec<String>,
    /// Longest captured value, in characters.
    pub max_chars: usize,
    /// The shapes redacted in captured text (the built-in ones by default).
    pub patterns: Patterns,
}

impl CapturePolicy {
    /// Capture nothing (the default).
    pub fn none() -> Self {
        Self { tools: Vec::new(), max_chars: 2048, patterns: Patterns::default() }
    }

    /// Capture the named tools' arguments and results.
    pub fn tools<I: IntoIterator<Item = S>, S: Into<String>>(tools: I) -> Self {
        Self { tools: tools.into_iter().map(Into::into).collect(), max_chars: 2048, patterns: Patterns::default() }
    }

    /// Sets the longest captured value.
    pub fn max_chars(mut self, max_chars: usize) -> Self {
        self.max_chars = max_chars;
        self
    }

    /// Sets the shapes redacted in captured text (e.g. `Patterns::default().with(…)`).
    pub fn patterns(mut self, patterns: Patterns) -> Self {
        self.patterns = patterns;
        self
    }

    /// Whether this tool's content may be captured.
    pub fn allows(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool || t == "*")
    }

    /// A captured value: sensitive keys and this policy's patterns redacted, then truncated.
    pub fn capture(&self, value: &Value) -> String {
        truncate(&redact(value, &self.patterns).to_string(), self.max_chars)
    }

    /// A captured text (an error's message): this policy's patterns redacted, then truncated.
    pub fn capture_text(&self, text: &str) -> String {
        truncate(&self.patterns.redact(text), self.max_chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_values_never_appear() {
        let v = json!({"user_password": "hunter2", "list": [{"refresh_token": "r1"}], "Cookie": "c", "ok": 1});
        let out = redact_and_truncate(&v, 10_000);
        for secret in ["hunter2", "r1", "\"c\""] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("\"ok\":1"));
    }

    #[test]
    fn truncation_is_by_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }

    #[test]
    fn policy() {
        assert!(!CapturePolicy::none().allows("search"));
        assert!(CapturePolicy::tools(["search"]).allows("search"));
        assert!(!CapturePolicy::tools(["search"]).allows("delete"));
        assert!(CapturePolicy::tools(["*"]).allows("delete"));
    }
}
