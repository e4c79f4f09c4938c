//! Model usage and cost, reported by tool code on the call it serves, and token estimates.
//!
//! ```
//! use archon_mcp_instrument::usage::{self, Usage};
//!
//! // Inside a tool, after calling a model:
//! usage::record(Usage::new("claude-sonnet-4-5").with_tokens(1_200, 340));
//! // Outside a traced call this does nothing.
//! ```

use std::cell::RefCell;

use rmcp::model::{CallToolResult, ContentBlock};

/// What a tool reports about the model calls it made.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// The model (`gen_ai.request.model`).
    pub model: Option<String>,
    /// Input tokens (`gen_ai.usage.input_tokens`).
    pub input_tokens: Option<u64>,
    /// Output tokens (`gen_ai.usage.output_tokens`).
    pub output_tokens: Option<u64>,
    /// A cost the tool knows (`archon.cost.amount`); wins over the exporter's pricing.
    pub cost: Option<f64>,
    /// Currency of the cost, ISO 4217 (`USD` when not set).
    pub currency: Option<String>,
}

impl Usage {
    /// Usage of a model.
    pub fn new(model: impl Into<String>) -> Self {
        Self { model: Some(model.into()), ..Self::default() }
    }

    /// Sets token counts.
    pub fn with_tokens(mut self, input: u64, output: u64) -> Self {
        self.input_tokens = Some(input);
        self.output_tokens = Some(output);
        self
    }

    /// Sets a cost in USD.
    pub fn with_cost_usd(mut self, amount: f64) -> Self {
        self.cost = Some(amount);
        self.currency = Some("USD".into());
        self
    }

    /// Adds another report: tokens and costs add up, the latest model wins.
    fn absorb(&mut self, other: Usage) {
        fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        self.model = other.model.or(self.model.take());
        self.input_tokens = add(self.input_tokens, other.input_tokens);
        self.output_tokens = add(self.output_tokens, other.output_tokens);
        self.cost = add(self.cost, other.cost);
        self.currency = other.currency.or(self.currency.take());
    }
}

tokio::task_local! {
    static CURRENT: RefCell<Option<Usage>>;
}

/// Records usage on the tool call being served (several reports add up). A no-op outside a
/// call traced by [`Traced`](crate::Traced), and in tasks the tool spawned.
pub fn record(usage: Usage) {
    let _ = CURRENT.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        match slot.as_mut() {
            Some(known) => known.absorb(usage),
            None => *slot = Some(usage),
        }
    });
}

/// Runs `future` with a fresh usage slot; returns its output and what it reported.
///
/// A combinator, not an `async fn`: an `async fn` would keep `future` twice in its state (as
/// its argument and as what it awaits), and this state is part of every request's.
pub(crate) fn scope<F: Future>(future: F) -> impl Future<Output = (F::Output, Option<Usage>)> {
    use futures::FutureExt as _;
    // The closure runs inside the scope's poll, where the slot is still set.
    CURRENT.scope(RefCell::new(None), future.map(|output| (output, CURRENT.with(|slot| slot.borrow_mut().take()))))
}

/// How to estimate the tokens of tool arguments and results when tools report none.
///
/// On by default (`CharsDiv4`): a tool that reports no usage still has tokens, flagged
/// `estimated`, which the exporter prices at its estimate model (`serve --estimate-model`,
/// `StoreConfig::with_estimate_model`) — without them its rows would have no cost at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEstimation {
    /// No estimates: a tool without `usage::record` has no tokens and no cost.
    Off,
    /// Characters ÷ 4, the usual rule of thumb for English text and JSON.
    #[default]
    CharsDiv4,
}

impl TokenEstimation {
    /// Estimated tokens of a text.
    pub fn estimate(self, text: &str) -> Option<u64> {
        match self {
            TokenEstimation::Off => None,
            TokenEstimation::CharsDiv4 => Some((text.chars().count() as u64).div_ceil(4)),
        }
    }
}

/// The text a tool result puts into the model's context.
pub(crate) fn result_text(result: &CallToolResult) -> String {
    let mut text = String::new();
    for block in &result.content {
        if let ContentBlock::Text(t) = block {
            text.push_str(&t.text);
        }
    }
    if let Some(structured) = &result.structured_content {
        text.push_str(&structured.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_add_up_inside_a_scope_only() {
        record(Usage::new("outside").with_tokens(1, 1));
        let ((), usage) = scope(async {
            record(Usage::new("a").with_tokens(100, 10));
            tokio::task::yield_now().await;
            record(Usage::new("b").with_tokens(5, 5).with_cost_usd(0.5));
        })
        .await;
        let usage = usage.unwrap();
        assert_eq!(usage.model.as_deref(), Some("b"));
        assert_eq!((usage.input_tokens, usage.output_tokens), (Some(105), Some(15)));
        assert_eq!((usage.cost, usage.currency.as_deref()), (Some(0.5), Some("USD")));

        let ((), none) = scope(async {}).await;
        assert_eq!(none, None);
    }

    #[test]
    fn the_scope_holds_its_future_once() {
        let payload = [0u8; 1024];
        let future = async move { std::hint::black_box(payload).len() };
        let own = std::mem::size_of_val(&future);
        let scoped = std::mem::size_of_val(&scope(future));
        assert!(scoped < own + 512, "a scope of a {own}-byte future takes {scoped} bytes");
    }

    #[test]
    fn chars_div_4() {
        assert_eq!(TokenEstimation::CharsDiv4.estimate("abcdefgh"), Some(2));
        assert_eq!(TokenEstimation::CharsDiv4.estimate("abcdefghi"), Some(3));
        assert_eq!(TokenEstimation::Off.estimate("abc"), None);
    }
}
