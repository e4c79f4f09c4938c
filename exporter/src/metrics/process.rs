//! The standard `process_*` metrics of the Prometheus client libraries, read from `/proc` at
//! each scrape (Linux; elsewhere none are shown).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/self/stat` (`USER_HZ`: 100 on every Linux platform).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub(super) struct ProcessCollector;

/// What `/proc` says of this process.
#[derive(Debug, Default, PartialEq)]
struct Reading {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

impl Reading {
    fn now() -> Self {
        let proc = |path: &str| std::fs::read_to_string(path).ok();
        let mut reading = proc("/proc/self/stat").map(|stat| from_stat(&stat)).unwrap_or_default();
        if let (Some(start_ticks), Some(boot)) =
            (reading.start_time_seconds, proc("/proc/stat").as_deref().and_then(boot_time))
        {
            reading.start_time_seconds = Some(boot + start_ticks);
        } else {
            reading.start_time_seconds = None;
        }
        reading.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as i64);
        reading.max_fds = proc("/proc/self/limits").as_deref().and_then(max_open_files);
        reading
    }
}

/// CPU time, memory and start (in seconds after boot) from `/proc/self/stat`. The command
/// name (field 2) may hold spaces and parentheses: fields are counted after its last `)`.
fn from_stat(stat: &str) -> Reading {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Field 3 (state) is the first after the name.
    let field = |n: usize| after_name.split_whitespace().nth(n - 3);
    let number = |n: usize| field(n).and_then(|v| v.parse::<f64>().ok());
    let page_size = 4096.0;
    Reading {
        cpu_seconds: number(14).zip(number(15)).map(|(user, system)| (user + system) / TICKS_PER_SECOND),
        virtual_bytes: number(23).map(|v| v as i64),
        resident_bytes: number(24).map(|pages| (pages * page_size) as i64),
        start_time_seconds: number(22).map(|ticks| ticks / TICKS_PER_SECOND),
        ..Reading::default()
    }
}

fn boot_time(stat: &str) -> Option<f64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reading = Reading::now();
        if let Some(seconds) = reading.cpu_seconds {
            let help = "Total user and system CPU time spent in seconds";
            encode_one(&mut encoder, "process_cpu_seconds", help, ConstCounter::new(seconds))?;
        }
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", reading.resident_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", reading.virtual_bytes),
            ("process_open_fds", "Number of open file descriptors", reading.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", reading.max_fds),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                encode_one(&mut encoder, name, help, ConstGauge::new(value))?;
            }
        }
        if let Some(start) = reading.start_time_seconds {
            let help = "Start time of the process since unix epoch in seconds";
            encode_one(&mut encoder, "process_start_time_seconds", help, ConstGauge::new(start))?;
        }
        Ok(())
    }
}

/// One metric with its descriptor.
fn encode_one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as `/proc` shows it.
        let stat = "4242 (serve (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0 1000 \
                    104857600 2560 18446744073709551615";
        let reading = from_stat(stat);
        assert_eq!(reading.cpu_seconds, Some(3.0));
        assert_eq!(reading.start_time_seconds, Some(10.0));
        assert_eq!(reading.virtual_bytes, Some(104_857_600));
        assert_eq!(reading.resident_bytes, Some(2560 * 4096));
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\n"), Some(1_700_000_000.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }
}
