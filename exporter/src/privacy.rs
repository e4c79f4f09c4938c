//! One person's data, under their control: everything stored about a user exported as JSON (a
//! subject-access request), or forgotten — deleted, or pseudonymised so that cost totals stay
//! right. Each run is one transaction, refused for logins that are not `archon_admin`, and
//! leaves an audit row without the data (`archon_privacy_audit`, V13). `docs/privacy.md` says
//! what is stored where.
//!
//! ```no_run
//! use archon_mcp_exporter::privacy::{self, ForgetPolicy, Subject};
//! # async fn run(client: &mut tokio_postgres::Client) -> Result<(), privacy::PrivacyError> {
//! let ada = Subject::user("ada");
//! let everything = privacy::export(client, &ada).await?; // JSON: sessions, requests, logins, budgets
//! let forgotten = privacy::forget(client, &ada, &ForgetPolicy::Delete, false).await?;
//! println!("{everything}\n{forgotten}");
//! # Ok(()) }
//! ```

use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};
use tokio_postgres::Client;

use crate::ids;

/// Whose data: a user key (the principal, e.g. a JWT `sub`), an email address, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subject {
    /// The user key (`archon_mcp_sessions.user_key`).
    pub user_key: Option<String>,
    /// An email address, matched without regard to case.
    pub email: Option<String>,
}

impl Subject {
    /// The user with this key.
    pub fn user(key: impl Into<String>) -> Self {
        Self { user_key: Some(key.into()), email: None }
    }

    /// The user with this email address.
    pub fn email(email: impl Into<String>) -> Self {
        Self { user_key: None, email: Some(email.into()) }
    }

    /// What the audit row records: a SHA-256 of the key (else of the email), never the value.
    fn hash(&self) -> String {
        let value = self.user_key.as_deref().or(self.email.as_deref()).unwrap_or_default();
        format!("sha256:{:x}", Sha256::digest(value.as_bytes()))
    }
}

/// How `forget` erases.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForgetPolicy {
    /// Delete the person's sessions and requests, their reader login mappings and user budgets.
    Delete,
    /// Keep the rows, with the person replaced by `pseudonym:<keyed hash>` and their email, name
    /// and login cleared: totals and per-department cost stay right, the person is not named.
    /// The key makes the pseudonym impossible to recompute from a guessed user key.
    Pseudonymise {
        /// The secret the pseudonym is keyed with (at least 16 bytes).
        key: Vec<u8>,
    },
}

impl ForgetPolicy {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Pseudonymise { .. } => "pseudonymise",
        }
    }
}

/// What a privacy operation could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyError {
    /// Only `archon_admin` (or a superuser) may export or erase a person's data.
    #[error(
        "login {login:?} is not a member of archon_admin: exporting and forgetting a user's data is an admin's task (GRANT archon_admin TO …)"
    )]
    NotAdmin {
        /// The login that asked.
        login: String,
    },
    /// Neither a user key nor an email was given.
    #[error("say whose data: --user KEY or --email ADDRESS")]
    NoSubject,
    /// The pseudonymisation key is too short to keep pseudonyms from being recomputed.
    #[error("the pseudonymisation key is {0} bytes: use at least 16 (e.g. `openssl rand -hex 32`)")]
    ShortKey(usize),
    /// The database refused.
    #[error("{}", crate::pg_error::describe(.0))]
    Database(#[from] tokio_postgres::Error),
}

/// The sessions of a subject: `$1` is the user key, `$2` the email (either may be NULL).
macro_rules! subject_sessions {
    () => {
        "archon_mcp_sessions WHERE (user_key = $1 OR lower(user_email) = lower($2))"
    };
}

/// The subject's sessions and their users.
const SUBJECT_SESSIONS: &str = concat!("SELECT session_id, user_id FROM ", subject_sessions!());

/// Everything stored about `subject`, as one JSON document: its sessions, its requests (its
/// own, and those in its sessions), the reader logins mapped to it and the budgets naming it.
/// Audited; with [`export_counts`], only how many rows of each there are.
pub async fn export(client: &mut Client, subject: &Subject) -> Result<Json, PrivacyError> {
    export_or_count(client, subject, false).await
}

