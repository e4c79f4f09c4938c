//! [`Minimisation`]: what is stored of the personal fields a span carries — each as sent, as a
//! keyed hash, or not at all — applied as spans become rows, so a deployment can keep per-user
//! cost without storing who the user is in clear (`docs/privacy.md`). Pure: no IO.

use std::sync::Arc;

use crate::ids;
use crate::keyed_hash::keyed_hash;
use crate::rows::SessionUpsert;

/// What is stored of one personal field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldPolicy {
    /// As sent (the default).
    #[default]
    Store,
    /// As `hmac:<hex>`, a keyed hash: the same value always maps to the same hash, so grouping
    /// and per-user cost still work, and no one without the key can find whose it is.
    Hash,
    /// Not at all.
    Drop,
}

impl std::str::FromStr for FieldPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "store" => Ok(Self::Store),
            "hash" => Ok(Self::Hash),
            "drop" => Ok(Self::Drop),
            other => Err(format!("{other:?} is not store, hash or drop")),
        }
    }
}

/// The policy of each personal field, and the key of their hashes.
///
/// ```
/// use archon_mcp_exporter::minimise::{FieldPolicy, Minimisation};
///
/// // Per-user cost, without the user's name, address or login in the database.
/// let minimisation = Minimisation::new(b"a key of at least 16 bytes".to_vec())
///     .unwrap()
///     .with_principal(FieldPolicy::Hash)
///     .with_email(FieldPolicy::Drop)
///     .with_name(FieldPolicy::Drop)
///     .with_login(FieldPolicy::Drop);
/// # let _ = minimisation;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Minimisation {
    /// The principal (`user.id`: `user_key`, and `user_id` derived from it). Dropped, requests
    /// are anonymous: no per-user cost.
    pub principal: FieldPolicy,
    /// `user.email` → `user_email`.
    pub email: FieldPolicy,
    /// `user.full_name` → `user_name`.
    pub name: FieldPolicy,
    /// `user.name` (the login) → `metadata.user_login`.
    pub login: FieldPolicy,
    key: Arc<[u8]>,
}

with_setters!(Minimisation {
    with_principal => principal: FieldPolicy,
    with_email => email: FieldPolicy,
    with_name => name: FieldPolicy,
    with_login => login: FieldPolicy,
});

impl Minimisation {
    /// Every field stored as sent, hashes (once asked for) keyed with `key` (at least 16 bytes:
    /// a short key's hashes could be recomputed by trying keys).
    pub fn new(key: Vec<u8>) -> Result<Self, String> {
        if key.len() < 16 {
            return Err(format!("the minimisation key is {} bytes: use at least 16", key.len()));
        }
        Ok(Self { key: key.into(), ..Self::default() })
    }

    /// Whether anything is hashed or dropped.
    pub fn is_active(&self) -> bool {
        [self.principal, self.email, self.name, self.login].iter().any(|p| *p != FieldPolicy::Store)
    }

    fn apply(&self, policy: FieldPolicy, value: &mut Option<String>) {
        *value = match (policy, value.take()) {
            (FieldPolicy::Store, value) => value,
            (FieldPolicy::Hash, Some(value)) => Some(keyed_hash("hmac:", &self.key, &value)),
            (FieldPolicy::Hash | FieldPolicy::Drop, _) => None,
        };
    }

    /// Minimises the personal fields of a session upsert (whose `user_id` the request rows of
    /// the same span take).
    pub(crate) fn session(&self, session: &mut SessionUpsert) {
        if !self.is_active() {
            return;
        }
        if self.principal != FieldPolicy::Store {
            self.apply(self.principal, &mut session.user_key);
            session.user_id = session.user_key.as_deref().map(ids::user_id);
        }
        self.apply(self.email, &mut session.user_email);
        self.apply(self.name, &mut session.user_name);
        if self.login != FieldPolicy::Store {
            let mut login = session.metadata.remove("user_login").and_then(|v| v.as_str().map(str::to_owned));
            self.apply(self.login, &mut login);
            if let Some(login) = login {
                session.metadata.insert("user_login".into(), login.into());
            }
        }
        // `user.hash`, an unkeyed hash of the email, would undo a minimised email.
        if self.email != FieldPolicy::Store {
            session.metadata.remove("user_hash");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn ada() -> SessionUpsert {
        let mut session = SessionUpsert::new(uuid::Uuid::nil(), SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH);
        session.user_key = Some("ada@corp".into());
        session.user_id = Some(ids::user_id("ada@corp"));
        session.user_email = Some("ada@example.com".into());
        session.user_name = Some("Ada Lovelace".into());
        session.metadata.insert("user_login".into(), "ada".into());
        session
    }

    #[test]
    fn each_field_stored_hashed_or_dropped() {
        let key = b"0123456789abcdef".to_vec();
        let mut stored = ada();
        Minimisation::new(key.clone()).unwrap().session(&mut stored);
        assert_eq!(stored, ada(), "the default stores everything as sent");

        let hashing = Minimisation::new(key.clone())
            .unwrap()
            .with_principal(FieldPolicy::Hash)
            .with_email(FieldPolicy::Hash)
            .with_name(FieldPolicy::Drop)
            .with_login(FieldPolicy::Drop);
        let (mut once, mut again) = (ada(), ada());
        hashing.session(&mut once);
        hashing.session(&mut again);
        assert_eq!(once, again, "the same person, the same hashes");
        let key_hash = once.user_key.clone().unwrap();
        assert!(key_hash.starts_with("hmac:") && !key_hash.contains("ada"));
        assert_eq!(once.user_id, Some(ids::user_id(&key_hash)));
        assert!(once.user_email.as_deref().unwrap().starts_with("hmac:"));
        assert_eq!((once.user_name.as_deref(), once.metadata.get("user_login")), (None, None));

        let other_key = Minimisation::new(b"fedcba9876543210".to_vec()).unwrap().with_principal(FieldPolicy::Hash);
        let mut other = ada();
        other_key.session(&mut other);
        assert_ne!(other.user_key, once.user_key, "another key, other hashes");

        let mut anonymous = ada();
        Minimisation::new(key).unwrap().with_principal(FieldPolicy::Drop).session(&mut anonymous);
        assert_eq!((anonymous.user_key, anonymous.user_id), (None, None));
        assert!(Minimisation::new(b"short".to_vec()).is_err());
    }
}
