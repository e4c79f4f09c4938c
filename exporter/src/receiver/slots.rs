//! The connection budget of the receivers' ports: at most `max` connections open at once, each
//! either *working* (a request of it is being served) or *waiting* (a TLS handshake, request
//! headers not yet complete, a keep-alive between requests). When the budget is full, a new
//! connection takes the slot of the connection that has been waiting longest; only when every
//! connection is working is it refused.
//!
//! So connections that never get to a request — a trickle of header bytes, HTTP/2 pings on a
//! connection without streams, a TLS handshake that stalls — cannot keep a collector out, however
//! many an attacker holds open: waiting costs nothing to evict, and without the token no
//! connection gets past its headers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The budget, shared by the listeners that use it.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// One connection's standing.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Requests of this connection being served.
    working: AtomicUsize,
    /// When it last started waiting (µs since the budget's epoch).
    waiting_since: AtomicU64,
    /// Cancelled when another connection took this one's slot.
    evicted: CancellationToken,
    epoch: Instant,
}

impl Slot {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Since when the connection has been waiting for a request (meaningful while not working).
    pub(crate) fn waiting_since(&self) -> Instant {
        self.epoch + std::time::Duration::from_micros(self.waiting_since.load(Ordering::Acquire))
    }

    /// Whether a request of this connection is being served.
    pub(crate) fn working(&self) -> bool {
        self.working.load(Ordering::Acquire) > 0
    }

    /// Marks a request served until the returned guard is dropped.
    pub(crate) fn work(self: &Arc<Self>) -> Working {
        self.working.fetch_add(1, Ordering::AcqRel);
        Working(self.clone())
    }

    /// Completes when the slot was given to another connection.
    pub(crate) fn evicted(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.evicted.clone().cancelled_owned()
    }
}

/// A request being served: the connection is working until this is dropped.
#[derive(Debug)]
pub(crate) struct Working(Arc<Slot>);

impl Drop for Working {
    fn drop(&mut self) {
        // The last request done: the connection waits from now.
        self.0.waiting_since.store(self.0.now(), Ordering::Release);
        self.0.working.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's hold on a slot, released when dropped.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    id: u64,
    slot: Arc<Slot>,
    slots: Arc<Slots>,
}

impl SlotGuard {
    /// The connection's standing.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl Slots {
    /// A budget of `max` connections (at least one).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), epoch: Instant::now(), next_id: AtomicU64::new(0), open: Mutex::default() })
    }

    /// A slot for a new connection, waiting from now: a free one, else the one of the connection
    /// waiting longest (which is told to close); `None` when every connection is working.
    pub(crate) fn acquire(self: &Arc<Self>) -> Option<SlotGuard> {
        let slot = Arc::new(Slot {
            working: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(self.epoch.elapsed().as_micros() as u64),
            evicted: CancellationToken::new(),
            epoch: self.epoch,
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            let longest = open
                .iter()
                .filter(|(_, s)| !s.working())
                .min_by_key(|(_, s)| s.waiting_since.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            let evicted = open.remove(&longest).expect("found above");
            evicted.evicted.cancel();
        }
        open.insert(id, slot.clone());
        Some(SlotGuard { id, slot, slots: self.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_evicts_the_longest_waiting_and_refuses_only_when_all_work() {
        let slots = Slots::new(2);
        let first = slots.acquire().unwrap();
        let second = slots.acquire().unwrap();
        let busy = second.slot().work();
        // Full: the third takes the slot of the first (waiting), not of the second (working).
        let third = slots.acquire().unwrap();
        assert!(first.slot().evicted.is_cancelled());
        assert!(!second.slot().evicted.is_cancelled());
        let also_busy = third.slot().work();
        assert!(slots.acquire().is_none(), "every connection works");
        drop(busy);
        let fourth = slots.acquire();
        assert!(fourth.is_some(), "the second waits again and is evicted");
        assert!(second.slot().evicted.is_cancelled());
        drop(also_busy);
        // A dropped guard frees its slot; an evicted one's drop removes nothing else.
        drop((first, second, third));
        assert_eq!(slots.open.lock().unwrap().len(), 1);
    }
}
