//! What Grafana's PostgreSQL data source does to a panel query before it runs it: template
//! variables and the time macros. Used by the dashboard test and the panel benchmark, so both
//! run exactly what Grafana would.
//!
//! ```
//! use std::collections::BTreeMap;
//! use archon_mcp_otel::grafana::{TimeRange, expand};
//!
//! let vars = BTreeMap::from([("user", vec!["o'brien".to_owned()])]);
//! let range = TimeRange { from: "2026-01-01T00:00:00Z".into(), to: "2026-01-02T00:00:00Z".into(), interval: "1h".into() };
//! let sql = expand("SELECT $__timeGroupAlias(ts, $__interval) WHERE u IN (${user:sqlstring}) AND $__timeFilter(ts)", &vars, &range);
//! assert_eq!(
//!     sql,
//!     "SELECT floor(extract(epoch from ts)/3600)*3600 AS \"time\" WHERE u IN ('o''brien') AND ts BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z'"
//! );
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// The dashboard time range and the interval Grafana derives from it.
#[derive(Debug, Clone)]
pub struct TimeRange {
    /// Start, RFC 3339.
    pub from: String,
    /// End, RFC 3339.
    pub to: String,
    /// `$__interval`, like `1m` or `1h`.
    pub interval: String,
}

/// The dashboards in `dir` (`dashboards/json`), by file name.
pub fn load_dashboards(dir: &Path) -> std::io::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let json = serde_json::from_str(&std::fs::read_to_string(&path)?).map_err(std::io::Error::other)?;
            out.push((path.file_name().unwrap_or_default().to_string_lossy().into_owned(), json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The raw SQL of a panel's targets.
pub fn panel_queries(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .map_or_else(Vec::new, |t| t.iter().filter_map(|t| t["rawSql"].as_str().map(str::to_owned)).collect())
}

/// Variable names a text references as `$name` or `${name…}` (Grafana's `$__…` excluded).
pub fn referenced_variables(text: &str) -> BTreeSet<String> {
    text.match_indices('$')
        .filter_map(|(i, _)| {
            let rest = &text[i + 1..];
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            (!name.is_empty() && !name.starts_with("__")).then_some(name)
        })
        .collect()
}

fn interval_seconds(interval: &str) -> u64 {
    let (number, unit) = interval.split_at(interval.len().saturating_sub(1));
    let n: u64 = number.parse().unwrap_or(60);
    match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => 60,
    }
}

/// A query as Grafana sends it: `${name:sqlstring}` becomes the values quoted and joined
/// (single quotes doubled), `${name}` the first value, and the macros `$__timeFilter`,
/// `$__timeFrom()`, `$__timeTo()`, `$__timeGroup`, `$__timeGroupAlias` and `$__interval` their SQL.
pub fn expand(sql: &str, vars: &BTreeMap<&str, Vec<String>>, range: &TimeRange) -> String {
    let mut out = sql.to_owned();
    for (name, values) in vars {
        let quoted = values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(",");
        out = out.replace(&format!("${{{name}:sqlstring}}"), &quoted);
        out = out.replace(&format!("${{{name}}}"), values.first().map_or("", String::as_str));
    }
    out = out.replace("$__interval", &range.interval);
    out = out.replace("$__timeFrom()", &format!("'{}'", range.from));
    out = out.replace("$__timeTo()", &format!("'{}'", range.to));
    const MACROS: [&str; 3] = ["$__timeGroupAlias(", "$__timeGroup(", "$__timeFilter("];
    while let Some((start, name)) = MACROS.iter().find_map(|m| out.find(m).map(|i| (i, *m))) {
        let args_start = start + name.len();
        let Some(close) = out[args_start..].find(')') else { break };
        let end = args_start + close;
        let args: Vec<String> = out[args_start..end].split(',').map(|a| a.trim().to_owned()).collect();
        let seconds = args.get(1).map_or(60, |i| interval_seconds(i));
        let replacement = match name {
            "$__timeFilter(" => format!("{} BETWEEN '{}' AND '{}'", args[0], range.from, range.to),
            "$__timeGroup(" => format!("floor(extract(epoch from {})/{seconds})*{seconds}", args[0]),
            _ => format!("floor(extract(epoch from {})/{seconds})*{seconds} AS \"time\"", args[0]),
        };
        out.replace_range(start..=end, &replacement);
    }
    out
}

/// RFC 3339 (UTC, seconds) of a time, as Grafana writes time-range bounds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600 + 3_661)),
            "2026-01-01T01:01:01Z"
        );
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn variables() {
        assert_eq!(
            referenced_variables("a ${user:sqlstring} $tool \"cost $\" $__interval ${session}"),
            BTreeSet::from(["user".into(), "tool".into(), "session".into()])
        );
    }
}
