//! Deterministic identifiers: the same span always yields the same ids, so replays collide.
//!
//! ```
//! use archon_mcp_exporter::ids;
//!
//! // A UUID principal is kept; anything else becomes a stable UUIDv5.
//! let uuid = "0b3f6d1e-8a0c-4d7b-9c3e-5f1a2b3c4d5e";
//! assert_eq!(ids::user_id(uuid).to_string(), uuid);
//! assert_eq!(ids::user_id("alice@example.com"), ids::user_id("alice@example.com"));
//! assert_ne!(ids::user_id("alice@example.com"), ids::session_id("alice@example.com"));
//! ```

use uuid::Uuid;

/// Namespace of session ids derived from non-UUID `session.id` values.
pub const SESSION_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f0c3a_5b7e_5c2a_9f41_8e3d2c1b0a01);
/// Namespace of user ids derived from non-UUID principals.
pub const USER_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f0c3a_5b7e_5c2a_9f41_8e3d2c1b0a02);
/// Namespace of request ids derived from trace id + span id.
pub const REQUEST_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f0c3a_5b7e_5c2a_9f41_8e3d2c1b0a03);

/// The analytics session id for a `session.id` value: the value itself when it is a UUID, else
/// UUIDv5 of it.
pub fn session_id(value: &str) -> Uuid {
    uuid_or_v5(SESSION_NAMESPACE, value)
}

/// The `user_id` for a principal: the principal when it is a UUID, else UUIDv5 of it.
pub fn user_id(principal: &str) -> Uuid {
    uuid_or_v5(USER_NAMESPACE, principal)
}

/// What is stored of a transport session id (`Mcp-Session-Id`): its SHA-256, so that anyone who
/// can read the sessions table (dashboards) cannot replay a live session id against the server,
/// yet the same id always maps to the same value.
///
/// ```
/// use archon_mcp_exporter::ids;
///
/// let stored = ids::mcp_session_ref("3b8f0c2a9d");
/// assert!(stored.starts_with("sha256:") && !stored.contains("3b8f0c2a9d"));
/// assert_eq!(stored, ids::mcp_session_ref("3b8f0c2a9d"));
/// ```
pub fn mcp_session_ref(id: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", crate::span::hex(&Sha256::digest(id.as_bytes())))
}

/// The `request_id` of a span: UUIDv5 of its trace id and span id.
///
/// Computed per request row, so with the `sha1` crate, which uses the CPU's SHA instructions
/// where it has them (`Uuid::new_v5` hashes in portable code): the same id, in about half the
/// time (BENCHMARKS.md).
pub fn request_id(trace_id: &[u8; 16], span_id: &[u8; 8]) -> Uuid {
    use sha1::{Digest as _, Sha1};
    let digest =
        Sha1::new().chain_update(REQUEST_NAMESPACE.as_bytes()).chain_update(trace_id).chain_update(span_id).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

fn uuid_or_v5(namespace: Uuid, value: &str) -> Uuid {
    let value = value.trim();
    Uuid::try_parse(value).unwrap_or_else(|_| Uuid::new_v5(&namespace, value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_values_are_kept_in_any_spelling() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(session_id(&id.to_string()), id);
        assert_eq!(session_id(&id.simple().to_string()), id);
        assert_eq!(session_id(&id.to_string().to_uppercase()), id);
        assert_eq!(user_id(&format!(" {id} ")), id);
    }

    #[test]
    fn other_values_map_to_fixed_v5_ids() {
        let a = session_id("conn-42");
        assert_eq!(a.get_version_num(), 5);
        assert_eq!(a, session_id("conn-42"));
        assert_ne!(a, session_id("conn-43"));
        // Pinned: changing a namespace would split every existing user and session.
        assert_eq!(user_id("alice").to_string(), Uuid::new_v5(&USER_NAMESPACE, b"alice").to_string());
    }

    #[test]
    fn request_ids_depend_on_both_ids() {
        let t = [7u8; 16];
        assert_eq!(request_id(&t, &[1; 8]), request_id(&t, &[1; 8]));
        assert_ne!(request_id(&t, &[1; 8]), request_id(&t, &[2; 8]));
        assert_ne!(request_id(&[8; 16], &[1; 8]), request_id(&t, &[1; 8]));
    }

    #[test]
    fn request_ids_are_the_v5_ids_of_both_ids() {
        for (trace_id, span_id) in [([7u8; 16], [1u8; 8]), ([0; 16], [0; 8]), ([0xff; 16], [0x80; 8])] {
            let name: Vec<u8> = trace_id.iter().chain(&span_id).copied().collect();
            assert_eq!(request_id(&trace_id, &span_id), Uuid::new_v5(&REQUEST_NAMESPACE, &name));
        }
    }
}
