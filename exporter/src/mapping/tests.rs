use super::*;
use crate::span::SpanKind;

const SESSION: &str = "0195f3a0-0000-7000-8000-000000000001";
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SEC; // 2026-01-01T00:00:00Z

fn call(span_id: u8, tool: &str) -> Span {
    Span::new(format!("tools/call {tool}"), T0 + u64::from(span_id) * SEC, T0 + u64::from(span_id) * SEC + 42_000_000)
        .with_ids([9; 16], [span_id; 8])
        .with_attribute(attr::MCP_METHOD_NAME, "tools/call")
        .with_attribute(attr::GEN_AI_TOOL_NAME, tool)
        .with_attribute(attr::SESSION_ID, SESSION)
        .with_attribute(attr::JSONRPC_REQUEST_ID, span_id.to_string())
}

fn session_end(reason: &str, end_offset_s: u64) -> Span {
    Span::new(attr::SESSION_SPAN_NAME, T0, T0 + end_offset_s * SEC)
        .with_ids([9; 16], [0xee; 8])
        .with_kind(SpanKind::Internal)
        .with_attribute(attr::SESSION_ID, SESSION)
        .with_attribute(attr::ARCHON_SESSION_DISCONNECT_REASON, reason)
        .with_attribute(attr::ARCHON_SESSION_REQUEST_COUNT, 3_i64)
}

