//! [`Target`]: what a request names — a tool, a prompt, a resource, the client an `initialize`
//! names — and the span name and attributes it makes, by the MCP conventions.

use std::borrow::Cow;

use opentelemetry::KeyValue;

use crate::attributes as attr;
use crate::runtime::Shared;

/// What a request names, as far as span names and attributes go.
pub(crate) enum Target<'a> {
    /// No target (lists, ping, …).
    None,
    /// A tool; `known` when the server has it (a name it does not know is not recorded: it
    /// enters the span only once the server answered for it), with its interned names when it
    /// has them.
    Tool { name: &'a str, known: bool, interned: Option<(&'static str, &'static str)> },
    /// A prompt (its name enters the span name only once the server has served it).
    Prompt(&'a str),
    /// A resource.
    Resource(&'a str),
    /// The client an `initialize` names.
    Client(&'a rmcp::model::Implementation),
}

impl Target<'_> {
    /// The span name, and the tool or prompt the request names; pushes their attributes. Known
    /// tools have interned names: no allocation for the span name or attribute.
    // `&Cow`: the method is cloned as it is, so a borrowed name stays borrowed.
    #[allow(clippy::type_complexity, clippy::ptr_arg)]
    pub(crate) fn names(
        self,
        method: &Cow<'static, str>,
        shared: &Shared,
        attributes: &mut Vec<KeyValue>,
    ) -> (Cow<'static, str>, Option<ToolCall>, Option<String>) {
        match self {
            Target::None => (method.clone(), None, None),
            Target::Tool { name, known, interned } => {
                attributes.push(KeyValue::new(attr::GEN_AI_OPERATION_NAME, attr::OPERATION_EXECUTE_TOOL));
                let capture = shared.settings.capture.allows(name);
                let (name, span_name) = match (interned, known) {
                    (Some((tool, span_name)), _) => (Cow::Borrowed(tool), Cow::Borrowed(span_name)),
                    (None, true) => (Cow::Owned(name.to_owned()), Cow::Owned(format!("{method} {name}"))),
                    // The convention's span name without a low-cardinality target.
                    (None, false) => (Cow::Owned(name.to_owned()), method.clone()),
                };
                if known {
                    attributes.push(KeyValue::new(attr::GEN_AI_TOOL_NAME, name.clone()));
                }
                (span_name, Some(ToolCall { name, known, capture }), None)
            }
            Target::Prompt(name) => {
                attributes.push(KeyValue::new(attr::GEN_AI_PROMPT_NAME, name.to_owned()));
                (method.clone(), None, Some(name.to_owned()))
            }
            Target::Resource(uri) => {
                attributes.push(KeyValue::new(attr::MCP_RESOURCE_URI, uri.to_owned()));
                (method.clone(), None, None)
            }
            Target::Client(_) => (method.clone(), None, None),
        }
    }
}

/// The tool a `tools/call` names.
pub(crate) struct ToolCall {
    pub(crate) name: Cow<'static, str>,
    /// The server has it: recorded as `gen_ai.tool.name` (else only once the server answered
    /// for it).
    pub(crate) known: bool,
    /// Its content may be captured.
    pub(crate) capture: bool,
}
