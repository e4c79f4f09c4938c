//! [`StatelessClients`]: the client a stateless HTTP client named in its `initialize`, kept
//! for its later requests, which rmcp serves each with a stand-in peer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::Implementation;

/// How long a stateless client's `initialize` names its later requests.
const REMEMBERED_FOR: Duration = Duration::from_secs(30 * 60);
/// The most clients remembered; beyond it the oldest is forgotten.
const MAX_REMEMBERED: usize = 4096;

/// The clients that sent `initialize` to a server serving statelessly, by user and address.
#[derive(Debug, Default)]
pub(crate) struct StatelessClients(Mutex<HashMap<String, (Implementation, Instant)>>);

impl StatelessClients {
    /// `client` named itself in an `initialize` from `key`.
    pub(crate) fn remember(&self, key: String, client: &Implementation) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_REMEMBERED && !known.contains_key(&key) {
            known.retain(|_, (_, at)| at.elapsed() < REMEMBERED_FOR);
            if known.len() >= MAX_REMEMBERED {
                let oldest = known.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone());
                oldest.map(|k| known.remove(&k));
            }
        }
        known.insert(key, (client.clone(), Instant::now()));
    }

    /// The client `key` last named, if recently.
    pub(crate) fn recall(&self, key: &str) -> Option<Implementation> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.get(key).filter(|(_, at)| at.elapsed() < REMEMBERED_FOR).map(|(client, _)| client.clone())
    }
}
