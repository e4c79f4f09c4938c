//! Secrets handed to the binaries (a bearer token, a JWT secret): read and checked before
//! anything starts, so an empty file never turns authentication off, and flags that show a
//! secret to every local user are named.
//!
//! ```
//! use archon_mcp_exporter::secret::{self, SecretError};
//! assert_eq!(secret::check("--auth-token", " s3cret\n".into(), 1).unwrap(), "s3cret");
//! assert!(matches!(secret::check("--auth-token", " \n".into(), 1), Err(SecretError::Empty { .. })));
//! ```

use std::path::Path;

/// The shortest HS256 secret accepted: 16 bytes (128 bits). A shorter one, as people type
/// them ("secret", "change-me"), is recovered from one captured token by an offline search;
/// 128 random bits are not. RFC 7518 §3.2 asks for a key as long as the hash (32 bytes), and
/// below that [`JWT_SECRET_RECOMMENDED_BYTES`] a warning is given.
pub const JWT_SECRET_MIN_BYTES: usize = 16;

/// The HS256 secret length RFC 7518 §3.2 requires (the hash's output, 256 bits); shorter
/// secrets above [`JWT_SECRET_MIN_BYTES`] are used with a warning.
pub const JWT_SECRET_RECOMMENDED_BYTES: usize = 32;

/// A secret that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret's file could not be read.
    #[error("cannot read {flag} {path}: {source}")]
    Unreadable {
        /// The flag that named the file.
        flag: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is empty or only whitespace: authentication would be off, or any token valid.
    #[error(
        "{flag} is empty (or only whitespace): that would turn authentication off; put the secret in it, or leave \
         the option out to run without one"
    )]
    Empty {
        /// Where the secret came from.
        flag: String,
    },
    /// The secret is shorter than the floor.
    #[error(
        "{flag} is {len} bytes: at least {min} are needed (a short secret is guessed from one token); generate one \
         with `openssl rand -base64 32`"
    )]
    TooShort {
        /// Where the secret came from.
        flag: String,
        /// Its length in bytes.
        len: usize,
        /// The floor.
        min: usize,
    },
}

/// Checks a secret given as a value: surrounding whitespace removed, then at least `min_bytes`
/// long (an empty one is always refused).
pub fn check(flag: &str, value: String, min_bytes: usize) -> Result<String, SecretError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(SecretError::Empty { flag: flag.to_owned() });
    }
    if trimmed.len() < min_bytes {
        return Err(SecretError::TooShort { flag: flag.to_owned(), len: trimmed.len(), min: min_bytes });
    }
    Ok(trimmed.to_owned())
}

/// Reads a secret from a file and [`check`]s it.
pub fn read_file(flag: &str, path: &Path, min_bytes: usize) -> Result<String, SecretError> {
    let value = std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable {
        flag: flag.to_owned(),
        path: path.display().to_string(),
        source,
    })?;
    check(&format!("{flag} {}", path.display()), value, min_bytes)
}

/// What to warn about in a command line (`std::env::args()`): each secret flag of
/// `secret_flags` given a value there, and a connection string with a password. Any local user
/// reads a command line in `ps`.
///
/// ```
/// let args = ["serve", "--auth-token=abc", "--database-url", "postgres://u:pw@db/x"].map(String::from);
/// let warnings = archon_mcp_exporter::secret::on_command_line(args, &["--auth-token"]);
/// assert_eq!(warnings.len(), 2);
/// ```
pub fn on_command_line(args: impl IntoIterator<Item = String>, secret_flags: &[&str]) -> Vec<String> {
    let mut warnings = Vec::new();
    for arg in args {
        let flag = arg.split('=').next().unwrap_or_default();
        if secret_flags.contains(&flag) {
            warnings.push(format!(
                "{flag} is visible to every local user (ps): use {flag}-file or the environment variable"
            ));
        }
        // `--x-url=URL`, or a URL on its own: a password is `user:pass@`; or `password=` of
        // the key=value form.
        let url_like = flag.ends_with("-url") || flag.starts_with("postgres");
        let userinfo = arg.split('@').next().filter(|_| arg.contains('@')).and_then(|u| u.rsplit("//").next());
        if (url_like && userinfo.is_some_and(|u| u.contains(':'))) || arg.contains("password=") {
            let name = if flag.starts_with("--") { flag } else { "a connection string" };
            warnings.push(format!(
                "a password in {name} is visible to every local user (ps): use the environment variable, PGPASSWORD \
                 or ~/.pgpass"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_whitespace_and_short_secrets_are_refused() {
        assert!(matches!(check("x", String::new(), 0), Err(SecretError::Empty { .. })));
        assert!(matches!(check("x", " \t\n".into(), 0), Err(SecretError::Empty { .. })));
        assert!(matches!(check("x", "secret".into(), JWT_SECRET_MIN_BYTES), Err(SecretError::TooShort { len: 6, .. })));
        assert_eq!(check("x", "0123456789abcdef\n".into(), JWT_SECRET_MIN_BYTES).unwrap(), "0123456789abcdef");
    }

    #[test]
    fn an_empty_file_is_an_error_that_names_it() {
        let path = std::env::temp_dir().join(format!("archon-empty-secret-{}", std::process::id()));
        std::fs::write(&path, "  \n").unwrap();
        let error = read_file("--auth-token-file", &path, 1).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(error.starts_with("--auth-token-file ") && error.contains("is empty"), "{error}");
    }

    #[test]
    fn secrets_on_the_command_line_are_named() {
        let args = ["x", "--jwt-secret", "s", "--budgets-database-url", "postgres://u:p@h/d", "--listen", "a@b:1"];
        let warnings = on_command_line(args.map(String::from), &["--jwt-secret"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("--jwt-secret is visible"));
        assert!(on_command_line(["x", "--database-url", "postgres://u@h/d"].map(String::from), &[]).is_empty());
    }
}
