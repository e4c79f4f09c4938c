//! Soak: `archon-mcp-exporter serve` (its own process, reaper on) under a steady OTLP/gRPC load
//! for ten minutes; every 10 s it prints and records the window's export latency (send → rows
//! committed → acknowledged), `serve`'s RSS, the rows stored and the rollup lag (the rows not
//! yet in the hourly rollups, in seconds of load), then compares the last minute with the first
//! and times the reaper's catch-up once the load stops. Not part of CI.
//!
//! ```text
//! cargo build --release -p archon-mcp-exporter && cargo build --release --example soak
//! target/release/examples/soak                       # 10 min at 5,000 spans/s, reaper every 5 s
//! target/release/examples/soak --reap-interval 30    # the reaper's default round
//! target/release/examples/soak --minutes 1 --rate 2000
//! ```
//! Writes `target/soak.csv`. PostgreSQL: a throw-away local cluster (as the benchmarks).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use archon_mcp_exporter::testing::{Connection, LocalCluster, TestUser, otlp_request, with_usage};
use archon_mcp_otel::serve_process::{ServeProcess, status_kib};
use archon_mcp_otel::stats::quantile;
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio_postgres::NoTls;

/// Spans per export request (10 sessions of 50 calls).
const SPANS_PER_EXPORT: u64 = 500;
const WINDOW: Duration = Duration::from_secs(10);

/// `archon-mcp-exporter serve` (its own process, reaper on) under a steady OTLP/gRPC load: export
/// latency, RSS, rows stored and rollup lag every 10 s, then the reaper's catch-up.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// Minutes of load.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Spans per second, in exports of 500.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Seconds between the reaper's rounds (`serve --reap-interval-secs`; its default is 30).
    #[arg(long, default_value_t = 5.0)]
    reap_interval: f64,
}

/// Export `k`: 10 new sessions (sessions never repeat, as in a long-running deployment), 50 calls
/// each, ending now.
fn export(k: u64) -> ExportTraceServiceRequest {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let users = [
        TestUser { principal: "alice", email: "alice@example.com", name: "Alice", department: "Research" },
        TestUser { principal: "bob", email: "bob@example.com", name: "Bob", department: "Sales" },
        TestUser { principal: "carol", email: "carol@example.com", name: "Carol", department: "Support" },
    ];
    let mut spans = Vec::with_capacity(SPANS_PER_EXPORT as usize);
    for s in 0..10 {
        let session = k * 10 + s;
        let mut conn = Connection::new(
            &format!("0195f3a0-0000-7000-8000-{session:012x}"),
            "claude-code",
            Some(users[session as usize % 3]),
        );
        for i in 0..SPANS_PER_EXPORT / 10 {
            let start = now - (SPANS_PER_EXPORT / 10 - i) * 20_000_000;
            let span = conn.call(["search_knowledge", "create_task"][i as usize % 2], start, 12);
            spans.push(if i % 5 == 0 { with_usage(span, "claude-sonnet-4-5", 2400, 310) } else { span });
        }
    }
    otlp_request(&spans)
}

#[derive(Default)]
struct Window {
    latencies_ms: std::sync::Mutex<Vec<f64>>,
    retries: AtomicU64,
}