/// How many rows of each table [`export`] would return (a dry run: not audited, no data shown).
pub async fn export_counts(client: &mut Client, subject: &Subject) -> Result<Json, PrivacyError> {
    export_or_count(client, subject, true).await
}

async fn export_or_count(client: &mut Client, subject: &Subject, dry_run: bool) -> Result<Json, PrivacyError> {
    let tx = begin_as_admin(client, subject).await?;
    let (key, email) = (&subject.user_key, &subject.email);
    let document: Json = tx
        .query_one(
            &format!(
                "WITH subject AS ({SUBJECT_SESSIONS}),
                      keys AS (SELECT $1::text AS key UNION SELECT user_key FROM archon_mcp_sessions
                               WHERE session_id IN (SELECT session_id FROM subject) AND user_key IS NOT NULL)
                 SELECT jsonb_build_object(
                   'sessions', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.connected_at), '[]')
                                  FROM archon_mcp_sessions s WHERE s.session_id IN (SELECT session_id FROM subject)),
                   'requests', (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.timestamp), '[]')
                                  FROM archon_mcp_requests r
                                 WHERE r.session_id IN (SELECT session_id FROM subject)
                                    OR r.user_id IN (SELECT user_id FROM subject WHERE user_id IS NOT NULL)),
                   'reader_logins', (SELECT coalesce(jsonb_agg(to_jsonb(l)), '[]')
                                       FROM archon_reader_logins l WHERE l.user_key IN (SELECT key FROM keys)),
                   'budgets', (SELECT coalesce(jsonb_agg(to_jsonb(b)), '[]')
                                 FROM archon_budgets b WHERE b.scope = 'user' AND b.scope_value IN (SELECT key FROM keys)))"
            ),
            &[key, email],
        )
        .await?
        .get(0);
    let counts: serde_json::Map<String, Json> = document
        .as_object()
        .into_iter()
        .flatten()
        .map(|(table, rows)| (table.clone(), rows.as_array().map_or(0, Vec::len).into()))
        .collect();
    let counts = Json::Object(counts);
    if dry_run {
        tx.rollback().await?;
        return Ok(counts);
    }
    audit(&tx, "export", None, subject, &counts).await?;
    tx.commit().await?;
    Ok(document)
}

