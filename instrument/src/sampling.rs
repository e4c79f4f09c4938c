//! [`BillingSampler`]: trace sampling that never loses a bill. The spans that become rows — a
//! request in an analytics session, the session itself (they carry `session.id`) — are kept
//! whatever the sampler decides; one the sampler would have dropped is marked
//! `archon.sampling.billing_only` (for a collector to keep out of the tracing backend), and the
//! spans under it are decided as if it had been dropped. `docs/privacy.md` ("Sampling").
//!
//! ```
//! use archon_mcp_instrument::sampling::BillingSampler;
//! use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
//!
//! // 10 % of traces to the tracing backend, every bill to the database.
//! let sampler = BillingSampler::new(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1))));
//! let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
//! # drop(provider);
//! ```

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use crate::attributes as attr;

/// The `tracestate` entry of a span kept for billing only: its children see it.
const STATE_KEY: &str = "archon";
const STATE_BILLING_ONLY: &str = "b";

/// A sampler that keeps every span that bills; see the [module](self).
#[derive(Debug, Clone)]
pub struct BillingSampler<S = Sampler> {
    inner: S,
}

impl<S: ShouldSample + Clone + 'static> BillingSampler<S> {
    /// Samples as `inner` does, except that spans that bill are always kept.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl BillingSampler<Sampler> {
    /// Around the sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name (the SDK's
    /// vocabulary: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
    /// `parentbased_always_off`, `parentbased_traceidratio`); `ParentBased(AlwaysOn)` when unset.
    pub fn from_env() -> Self {
        let ratio = || std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().and_then(|r| r.parse().ok()).unwrap_or(1.0);
        let inner = match std::env::var("OTEL_TRACES_SAMPLER").as_deref() {
            Ok("always_on") => Sampler::AlwaysOn,
            Ok("always_off") => Sampler::AlwaysOff,
            Ok("traceidratio") => Sampler::TraceIdRatioBased(ratio()),
            Ok("parentbased_always_off") => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Ok("parentbased_traceidratio") => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()))),
            _ => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        };
        Self::new(inner)
    }
}

impl<S: ShouldSample + Clone + 'static> ShouldSample for BillingSampler<S> {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        // Under a span kept only for billing, the sampler sees the parent it dropped.
        let parent = parent_context.map(|cx| cx.span().span_context().clone());
        let billing_parent =
            parent.as_ref().is_some_and(|p| p.trace_state().get(STATE_KEY) == Some(STATE_BILLING_ONLY));
        let unsampled = parent.filter(|_| billing_parent).map(|p| {
            let dropped = SpanContext::new(
                p.trace_id(),
                p.span_id(),
                TraceFlags::default(),
                p.is_remote(),
                p.trace_state().clone(),
            );
            Context::new().with_remote_span_context(dropped)
        });
        let parent_context = unsampled.as_ref().or(parent_context);
        let result = self.inner.should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        let bills = attributes.iter().any(|kv| kv.key.as_str() == attr::SESSION_ID);
        if !bills || result.decision == SamplingDecision::RecordAndSample {
            return result;
        }
        let trace_state =
            result.trace_state.insert(STATE_KEY, STATE_BILLING_ONLY).unwrap_or_else(|_| TraceState::default());
        SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: vec![KeyValue::new(attr::ARCHON_SAMPLING_BILLING_ONLY, true)],
            trace_state,
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceContextExt as _};

    use super::*;

    fn decide(sampler: &BillingSampler, parent: Option<&Context>, attributes: &[KeyValue]) -> SamplingResult {
        sampler.should_sample(parent, TraceId::from(7), "tools/call search", &SpanKind::Server, attributes, &[])
    }

    #[test]
    fn spans_that_bill_are_kept_and_marked_the_rest_sampled_as_asked() {
        let nothing = BillingSampler::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)));
        let bill = [KeyValue::new(attr::SESSION_ID, "s-1")];
        let kept = decide(&nothing, None, &bill);
        assert_eq!(kept.decision, SamplingDecision::RecordAndSample);
        assert_eq!(kept.attributes, vec![KeyValue::new(attr::ARCHON_SAMPLING_BILLING_ONLY, true)]);
        assert_eq!(kept.trace_state.get(STATE_KEY), Some(STATE_BILLING_ONLY));
        assert_eq!(decide(&nothing, None, &[]).decision, SamplingDecision::Drop, "not a bill: sampled as asked");

        // A span under the kept one is decided as if its parent had been dropped.
        let everything = BillingSampler::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let parent = SpanContext::new(TraceId::from(7), SpanId::from(9), TraceFlags::SAMPLED, false, kept.trace_state);
        let cx = Context::new().with_remote_span_context(parent);
        assert_eq!(decide(&everything, Some(&cx), &[]).decision, SamplingDecision::Drop);
        // A sampled bill is left as the sampler made it.
        let sampled = decide(&everything, None, &bill);
        assert!(sampled.decision == SamplingDecision::RecordAndSample && sampled.attributes.is_empty());
    }
}
