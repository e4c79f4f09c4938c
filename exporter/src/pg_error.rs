//! What a PostgreSQL error says: its description in full, and its class — transient, refused
//! data, or permanent — on which the store and the retry policy above it decide.

use tokio_postgres::error::SqlState;

/// What a PostgreSQL error says about the write that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgFailure {
    /// The connection broke, the server is restarting or out of resources, a deadlock: the same
    /// write may succeed later.
    Transient,
    /// The data itself was refused (a data exception, an integrity violation, a program limit
    /// such as an oversized index row): this row never goes in, the others may.
    RefusedData,
    /// Anything else (no schema, no permission): it takes an operator.
    Permanent,
}

impl PgFailure {
    /// Classifies a SQLSTATE; `None` (no SQLSTATE: the connection broke or could not be made) is
    /// transient.
    pub(crate) fn of(code: Option<&SqlState>) -> Self {
        let Some(code) = code else { return PgFailure::Transient };
        match &code.code()[..2] {
            // 08 connection, 53 insufficient resources, 57 operator intervention (shutdown,
            // restart), 40 serialization failure / deadlock.
            "08" | "53" | "57" | "40" => PgFailure::Transient,
            _ if *code == SqlState::LOCK_NOT_AVAILABLE => PgFailure::Transient,
            "22" | "23" | "54" => PgFailure::RefusedData,
            _ => PgFailure::Permanent,
        }
    }
}

/// What PostgreSQL or the driver said, in full: the driver's own `Display` stops at "db error"
/// or "error connecting to server" and leaves the reason in its source.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_failures() {
        for (code, expected) in [
            (None, PgFailure::Transient),
            (Some(SqlState::CONNECTION_FAILURE), PgFailure::Transient),
            (Some(SqlState::TOO_MANY_CONNECTIONS), PgFailure::Transient),
            (Some(SqlState::ADMIN_SHUTDOWN), PgFailure::Transient),
            (Some(SqlState::T_R_DEADLOCK_DETECTED), PgFailure::Transient),
            (Some(SqlState::LOCK_NOT_AVAILABLE), PgFailure::Transient),
            (Some(SqlState::NUMERIC_VALUE_OUT_OF_RANGE), PgFailure::RefusedData),
            (Some(SqlState::CHECK_VIOLATION), PgFailure::RefusedData),
            (Some(SqlState::PROGRAM_LIMIT_EXCEEDED), PgFailure::RefusedData),
            (Some(SqlState::UNDEFINED_TABLE), PgFailure::Permanent),
            (Some(SqlState::INSUFFICIENT_PRIVILEGE), PgFailure::Permanent),
            (Some(SqlState::READ_ONLY_SQL_TRANSACTION), PgFailure::Permanent),
        ] {
            assert_eq!(PgFailure::of(code.as_ref()), expected, "{code:?}");
        }
    }
}
