//! The in-flight budget: export bytes held in memory at once across both ports, as received and
//! as decompressed (`BodyLimits::max_in_flight_bytes`). Bytes are reserved before they are held
//! and released when their export is answered; beyond the budget an export is told to retry.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget, in KiB, shared by both receivers.
#[derive(Debug, Clone)]
pub(crate) struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// A budget of `bytes` (at least one KiB).
    pub(crate) fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(kib(bytes).max(1) as usize)))
    }

    /// Reserves `bytes`, or `None` when the budget has not that much left.
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_many_owned(kib(bytes)).ok()
    }
}

/// Bytes as permits of the budget (KiB, rounded up).
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// What one export holds of the budget, shared by its body (which reserves as frames arrive)
/// and the code that answers it (which keeps it until then).
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Held {
    /// Reserves `bytes` more from `budget`; `false` when it has not that much left.
    pub(crate) fn reserve(&self, budget: &InFlight, bytes: usize) -> bool {
        let Some(more) = budget.try_reserve(bytes) else { return false };
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
        true
    }
}

/// A request body whose frames are reserved from the budget as they arrive; past the budget it
/// fails with `over_budget()` (a `tonic::Status` for gRPC, which tonic answers as it is).
pub(crate) struct Reserved<B, E> {
    body: B,
    budget: InFlight,
    held: Held,
    over_budget: fn() -> E,
}

impl<B, E> Reserved<B, E> {
    /// `body`, reserving into `held`.
    pub(crate) fn new(body: B, budget: InFlight, held: Held, over_budget: fn() -> E) -> Self {
        Self { body, budget, held, over_budget }
    }
}

impl<B, E> Body for Reserved<B, E>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: std::error::Error + Send + Sync + 'static,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && !self.held.reserve(&self.budget, data.remaining())
        {
            return Poll::Ready(Some(Err(Box::new((self.over_budget)()))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_are_released_with_the_last_holder() {
        let budget = InFlight::new(4 << 10);
        let held = Held::default();
        assert!(held.reserve(&budget, 3 << 10));
        assert!(!held.reserve(&budget, 2 << 10), "1 KiB left");
        let other = held.clone();
        drop(held);
        assert!(budget.try_reserve(2 << 10).is_none(), "still held by the clone");
        drop(other);
        assert!(budget.try_reserve(4 << 10).is_some());
    }
}
