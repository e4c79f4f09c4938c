//! Budget enforcement with real parts: spend stored by the direct path in PostgreSQL, the
//! budget state read back in the background, real rmcp clients refused over budget, served
//! under it, and served when the database cannot be read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::budgets::{self, BudgetSpec};
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_instrument::budget::BudgetGate;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_budget_is_refused_under_is_served_and_an_unreadable_database_lets_calls_through() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let gate = BudgetGate::new(Duration::from_secs(5));
    let refresh =
        archon_mcp_exporter::budgets::gate::refresh_from_postgres(&gate, db.url.clone(), Duration::from_millis(200));
    let store = PgStore::connect(&db.url, StoreConfig::default()).unwrap();
    let server = McpServer::start_with(PgSpanExporter::new(store), |config| config.enforce_budgets(gate.clone())).await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // Research may spend a cent this month; Sales a thousand dollars.
    budgets::set(&client, &BudgetSpec::monthly("department:Research".parse().unwrap(), 0.01)).await.unwrap();
    budgets::set(&client, &BudgetSpec::monthly("department:Sales".parse().unwrap(), 1000.0)).await.unwrap();

    let ada = connect(server.addr, "claude-code", "ada", "Research").await;
    let bob = connect(server.addr, "Cursor", "bob", "Sales").await;
    let summarize = || call("summarize_document", json!({"id": "doc-1"}));
    // Four summaries at $0.003: over the cent.
    for _ in 0..4 {
        ada.call_tool(summarize()).await.expect("under budget before the spend is stored");
    }
    server.flush().await;
    let mut refused = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = ada.call_tool(call("search_knowledge", json!({"query": "x"}))).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let state = db
        .rows("SELECT scope || ':' || coalesce(scope_value, ''), spend_mtd::text, state FROM archon_budget_status()")
        .await;
    let refused =
        refused.unwrap_or_else(|| panic!("Research's calls are refused once its spend is read back: {state:?}"));
    assert!(refused.contains("department:Research") && refused.contains("budgets set"), "{refused}");
    bob.call_tool(summarize()).await.expect("Sales is under its budget");

    // The refusal is a row like any other.
    server.flush().await;
    let stored = db
        .query_i64("SELECT count(*) FROM archon_mcp_requests WHERE error_type = 'budget_exceeded' AND status = 'error'")
        .await;
    assert_eq!(stored, 1);

    // The database goes unreadable: the reading goes stale and calls go through again.
    refresh.abort();
    let blind = BudgetGate::new(Duration::from_secs(5));
    let _blind_refresh = archon_mcp_exporter::budgets::gate::refresh_from_postgres(
        &blind,
        format!("host=127.0.0.1 port={} user=x dbname=x", free_port()),
        Duration::from_millis(100),
    );
    let blind_server = McpServer::start_with(
        PgSpanExporter::new(PgStore::connect(&db.url, StoreConfig::default()).unwrap()),
        |config| config.enforce_budgets(blind.clone()),
    )
    .await;
    let ada_again = connect(blind_server.addr, "claude-code", "ada", "Research").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ada_again.call_tool(summarize()).await.expect("an unknown budget state lets the call through");
    drop((ada, bob, ada_again));
    server.stop();
    blind_server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_counts_its_own_spend_between_readings() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let gate = BudgetGate::new(Duration::from_secs(120));
    let store = PgStore::connect(&db.url, StoreConfig::default()).unwrap();
    let server = McpServer::start_with(PgSpanExporter::new(store), |config| config.enforce_budgets(gate.clone())).await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    budgets::set(&client, &BudgetSpec::monthly("department:Sales".parse().unwrap(), 0.01)).await.unwrap();
    let bob = connect(server.addr, "Cursor", "bob", "Sales").await;
    let summarize = || call("summarize_document", json!({"id": "doc-1"}));
    // One call before the first reading, so its model is priced by it.
    bob.call_tool(summarize()).await.expect("nothing read yet");
    // One reading, then none for a minute: what stops Bob is the server's own count.
    let _refresh =
        archon_mcp_exporter::budgets::gate::refresh_from_postgres(&gate, db.url.clone(), Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut served = 0;
    while served < 20 && bob.call_tool(summarize()).await.is_ok() {
        served += 1;
    }
    // Each summary costs $0.003 of the cent: at most four more (one possibly read as stored).
    assert!((2..=4).contains(&served), "{served} summaries served after the reading");
    drop(bob);
    server.stop();
}