/// Request rows not yet counted by the hourly rollups: written since their hour's last upkeep.
async fn unrolled(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let sql = "SELECT (SELECT count(*) FROM archon_mcp_requests) - (SELECT coalesce(sum(requests), 0) FROM archon_mcp_rollup_hourly)::bigint";
    Ok(db.query_one(sql, &[]).await?.get::<_, i64>(0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Args { minutes, rate, reap_interval } = Args::parse();
    let reap_interval = reap_interval.to_string();
    let exports_per_sec = rate / SPANS_PER_EXPORT as f64;
    println!("soak: {minutes} min at {rate} spans/s ({exports_per_sec} exports/s of {SPANS_PER_EXPORT} spans)");

    let cluster = tokio::task::spawn_blocking(LocalCluster::start).await?.map_err(anyhow::Error::msg)?;
    let url = cluster.url("postgres");
    archon_mcp_exporter::migrate::migrate_url(&url).await?;
    // The reaper runs as in production (by default more often, so its rounds are part of the soak).
    let reaper = ["--reap-interval-secs", &reap_interval, "--idle-after-secs", "30", "--timeout-after-secs", "60"];
    let serve = ServeProcess::spawn(&url, &reaper).context("start serve")?;
    let endpoint = format!("http://{}", serve.grpc);
    let mut client = loop {
        match TraceServiceClient::connect(endpoint.clone()).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let (db, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(connection);

    let window = Arc::new(Window::default());
    let sent = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let load = {
        let (window, sent) = (window.clone(), sent.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / exports_per_sec));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut k = 0;
            while Instant::now() < end {
                tick.tick().await;
                let request = export(k);
                let started = Instant::now();
                while client.export(request.clone()).await.is_err() {
                    window.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                window.latencies_ms.lock().unwrap().push(started.elapsed().as_secs_f64() * 1e3);
                sent.fetch_add(SPANS_PER_EXPORT, Ordering::Relaxed);
                k += 1;
            }
        })
    };

    let csv_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak.csv");
    let mut csv = String::from(
        "elapsed_s,rss_mib,export_p50_ms,export_p99_ms,export_max_ms,retries,spans_sent,rows,rollup_lag_s\n",
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10} {:>9}",
        "elapsed", "RSS MiB", "p50 ms", "p99 ms", "max ms", "retries", "sent", "rows", "lag s"
    );
    let started = Instant::now();
    let mut samples: Vec<(f64, f64, f64)> = Vec::new(); // (elapsed, rss, p99)
    let mut lags: Vec<f64> = Vec::new();
    while !load.is_finished() {
        tokio::time::sleep(WINDOW).await;
        let mut latencies = std::mem::take(&mut *window.latencies_ms.lock().unwrap());
        latencies.sort_by(f64::total_cmp);
        let rss = status_kib(serve.pid(), "VmRSS:") as f64 / 1024.0;
        let rows: i64 = db.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await?.get(0);
        let lag = unrolled(&db).await? as f64 / rate;
        lags.push(lag);
        let elapsed = started.elapsed().as_secs_f64();
        let (p50, p99, max) =
            (quantile(&latencies, 0.5), quantile(&latencies, 0.99), latencies.last().copied().unwrap_or(f64::NAN));
        let retries = window.retries.swap(0, Ordering::Relaxed);
        let sent = sent.load(Ordering::Relaxed);
        println!(
            "{elapsed:>7.0}s {rss:>9.1} {p50:>9.1} {p99:>9.1} {max:>9.1} {retries:>7} {sent:>10} {rows:>10} {lag:>9.1}"
        );
        csv.push_str(&format!("{elapsed:.0},{rss:.1},{p50:.2},{p99:.2},{max:.2},{retries},{sent},{rows},{lag:.1}\n"));
        samples.push((elapsed, rss, p99));
    }
    load.await?;
    std::fs::write(&csv_path, csv)?;
    // The load has stopped: how long until the reaper has every row in the rollups.
    let stopped = Instant::now();
    while unrolled(&db).await? != 0 && stopped.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let caught_up = stopped.elapsed().as_secs_f64();

    let sent = sent.load(Ordering::Relaxed) as i64;
    let rows: i64 = db.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await?.get(0);
    let mean = |s: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| s.iter().map(f).sum::<f64>() / s.len() as f64;
    let per_minute = (60.0 / WINDOW.as_secs_f64()) as usize;
    // The first minute is warm-up (pool, caches, allocator arenas): compare the second with the last.
    let (first, last) = if samples.len() >= 3 * per_minute {
        (&samples[per_minute..2 * per_minute], &samples[samples.len() - per_minute..])
    } else {
        (&samples[..samples.len() / 2], &samples[samples.len() / 2..])
    };
    let (rss_first, rss_last) = (mean(first, |s| s.1), mean(last, |s| s.1));
    let (p99_first, p99_last) = (mean(first, |s| s.2), mean(last, |s| s.2));
    println!("spans sent {sent}, rows stored {rows} ({})", if rows == sent { "all" } else { "MISSING ROWS" });
    println!(
        "RSS: {rss_first:.1} MiB early → {rss_last:.1} MiB at the end ({:+.1} %)",
        (rss_last / rss_first - 1.0) * 100.0
    );
    println!("export p99: {p99_first:.1} ms early → {p99_last:.1} ms at the end");
    lags.sort_by(f64::total_cmp);
    println!(
        "rollup lag: median {:.1} s, max {:.1} s (reaper every {reap_interval} s); all rows rolled up {caught_up:.1} s after the load stopped",
        quantile(&lags, 0.5),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    println!("samples: {}", csv_path.display());
    drop(serve);
    tokio::task::spawn_blocking(move || drop(cluster)).await?;
    anyhow::ensure!(rows == sent, "{} spans were not stored", sent - rows);
    Ok(())
}
