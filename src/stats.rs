//! Quantiles of measured samples, as the demo's report, the soak run and the benches print them.

/// The value at quantile `q` (0–1) of `sorted` samples, nearest rank; NaN when there are none.
///
/// ```
/// assert_eq!(archon_mcp_otel::stats::quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
/// ```
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