fn request(span: &Span) -> RequestRow {
    match map_span(span) {
        Ok(Mapped::Request(row, _)) => row,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn skipped(span: &Span) -> SkipReason {
    map_span(span).expect_err("span should be skipped").reason
}

#[test]
fn request_span_maps_every_column() {
    let span = call(1, "search")
        .with_attribute(attr::ARCHON_CLIENT_NAME, "Cursor")
        .with_attribute(attr::ARCHON_CLIENT_VERSION, "1.7.2")
        .with_attribute(attr::MCP_SESSION_ID, "mcp-abc")
        .with_attribute(attr::MCP_PROTOCOL_VERSION, "2025-06-18")
        .with_resource(attr::SERVICE_NAME, "kb-server")
        .with_resource(attr::SERVICE_INSTANCE_ID, "pod-1");
    let Ok(Mapped::Request(row, session)) = map_span(&span) else { panic!() };
    assert_eq!(row.request_id, ids::request_id(&[9; 16], &[1; 8]));
    assert_eq!(row.session_id.to_string(), SESSION);
    assert_eq!((row.method.as_str(), row.tool_name.as_deref()), ("tools/call", Some("search")));
    assert_eq!(row.status, RequestStatus::Success);
    assert_eq!(row.duration_ms, 42.0);
    assert_eq!(row.timestamp, UNIX_EPOCH + Duration::from_nanos(T0 + SEC));
    assert_eq!(row.trace_id, "09".repeat(16));
    assert_eq!(row.span_id, "01".repeat(8));
    assert_eq!(row.jsonrpc_request_id.as_deref(), Some("1"));
    assert_eq!(row.token_source, TokenSource::None);
    assert_eq!((row.prompt_tokens, row.completion_tokens), (0, 0));

    assert_eq!(session.client_type, ClientType::Cursor);
    assert_eq!(session.client_name.as_deref(), Some("Cursor"));
    assert_eq!(session.client_version.as_deref(), Some("1.7.2"));
    assert_eq!(session.mcp_session_id, Some(crate::ids::mcp_session_ref("mcp-abc")), "stored hashed");
    assert_eq!(session.service_name.as_deref(), Some("kb-server"));
    assert_eq!(session.metadata["service_instance_id"], "pod-1");
    assert_eq!(session.metadata["protocol_version"], "2025-06-18");
    assert_eq!(session.disconnected_at, None);
    assert_eq!(
        (session.connected_at, session.last_activity),
        (row.timestamp, row.timestamp + Duration::from_millis(42))
    );
}

#[test]
fn non_uuid_session_ids_map_deterministically() {
    let a = call(1, "x").with_attribute(attr::SESSION_ID, "stdio-connection-7");
    let b = call(2, "x").with_attribute(attr::SESSION_ID, "stdio-connection-7");
    let (ra, rb) = (request(&a), request(&b));
    assert_eq!(ra.session_id, rb.session_id);
    assert_eq!(ra.session_id, ids::session_id("stdio-connection-7"));
    assert_eq!(ra.session_id.get_version_num(), 5);
}

#[test]
fn user_comes_from_the_principal() {
    let uuid_user = "3f2b8c1e-1d2a-4c5b-9e8f-7a6b5c4d3e2f";
    let span = call(1, "x")
        .with_attribute(attr::USER_ID, uuid_user)
        .with_attribute(attr::USER_EMAIL, "ada@example.com")
        .with_attribute(attr::USER_FULL_NAME, "Ada Lovelace")
        .with_attribute(attr::USER_NAME, "ada")
        .with_attribute(attr::ARCHON_USER_DEPARTMENT, "Research");
    let Ok(Mapped::Request(row, session)) = map_span(&span) else { panic!() };
    assert_eq!(session.user_id.unwrap().to_string(), uuid_user);
    assert_eq!(session.user_key.as_deref(), Some(uuid_user));
    assert_eq!(session.user_email.as_deref(), Some("ada@example.com"));
    assert_eq!(session.user_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(session.user_department.as_deref(), Some("Research"));
    assert_eq!(session.metadata["user_login"], "ada");
    assert_eq!(row.user_id, session.user_id);

    let span = call(1, "x").with_attribute(attr::USER_ID, "github|12345").with_attribute(attr::USER_NAME, "ada");
    let Ok(Mapped::Request(_, session)) = map_span(&span) else { panic!() };
    assert_eq!(session.user_id, Some(ids::user_id("github|12345")));
    assert_eq!(session.user_id.unwrap().get_version_num(), 5);
    assert_eq!(session.user_key.as_deref(), Some("github|12345"));
    assert_eq!(session.user_name.as_deref(), Some("ada"), "the login stands in for a missing display name");
}

#[test]
fn hashing_mode_identifies_by_hash_without_email() {
    let span = call(1, "x").with_attribute(attr::USER_HASH, "sha256:abcd");
    let Ok(Mapped::Request(_, session)) = map_span(&span) else { panic!() };
    assert_eq!(session.user_key.as_deref(), Some("sha256:abcd"));
    assert_eq!(session.user_id, Some(ids::user_id("sha256:abcd")));
    assert_eq!(session.user_email, None);
    assert_eq!(session.metadata["user_hash"], "sha256:abcd");
}

#[test]
fn status_follows_span_status_and_error_type() {
    assert_eq!(request(&call(1, "x").with_status(StatusCode::Ok, "")).status, RequestStatus::Success);

    let tool_error = request(
        &call(1, "x")
            .with_status(StatusCode::Error, "disk full")
            .with_attribute(attr::ERROR_TYPE, attr::ERROR_TYPE_TOOL_ERROR),
    );
    assert_eq!(tool_error.status, RequestStatus::Error);
    assert_eq!(tool_error.error_type.as_deref(), Some("tool_error"));
    assert_eq!(tool_error.error_message.as_deref(), Some("disk full"));
    assert_eq!(tool_error.error_code, None);

    let invalid_params = request(
        &call(1, "x")
            .with_status(StatusCode::Error, "missing field `query`")
            .with_attribute(attr::ERROR_TYPE, "-32602")
            .with_attribute(attr::RPC_RESPONSE_STATUS_CODE, "-32602"),
    );
    assert_eq!((invalid_params.status, invalid_params.error_code), (RequestStatus::Error, Some(-32602)));

    let timeout = request(&call(1, "x").with_status(StatusCode::Error, "").with_attribute(attr::ERROR_TYPE, "timeout"));
    assert_eq!(timeout.status, RequestStatus::Timeout);
    assert_eq!(timeout.error_message, None, "an empty description is not a message");

    // Cancelled (by the client, or its leaving) is an outcome of its own.
    let cancelled = request(
        &call(1, "x").with_attribute(attr::ERROR_TYPE, "cancelled").with_status(StatusCode::Error, "client_disconnect"),
    );
    assert_eq!(cancelled.status, RequestStatus::Cancelled);
    assert_eq!(cancelled.error_message.as_deref(), Some("client_disconnect"));
    // A message on a successful span is not an error message.
    assert_eq!(request(&call(1, "x").with_status(StatusCode::Ok, "fine")).error_message, None);

    // The caller's failures leave a server span's status unset (the MCP conventions): their
    // message is `archon.error.message`.
    let caller = request(
        &call(1, "x")
            .with_attribute(attr::ERROR_TYPE, "-32602")
            .with_attribute(attr::RPC_RESPONSE_STATUS_CODE, "-32602")
            .with_attribute(attr::ARCHON_ERROR_MESSAGE, "invalid_params"),
    );
    assert_eq!(
        (caller.status, caller.error_code, caller.error_message.as_deref()),
        (RequestStatus::Error, Some(-32602), Some("invalid_params"))
    );
    let disconnected = request(
        &call(1, "x")
            .with_attribute(attr::ERROR_TYPE, "cancelled")
            .with_attribute(attr::ARCHON_ERROR_MESSAGE, "client_disconnect"),
    );
    assert_eq!(
        (disconnected.status, disconnected.error_message.as_deref()),
        (RequestStatus::Cancelled, Some("client_disconnect"))
    );
    let ignored = request(&call(1, "x").with_attribute(attr::ARCHON_ERROR_MESSAGE, "stray"));
    assert_eq!((ignored.status, ignored.error_message), (RequestStatus::Success, None), "no failure, no message");
}

#[test]
fn reported_tokens_win_over_estimates() {
    let row = request(
        &call(1, "x")
            .with_attribute(attr::GEN_AI_REQUEST_MODEL, "claude-sonnet-4-5")
            .with_attribute(attr::GEN_AI_USAGE_INPUT_TOKENS, 1200_i64)
            .with_attribute(attr::GEN_AI_USAGE_OUTPUT_TOKENS, "300")
            .with_attribute(attr::ARCHON_USAGE_ESTIMATED_INPUT_TOKENS, 50_i64),
    );
    assert_eq!((row.token_source, row.prompt_tokens, row.completion_tokens), (TokenSource::Reported, 1200, 300));
    assert_eq!(row.model.as_deref(), Some("claude-sonnet-4-5"));

    let row = request(
        &call(1, "x")
            .with_attribute(attr::ARCHON_USAGE_ESTIMATED_INPUT_TOKENS, 800_i64)
            .with_attribute(attr::ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS, 20.0),
    );
    assert_eq!((row.token_source, row.prompt_tokens, row.completion_tokens), (TokenSource::Estimated, 800, 20));

    // Only one side reported: the other is 0, still reported.
    let row = request(&call(1, "x").with_attribute(attr::GEN_AI_USAGE_OUTPUT_TOKENS, 7_i64));
    assert_eq!((row.token_source, row.prompt_tokens, row.completion_tokens), (TokenSource::Reported, 0, 7));

    // Negative counts are ignored; huge ones saturate.
    let row = request(
        &call(1, "x")
            .with_attribute(attr::GEN_AI_USAGE_INPUT_TOKENS, -5_i64)
            .with_attribute(attr::GEN_AI_USAGE_OUTPUT_TOKENS, i64::MAX),
    );
    assert_eq!((row.prompt_tokens, row.completion_tokens), (0, i32::MAX));
}

#[test]
fn reported_cost_only_in_usd_and_in_range() {
    let cost = |span: Span| request(&span).reported_cost;
    assert_eq!(cost(call(1, "x").with_attribute(attr::ARCHON_COST_AMOUNT, 0.0125)), Some(0.0125));
    assert_eq!(
        cost(
            call(1, "x")
                .with_attribute(attr::ARCHON_COST_AMOUNT, 0.5)
                .with_attribute(attr::ARCHON_COST_CURRENCY, "usd")
        ),
        Some(0.5)
    );
    assert_eq!(
        cost(
            call(1, "x")
                .with_attribute(attr::ARCHON_COST_AMOUNT, 0.5)
                .with_attribute(attr::ARCHON_COST_CURRENCY, "EUR")
        ),
        None
    );
    assert_eq!(cost(call(1, "x").with_attribute(attr::ARCHON_COST_AMOUNT, f64::NAN)), None);
    assert_eq!(cost(call(1, "x").with_attribute(attr::ARCHON_COST_AMOUNT, -1.0)), None);
    assert_eq!(cost(call(1, "x").with_attribute(attr::ARCHON_COST_AMOUNT, 1e20)), None);
}

#[test]
fn session_span_carries_the_end() {
    let Ok(Mapped::Session(session)) = map_span(&session_end("timeout_no_activity", 90)) else { panic!() };
    assert_eq!(session.session_id.to_string(), SESSION);
    assert_eq!(session.connected_at, UNIX_EPOCH + Duration::from_nanos(T0));
    assert_eq!(session.disconnected_at, Some(UNIX_EPOCH + Duration::from_nanos(T0 + 90 * SEC)));
    assert_eq!(session.disconnect_reason.as_deref(), Some("timeout"), "legacy spelling normalised");
    assert_eq!(session.metadata["request_count"], 3);

    let no_reason = Span::new(attr::SESSION_SPAN_NAME, T0, T0 + SEC).with_attribute(attr::SESSION_ID, SESSION);
    let Ok(Mapped::Session(session)) = map_span(&no_reason) else { panic!() };
    assert_eq!(session.disconnect_reason.as_deref(), Some("client_disconnect"));

    let Ok(Mapped::Session(session)) = map_span(&session_end("io", 1)) else { panic!() };
    assert_eq!(session.disconnect_reason.as_deref(), Some("error:io"));
}

#[test]
fn spans_without_method_or_session_are_skipped_with_a_reason() {
    let plain = Span::new("GET /health", T0, T0 + 1).with_attribute(attr::SESSION_ID, SESSION);
    assert_eq!(skipped(&plain), SkipReason::NotMcp);

    let list = Span::new("tools/list", T0, T0 + 1).with_attribute(attr::MCP_METHOD_NAME, "tools/list");
    assert_eq!(skipped(&list), SkipReason::NoSession);

    let empty = call(1, "x").with_attribute(attr::SESSION_ID, "  ");
    assert_eq!(skipped(&empty), SkipReason::NoSession);

    let orphan_end = Span::new(attr::SESSION_SPAN_NAME, T0, T0 + 1);
    assert_eq!(skipped(&orphan_end), SkipReason::NoSession);

    assert!(!SkipReason::NotMcp.is_rejection() && !SkipReason::NoSession.is_rejection());

    // The client's side of a request, even one carrying a session: its server's span is the row.
    let client = call(1, "x").with_kind(crate::span::SpanKind::Client);
    assert_eq!(skipped(&client), SkipReason::ClientSpan);
    assert!(!SkipReason::ClientSpan.is_rejection());
}

#[test]
fn a_request_row_names_the_span_it_continues() {
    let mut span = call(1, "x");
    assert_eq!(request(&span).parent_span_id, None, "a new trace");
    span.parent_span_id = Some([0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
    assert_eq!(request(&span).parent_span_id.as_deref(), Some("b7ad6b7169203331"));
}

#[test]
fn bad_spans_are_rejected_with_a_reason() {
    let mut backwards = call(1, "x");
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    assert_eq!(skipped(&backwards), SkipReason::EndBeforeStart);

    let mut no_time = call(1, "x");
    no_time.start_time_unix_nano = 0;
    assert_eq!(skipped(&no_time), SkipReason::MissingTimestamp);

    assert_eq!(skipped(&call(1, "x").with_status(StatusCode::Unknown(7), "")), SkipReason::UnknownStatusCode);
    assert!(SkipReason::EndBeforeStart.is_rejection());
}

#[test]
fn strings_are_cleaned_not_refused() {
    let long = "t".repeat(1 << 20);
    let row = request(
        &call(1, "x")
            .with_attribute(attr::GEN_AI_TOOL_NAME, long.clone())
            .with_attribute(attr::MCP_METHOD_NAME, "tools/\0call")
            .with_attribute(attr::GEN_AI_REQUEST_MODEL, Value::Bytes(b"gpt\xff-4o".to_vec()))
            .with_status(StatusCode::Error, long),
    );
    assert_eq!(row.tool_name.unwrap().chars().count(), limits::TOOL_NAME);
    assert_eq!(row.method, "tools/call");
    assert_eq!(row.model.as_deref(), Some("gpt\u{fffd}-4o"));
    assert_eq!(row.error_message.unwrap().len(), limits::TEXT);

    let caps = call(1, "x").with_attribute(attr::ARCHON_CLIENT_CAPABILITIES, r#"{"roots":{"list\u0000Changed":true}}"#);
    let Ok(Mapped::Request(_, session)) = map_span(&caps) else { panic!() };
    assert_eq!(session.client_capabilities, Some(serde_json::json!({"roots": {"listChanged": true}})));
}

#[test]
fn a_batch_merges_sessions_and_counts_skips() {
    let spans = vec![
        call(3, "c").with_attribute(attr::USER_ID, "bob"),
        session_end("client_disconnect", 60),
        call(1, "a").with_attribute(attr::ARCHON_CLIENT_NAME, "Windsurf"),
        Span::new("db query", T0, T0 + 1),
        call(2, "b"),
    ];
    let batch = map_spans(&spans);
    assert_eq!(batch.requests.len(), 3);
    assert_eq!(batch.sessions.len(), 1);
    let session = &batch.sessions[0];
    assert_eq!(session.client_type, ClientType::Windsurf);
    assert_eq!(session.user_key.as_deref(), Some("bob"));
    assert_eq!(session.connected_at, UNIX_EPOCH + Duration::from_nanos(T0));
    assert_eq!(session.disconnect_reason.as_deref(), Some("client_disconnect"));
    assert_eq!(batch.skipped_by_reason(), BTreeMap::from([(SkipReason::NotMcp, 1)]));
    assert_eq!(batch.rejected(), 0);

    // Any order of the same spans gives the same batch, sessions included.
    let mut reversed = spans.clone();
    reversed.reverse();
    let other = map_spans(&reversed);
    assert_eq!(other.sessions, batch.sessions);
}

#[test]
fn a_real_end_beats_a_timeout_and_earlier_beats_later() {
    use crate::rows::end_wins;
    let t = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
    assert!(end_wins(t(10), Some("client_disconnect"), None, None));
    assert!(!end_wins(None, None, t(10), Some("timeout")));
    assert!(end_wins(t(50), Some("client_disconnect"), t(10), Some("timeout")));
    assert!(!end_wins(t(10), Some("timeout"), t(50), Some("server_shutdown")));
    assert!(end_wins(t(10), Some("server_shutdown"), t(50), Some("client_disconnect")));
    assert!(!end_wins(t(10), Some("a"), t(10), Some("a")), "equal ends do not churn");
}

#[test]
fn spans_dated_far_in_the_future_are_refused() {
    let in_2554 = 18_000_000_000 * 1_000_000_000;
    let mut far = call(1, "x");
    far.start_time_unix_nano = in_2554;
    far.end_time_unix_nano = in_2554 + 1_000;
    let batch = map_spans([&far]);
    assert!(batch.requests.is_empty() && batch.sessions.is_empty());
    assert_eq!(batch.skipped[0].reason, SkipReason::FutureTimestamp);
    assert!(SkipReason::FutureTimestamp.is_rejection(), "counted in the partial success");
}

#[test]
fn a_sender_a_day_ahead_loses_nothing_and_its_session_lives_in_the_present() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let day = 86_400 * 1_000_000_000;
    let mut ahead = call(1, "x");
    ahead.start_time_unix_nano = now + day;
    ahead.end_time_unix_nano = now + day + 1_000_000;
    let batch = map_spans([&ahead, &ahead.clone()]);
    assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
    assert_eq!(batch.requests.len(), 2);
    assert_eq!(batch.requests[0].timestamp, UNIX_EPOCH + Duration::from_nanos(now + day), "the request keeps its time");
    let session = &batch.sessions[0];
    let received = SystemTime::now();
    assert!(session.connected_at <= received && session.last_activity <= received, "clamped to the time of receipt");
    let recorded = session.metadata["clock_ahead_ms"].as_u64().unwrap();
    assert!((86_399_000..=86_400_100).contains(&recorded), "{recorded}");
    assert!(batch.clock_ahead >= Duration::from_secs(86_399));
}

#[test]
fn a_large_batch_splits_into_parts_that_each_carry_their_sessions() {
    let mut spans = Vec::new();
    for i in 0..10u8 {
        let session = format!("0195f3a0-0000-7000-8000-00000000000{}", i % 3);
        spans.push(call(i + 1, "x").with_attribute(attr::SESSION_ID, session.as_str()));
    }
    let whole = map_spans(&spans);
    let parts = whole.clone().split(4);
    assert_eq!(parts.iter().map(|p| p.requests.len()).collect::<Vec<_>>(), [4, 4, 2]);
    for part in &parts {
        for request in &part.requests {
            assert!(part.sessions.iter().any(|s| s.session_id == request.session_id), "its session travels with it");
        }
    }
    let requests: Vec<_> = parts.iter().flat_map(|p| p.requests.clone()).collect();
    assert_eq!(requests, whole.requests);
    assert_eq!(whole.clone().split(100), vec![whole]);
}

#[test]
fn the_catalog_tokens_of_a_session_span_reach_its_row() {
    let end = session_end("client_disconnect", 60).with_attribute(attr::ARCHON_SESSION_CATALOG_TOKENS, 1_234_i64);
    let batch = map_spans([&end, &call(1, "x")]);
    assert_eq!(batch.sessions[0].catalog_tokens, Some(1_234));
}

/// What `map_spans` must equal: every span mapped in full, its session views merged.
fn mapped_one_by_one(spans: &[Span]) -> MappedBatch {
    let mut sessions = SessionSet::default();
    let mut batch = MappedBatch::default();
    for span in spans {
        match map_span(span) {
            Ok(Mapped::Request(request, session)) => {
                batch.requests.push(request);
                sessions.add(session);
            }
            Ok(Mapped::Session(session)) => sessions.add(session),
            Err(skipped) => batch.skipped.push(skipped),
        }
    }
    batch.sessions = sessions.into_vec();
    batch
}

#[test]
fn session_upserts_ignore_every_request_only_attribute() {
    let base =
        call(1, "search").with_attribute(attr::ARCHON_CLIENT_NAME, "Cursor").with_attribute(attr::USER_ID, "ada");
    let start = unix_nanos(base.start_time_unix_nano);
    let end = unix_nanos(base.end_time_unix_nano);
    let plain = session_upsert(&base, ids::session_id(SESSION), start, end);
    for key in REQUEST_ONLY {
        for value in [Value::from("x"), Value::from(7_i64), Value::from(r#"{"a": 1}"#)] {
            let with = base.clone().with_attribute(*key, value);
            assert_eq!(session_upsert(&with, ids::session_id(SESSION), start, end), plain, "{key} changed the session");
        }
    }
}

#[test]
fn a_batch_maps_as_its_spans_one_by_one() {
    // Spans of two sessions, interleaved; one session's attributes change mid-batch (a user
    // appears, then another client version), requests of every kind, a bad span, the end.
    let other = "0195f3a0-0000-7000-8000-000000000002";
    let mut spans = Vec::new();
    for i in 1..=12u8 {
        let mut span = call(i, ["search", "fetch", "create"][usize::from(i) % 3])
            .with_attribute(attr::ARCHON_CLIENT_NAME, "Cursor")
            .with_resource(attr::SERVICE_NAME, "kb");
        if i >= 4 {
            span = span.with_attribute(attr::USER_ID, "ada");
        }
        if i >= 8 {
            span = span.with_attribute(attr::ARCHON_CLIENT_VERSION, "2.0");
        }
        span = match i % 4 {
            0 => span
                .with_attribute(attr::GEN_AI_USAGE_INPUT_TOKENS, 100_i64)
                .with_attribute(attr::GEN_AI_REQUEST_MODEL, "m"),
            1 => span.with_status(StatusCode::Error, "boom").with_attribute(attr::ERROR_TYPE, "tool_error"),
            _ => span,
        };
        spans.push(span);
        let mut theirs =
            call(100 + i, "search").with_attribute(attr::USER_ID, "bob").with_resource(attr::SERVICE_NAME, "kb");
        theirs.attributes.0.retain(|(k, _)| k != attr::SESSION_ID);
        spans.push(theirs.with_attribute(attr::SESSION_ID, other));
    }
    spans.push(
        call(50, "search").with_attribute(attr::ARCHON_CLIENT_NAME, "Cursor").with_resource(attr::SERVICE_NAME, "kb"),
    );
    spans.last_mut().unwrap().end_time_unix_nano = T0; // ends before it starts
    spans.push(session_end("client_disconnect", 60).with_resource(attr::SERVICE_NAME, "kb"));
    let expected = mapped_one_by_one(&spans);
    assert_eq!(map_spans(&spans), expected);
    spans.reverse();
    assert_eq!(map_spans(&spans), mapped_one_by_one(&spans), "in any order");
    assert_eq!(expected.requests.len(), 24);
    assert_eq!(expected.sessions.len(), 2);
}