/// A TCP proxy to PostgreSQL whose connections can be made half-open: a frozen connection
/// forwards nothing ever again and stays open, as behind a dead NAT entry.
struct FreezingProxy {
    port: u16,
    /// Connections numbered below this are frozen.
    frozen_below: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
}

impl FreezingProxy {
    async fn start(to: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen_below, opened) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (frozen, count) = (frozen_below.clone(), opened.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else { continue };
                let (frozen, number) = (frozen.clone(), count.fetch_add(1, Ordering::AcqRel));
                tokio::spawn(async move {
                    let (mut buf_a, mut buf_b) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
                    loop {
                        if number < frozen.load(Ordering::Acquire) {
                            std::future::pending::<()>().await;
                        }
                        let (mut ra, mut wa) = inbound.split();
                        let (mut rb, mut wb) = outbound.split();
                        let moved = tokio::select! {
                            n = ra.read(&mut buf_a) => match n { Ok(n) if n > 0 => wb.write_all(&buf_a[..n]).await.is_ok(), _ => false },
                            n = rb.read(&mut buf_b) => match n { Ok(n) if n > 0 => wa.write_all(&buf_b[..n]).await.is_ok(), _ => false },
                            () = tokio::time::sleep(Duration::from_millis(20)) => true,
                        };
                        if !moved {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, frozen_below, opened }
    }

    /// Every connection, open or to come, goes half-open.
    fn freeze_all(&self) {
        self.frozen_below.store(u64::MAX, Ordering::Release);
    }

    /// New connections forward again; the frozen ones stay frozen.
    fn thaw_new(&self) {
        self.frozen_below.store(self.opened.load(Ordering::Acquire), Ordering::Release);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_mid_read_does_not_leave_the_gate_stuck() {
    let db = Database::start().await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    budgets::set(&client, &BudgetSpec::monthly("all".parse().unwrap(), 0.01)).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO archon_mcp_sessions (session_id, client_type, connected_at, last_activity, status)
                 VALUES ('0195f3a0-0000-7000-8000-0000000000aa', 'Cursor', now(), now(), 'active');
             INSERT INTO archon_mcp_requests (request_id, session_id, method, \"timestamp\", status, estimated_cost)
                 VALUES (gen_random_uuid(), '0195f3a0-0000-7000-8000-0000000000aa', 'tools/call', now(), 'success', 1)",
        )
        .await
        .unwrap();
    let proxy = FreezingProxy::start(db.cluster.port()).await;
    let gate = BudgetGate::new(Duration::from_secs(2));
    let url = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", proxy.port);
    let _refresh = archon_mcp_exporter::budgets::gate::refresh_from_postgres(&gate, url, Duration::from_millis(300));
    let wait_until = |want_stale: bool| {
        let gate = gate.clone();
        async move {
            for _ in 0..100 {
                if gate.is_stale() == want_stale {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(wait_until(false).await, "the budgets are read through the proxy");

    // The connection goes half-open mid-read: reads hang, are given up, the state goes stale
    // (and the refresher says so in the log).
    proxy.freeze_all();
    assert!(wait_until(true).await, "a hung read leaves the state stale");
    // New connections work again, the one the reads hung on stays half-open: the gate gives it
    // up, reconnects, and is current again (before, it waited on the dead one for ever).
    proxy.thaw_new();
    assert!(wait_until(false).await, "the gate reconnects and reads again");
}
