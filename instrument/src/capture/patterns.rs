//! [`Patterns`]: personal data and secrets found by their shape in captured text — email
//! addresses, phone numbers, payment card numbers (Luhn-checked), bearer tokens, JWTs and
//! common API-key forms — and replaced by `[REDACTED:<name>]`, wherever the text sits in the
//! arguments, the result or an error message.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use regex::Regex;

/// One shape: a name (what replaces a match: `[REDACTED:name]`), a regular expression, and an
/// optional check a match must pass too (the Luhn sum of a card number).
#[derive(Clone)]
struct Pattern {
    name: Cow<'static, str>,
    regex: Regex,
    check: Option<fn(&str) -> bool>,
}

/// The shapes redacted in captured text, in the order they are applied.
///
/// ```
/// use archon_mcp_instrument::capture::Patterns;
///
/// let patterns = Patterns::default().with("ticket", r"\bTICKET-\d{6}\b").unwrap();
/// let text = patterns.redact("mail ada@example.com about TICKET-123456, card 4111 1111 1111 1111");
/// assert_eq!(text, "mail [REDACTED:email] about [REDACTED:ticket], card [REDACTED:card]");
/// ```
#[derive(Clone)]
pub struct Patterns(Arc<Vec<Pattern>>);

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|p| &p.name)).finish()
    }
}

impl PartialEq for Patterns {
    fn eq(&self, other: &Self) -> bool {
        let key = |p: &Pattern| (p.name.clone(), p.regex.as_str().to_owned());
        self.0.iter().map(key).eq(other.0.iter().map(key))
    }
}

impl Eq for Patterns {}

/// The built-in shapes. Cards come before phone numbers, so a card's digit groups are not
/// taken for a phone number's.
static BUILT_IN: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let pattern = |name: &'static str, regex: &str, check: Option<fn(&str) -> bool>| Pattern {
        name: Cow::Borrowed(name),
        regex: Regex::new(regex).expect("a built-in pattern compiles"),
        check,
    };
    vec![
        pattern("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", None),
        pattern("bearer", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*", None),
        pattern(
            "api_key",
            r"\b(?:(?:sk|pk|rk)-(?:[a-z]+-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b",
            None,
        ),
        pattern("email", r"(?i)\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b", None),
        pattern("card", r"\b\d(?:[ -]?\d){12,18}\b", Some(luhn)),
        pattern("phone", r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\) ?|\b\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b", None),
    ]
});

impl Default for Patterns {
    /// The built-in shapes: JWTs, bearer tokens, API keys (OpenAI/Anthropic-style `sk-…`, AWS
    /// `AKIA…`, GitHub `ghp_…`, Slack `xox…-`, Google `AIza…`), email addresses, card numbers
    /// (13–19 digits passing the Luhn check), phone numbers (three digit groups, or an area
    /// code in parentheses; an optional `+country` prefix).
    fn default() -> Self {
        Self(Arc::new(BUILT_IN.clone()))
    }
}

impl Patterns {
    /// No shapes at all: only the values of sensitive keys are redacted.
    pub fn none() -> Self {
        Self(Arc::new(Vec::new()))
    }

    /// Adds a shape of your own, applied after the others; matches become `[REDACTED:name]`.
    pub fn with(self, name: impl Into<String>, regex: &str) -> Result<Self, regex::Error> {
        let mut patterns = Vec::clone(&self.0);
        patterns.push(Pattern { name: Cow::Owned(name.into()), regex: Regex::new(regex)?, check: None });
        Ok(Self(Arc::new(patterns)))
    }

    /// `text` with every match of every shape replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for pattern in self.0.iter() {
            if !pattern.regex.is_match(&text) {
                continue;
            }
            let replaced = pattern.regex.replace_all(&text, |found: &regex::Captures<'_>| {
                let matched = &found[0];
                match pattern.check {
                    Some(check) if !check(matched) => matched.to_owned(),
                    _ => format!("[REDACTED:{}]", pattern.name),
                }
            });
            text = Cow::Owned(replaced.into_owned());
        }
        text
    }
}

/// The Luhn check of a card number's digits (separators ignored).
fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each positive is redacted as its kind; each near miss stays as it is.
    #[test]
    fn the_corpus() {
        let patterns = Patterns::default();
        let positives = [
            ("write to ada.lovelace+mcp@example.co.uk today", "email"),
            ("ADA@EXAMPLE.COM", "email"),
            ("call +1 415 555 0100", "phone"),
            ("call (415) 555-0100", "phone"),
            ("call 415-555-0100", "phone"),
            ("call +44 20 7946 0958", "phone"),
            ("visa 4111 1111 1111 1111", "card"),
            ("mc 5500-0000-0000-0004", "card"),
            ("amex 378282246310005", "card"),
            ("Authorization: Bearer abcDEF123456.xyz-_~", "bearer"),
            ("key sk-proj-abcdefghijklmnop1234", "api_key"),
            ("key sk-ant-api03-abcdefghijklmnopqrstu", "api_key"),
            ("aws AKIAIOSFODNN7EXAMPLE", "api_key"),
            ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "api_key"),
            ("slack xoxb-1234567890-abcdefghij", "api_key"),
            ("google AIzaSyA-abcdefghijklmnopqrstuvwxyz12345", "api_key"),
            ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlX2hlcmU", "jwt"),
        ];
        for (text, kind) in positives {
            let redacted = patterns.redact(text);
            assert!(redacted.contains(&format!("[REDACTED:{kind}]")), "{text:?} → {redacted:?}");
        }
        let near_misses = [
            "the date 2026-12-05 at 10:30",
            "version 1.92.0 of rmcp 3.11",
            "host 10.1.2.80 port 5432",
            "card-like 4111111111111112 fails Luhn",
            "order 1234567890123 fails Luhn too",
            "an email-ish user@localhost",
            "uuid 3f2b8c1e-1d2a-4c5b-9e8f-7a6b5c4d3e2f",
            "sk-short",
            "bearer of bad news",
            "12 345 apples",
            "a sha256: 5bdcc146bf60754e6a042426089575c7",
        ];
        for text in near_misses {
            assert_eq!(patterns.redact(text), text, "{text:?} was redacted");
        }
    }

    #[test]
    fn own_patterns_and_none() {
        let patterns = Patterns::none().with("ticket", r"TICKET-\d+").unwrap();
        assert_eq!(patterns.redact("TICKET-42 by ada@example.com"), "[REDACTED:ticket] by ada@example.com");
        assert!(Patterns::none().with("broken", "(").is_err());
        assert_eq!(Patterns::default(), Patterns::default());
        assert_ne!(Patterns::default(), Patterns::none());
    }

    #[test]
    fn luhn_check() {
        assert!(luhn("4111 1111 1111 1111") && luhn("378282246310005"));
        assert!(!luhn("4111 1111 1111 1112") && !luhn("123"));
    }
}
