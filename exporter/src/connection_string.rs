//! PostgreSQL connection strings read as libpq reads them, password included: from the string,
//! else `PGPASSWORD`, else the password file (`PGPASSFILE`, default `~/.pgpass`), so no secret
//! has to be on a command line.

use std::path::PathBuf;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// Parses `url` (`postgres://…` or `key=value …`) and fills in the password libpq would use.
pub(crate) fn parse(url: &str) -> Result<Config, String> {
    let mut config: Config = url.parse().map_err(|e| {
        format!(
            "{}: expected postgres://user[:password]@host[:port]/database or host=… dbname=… user=…",
            crate::pg_error::describe(&e)
        )
    })?;
    if config.get_password().is_none() {
        if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
            config.password(password);
        } else if let Some(password) = password_file().and_then(|file| from_password_file(&config, &file)) {
            config.password(password);
        }
    }
    Ok(config)
}

fn password_file() -> Option<PathBuf> {
    std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass")))
}

/// The first `host:port:database:user:password` line of the password file matching `config`
/// (`*` matches anything; `\:` and `\\` are escapes).
fn from_password_file(config: &Config, file: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
        #[cfg(not(unix))]
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().map(str::to_owned).or_else(|| std::env::var("USER").ok()).unwrap_or_default();
    let database = config.get_dbname().map_or_else(|| user.clone(), str::to_owned);
    let wanted = [host.as_str(), port.as_str(), database.as_str(), user.as_str()];
    text.lines().filter(|l| !l.trim_start().starts_with('#')).find_map(|line| {
        let fields = split_fields(line);
        (fields.len() == 5 && fields[..4].iter().zip(wanted).all(|(field, want)| field == "*" || field == want))
            .then(|| fields[4].clone())
    })
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_lines_match_with_wildcards_and_escapes() {
        assert_eq!(split_fields(r"db:5432:*:app:pa\:ss\\word"), ["db", "5432", "*", "app", r"pa:ss\word"]);
        let dir = std::env::temp_dir().join(format!("archon-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "# comment\nother:5432:*:*:nope\ndb.internal:*:archon:app:from-file\n").unwrap();
        let config: Config = "postgres://app@db.internal:6543/archon".parse().unwrap();
        assert_eq!(from_password_file(&config, &file).as_deref(), Some("from-file"));
        let other: Config = "postgres://app@db.internal:6543/other".parse().unwrap();
        assert_eq!(from_password_file(&other, &file), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn parses_urls_with_their_password() {
        let config = parse("postgres://app:s3cret@db.internal:5433/archon").unwrap();
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        assert!(parse("postgres://app@db:notaport/x").is_err());
    }
}
