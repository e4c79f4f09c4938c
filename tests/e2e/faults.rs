//! Faults on the direct path: PostgreSQL restarted under the in-process `PgSpanExporter`.

use std::time::Duration;

use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::{PgStore, StoreConfig};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_the_direct_path_loses_nothing() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let store = PgStore::connect(&db.url, StoreConfig::default()).unwrap();
    let exporter = PgSpanExporter::new(store).with_max_retry_time(Duration::from_secs(30));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(100)).build(),
                )
                .build(),
        )
        .build();
    let tracer = provider.tracer("direct");
    let emit = |from: usize, to: usize| {
        for i in from..to {
            let mut span = tracer
                .span_builder("tools/call search_knowledge")
                .with_kind(SpanKind::Server)
                .with_attributes([
                    KeyValue::new("mcp.method.name", "tools/call"),
                    KeyValue::new("gen_ai.tool.name", "search_knowledge"),
                    KeyValue::new("session.id", format!("direct-{}", i % 5)),
                ])
                .start(&tracer);
            span.end();
        }
    };
    emit(0, 500);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cluster = &db.cluster;
    tokio::task::block_in_place(|| cluster.stop()).expect("stop PostgreSQL");
    // Spans keep coming while the database is away: the exporter retries, the SDK queues.
    emit(500, 1000);
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| cluster.start_server()).expect("start PostgreSQL again");
    emit(1000, 1500);
    let flush = provider.clone();
    tokio::task::spawn_blocking(move || flush.shutdown_with_timeout(Duration::from_secs(60))).await.unwrap().unwrap();
    assert_eq!(
        db.wait_for_count("SELECT count(*) FROM archon_mcp_requests", 1500, Duration::from_secs(30)).await,
        1500
    );
    assert_eq!(db.query_i64("SELECT count(DISTINCT request_id) FROM archon_mcp_requests").await, 1500);
}