/// Erases `subject` by `policy`, in one transaction, and returns how many rows of each table
/// were deleted or changed. With `dry_run` the transaction is rolled back: the counts say what
/// would happen.
pub async fn forget(
    client: &mut Client,
    subject: &Subject,
    policy: &ForgetPolicy,
    dry_run: bool,
) -> Result<Json, PrivacyError> {
    if let ForgetPolicy::Pseudonymise { key } = policy
        && key.len() < 16
    {
        return Err(PrivacyError::ShortKey(key.len()));
    }
    let tx = begin_as_admin(client, subject).await?;
    let (key, email) = (&subject.user_key, &subject.email);
    // The subject's keys as its sessions recorded them (an email finds the key too).
    let keys: Vec<String> = tx
        .query(
            concat!("SELECT DISTINCT user_key FROM ", subject_sessions!(), " AND user_key IS NOT NULL"),
            &[key, email],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .chain(key.clone())
        .collect();
    let sessions = format!("SELECT session_id FROM ({SUBJECT_SESSIONS}) s");
    // The person's user ids, read once: the changes below remove the sessions they come from.
    let user_ids: Vec<uuid::Uuid> = tx
        .query(concat!("SELECT DISTINCT user_id FROM ", subject_sessions!(), " AND user_id IS NOT NULL"), &[key, email])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // The person's id leaves the rollups now; their hours, marked by the changes below (V14's
    // triggers), are recomputed at the next round.
    for (rollup, _, _) in crate::rollups::TABLES.iter().filter(|(_, _, per_user)| *per_user) {
        tx.execute(&format!("DELETE FROM {rollup} WHERE user_id = ANY($1)"), &[&user_ids]).await?;
    }
    let (requests, sessions, budgets) = match policy {
        ForgetPolicy::Delete => (
            tx.execute(
                &format!("DELETE FROM archon_mcp_requests WHERE session_id IN ({sessions}) OR user_id = ANY($3)"),
                &[key, email, &user_ids],
            )
            .await?,
            tx.execute(&format!("DELETE FROM archon_mcp_sessions WHERE session_id IN ({sessions})"), &[key, email])
                .await?,
            tx.execute("DELETE FROM archon_budgets WHERE scope = 'user' AND scope_value = ANY($1)", &[&keys]).await?,
        ),
        ForgetPolicy::Pseudonymise { key: secret } => {
            let pseudonym = pseudonym(secret, keys.first().map_or("", String::as_str));
            let pseudonym_id = ids::user_id(&pseudonym);
            (
                tx.execute(
                    "UPDATE archon_mcp_requests SET user_id = $1 WHERE user_id = ANY($2)",
                    &[&pseudonym_id, &user_ids],
                )
                .await?,
                tx.execute(
                    &format!(
                        "UPDATE archon_mcp_sessions
                            SET user_key = $3, user_id = $4, user_email = NULL, user_name = NULL,
                                metadata = metadata - 'user_hash' - 'user_login'
                          WHERE session_id IN ({sessions})"
                    ),
                    &[key, email, &pseudonym, &pseudonym_id],
                )
                .await?,
                tx.execute(
                    "UPDATE archon_budgets SET scope_value = $2 WHERE scope = 'user' AND scope_value = ANY($1)",
                    &[&keys, &pseudonym],
                )
                .await?,
            )
        }
    };
    // The session changes above marked the person's months for the reaper's upkeep (V25); the
    // rollups of those months went with the rest, and so does their id in the marks.
    tx.execute("DELETE FROM archon_mcp_rollup_dirty_user_month WHERE user_id = ANY($1)", &[&user_ids]).await?;
    // A login mapped to the person names them under either policy.
    let logins = tx.execute("DELETE FROM archon_reader_logins WHERE user_key = ANY($1)", &[&keys]).await?;
    let counts =
        serde_json::json!({"requests": requests, "sessions": sessions, "reader_logins": logins, "budgets": budgets});
    if dry_run {
        tx.rollback().await?;
    } else {
        audit(&tx, "forget", Some(policy.as_str()), subject, &counts).await?;
        tx.commit().await?;
    }
    Ok(counts)
}

/// Opens the transaction, refusing a login that is not `archon_admin` (or a superuser) before
/// it reads anything.
async fn begin_as_admin<'a>(
    client: &'a mut Client,
    subject: &Subject,
) -> Result<tokio_postgres::Transaction<'a>, PrivacyError> {
    if subject.user_key.is_none() && subject.email.is_none() {
        return Err(PrivacyError::NoSubject);
    }
    let row = client
        .query_one(
            "SELECT current_user::text,
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                    OR pg_has_role(current_user, 'archon_admin', 'MEMBER')",
            &[],
        )
        .await?;
    let (login, admin): (String, bool) = (row.get(0), row.get(1));
    if !admin {
        return Err(PrivacyError::NotAdmin { login });
    }
    Ok(client.transaction().await?)
}

async fn audit(
    tx: &tokio_postgres::Transaction<'_>,
    action: &str,
    policy: Option<&str>,
    subject: &Subject,
    counts: &Json,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO archon_privacy_audit (action, policy, subject_hash, counts) VALUES ($1, $2, $3, $4)",
        &[&action, &policy, &subject.hash(), counts],
    )
    .await
    .map(drop)
}

/// `pseudonym:` and the first 16 bytes, hex, of HMAC-SHA256(`secret`, `user_key`).
fn pseudonym(secret: &[u8], user_key: &str) -> String {
    crate::keyed_hash::keyed_hash("pseudonym:", secret, user_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pseudonym_is_hmac_sha256() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = pseudonym(b"Jefe", "what do ya want for nothing?");
        assert_eq!(mac, "pseudonym:5bdcc146bf60754e6a042426089575c7");
        assert_ne!(pseudonym(b"another key 0123", "ada"), pseudonym(b"a third key 01234", "ada"));
    }

    #[test]
    fn the_audit_names_no_one() {
        let hash = Subject::user("ada@example.com").hash();
        assert!(hash.starts_with("sha256:") && !hash.contains("ada"));
    }
}
