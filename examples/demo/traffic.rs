//! Simulated traffic: the spans an instrumented knowledge/task server emits for a day's work of
//! a small team, deterministic so every run prints the same report.

use std::time::{SystemTime, UNIX_EPOCH};

use archon_mcp_exporter::span::Span;
use archon_mcp_exporter::testing::{Connection, UserInfo, rpc_error, tool_error, with_estimate, with_usage};

/// Connections simulated.
pub const CONNECTIONS: usize = 14;

const USERS: [UserInfo; 5] = [
    UserInfo {
        principal: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a01",
        email: "ada@example.com",
        name: "Ada Lovelace",
        department: "Research",
    },
    UserInfo {
        principal: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a02",
        email: "grace@example.com",
        name: "Grace Hopper",
        department: "Platform",
    },
    UserInfo { principal: "github|583231", email: "linus@example.com", name: "Linus T.", department: "Platform" },
    UserInfo {
        principal: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a04",
        email: "margaret@example.com",
        name: "Margaret Hamilton",
        department: "Research",
    },
    UserInfo { principal: "okta|00u1a2b3", email: "ken@example.com", name: "Ken Thompson", department: "Support" },
];

const CLIENTS: [&str; 7] =
    ["claude-code", "Cursor", "Windsurf", "Cline", "goose", "Visual Studio Code", "codex-mcp-client"];

const SEC: u64 = 1_000_000_000;

/// A small deterministic generator (xorshift64).
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every span of every simulated connection, over the last few hours.
pub fn simulate() -> Vec<Span> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64;
    let mut dice = Dice(0x5eed_cafe);
    let mut spans = Vec::new();
    for c in 0..CONNECTIONS {
        let user = USERS[c % USERS.len()];
        let client = CLIENTS[(c * 3 + c / 5) % CLIENTS.len()];
        let session = format!("0195f3a0-0000-7000-8000-{:012x}", c + 1);
        let mut conn = Connection::new(&session, client, Some(user));
        let start = now - (6 * 3600 - c as u64 * 1500) * SEC;
        let mut t = start;
        let calls = 6 + dice.next(20);
        for _ in 0..calls {
            t += (5 + dice.next(90)) * SEC;
            spans.push(match dice.next(10) {
                0 | 1 => conn.call("search_knowledge", t, 30 + dice.next(250)),
                2 => conn.call("list_tasks", t, 5 + dice.next(20)),
                3 => conn.call("get_document", t, 10 + dice.next(60)),
                4 => with_usage(
                    conn.call("summarize_document", t, 800 + dice.next(3000)),
                    if c % 2 == 0 { "claude-sonnet-4-5-20250929" } else { "gpt-4.1-mini" },
                    2_000 + dice.next(8_000) as i64,
                    200 + dice.next(800) as i64,
                ),
                5 => with_estimate(conn.call("read_file", t, 3 + dice.next(10)), 500 + dice.next(3_000) as i64, 40),
                6 if dice.next(3) == 0 => tool_error(conn.call("create_task", t, 15), "a task with this title exists"),
                7 if dice.next(4) == 0 => rpc_error(conn.call("create_task", t, 1), -32602, "missing field `title`"),
                _ => conn.call("create_task", t, 15 + dice.next(40)),
            });
        }
        // Most connections have closed; the last three are still open.
        if c + 3 < CONNECTIONS {
            let reason = if c % 5 == 4 { "server_shutdown" } else { "client_disconnect" };
            spans.push(conn.end(start, t + 30 * SEC, reason));
        }
    }
    spans
}
