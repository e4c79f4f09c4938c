//! Shared by the bench binaries: quick mode and figure printing.

#![allow(dead_code)]

use archon_mcp_exporter::testing::TestUser;

/// The users of the benchmarks' spans.
pub const USERS: [TestUser; 3] = [
    TestUser {
        principal: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a01",
        email: "ada@example.com",
        name: "Ada Lovelace",
        department: "Research",
    },
    TestUser { principal: "github|583231", email: "linus@example.com", name: "Linus Torvalds", department: "Platform" },
    TestUser { principal: "okta|00u1a2b3", email: "ken@example.com", name: "Ken Thompson", department: "Support" },
];

/// `cargo bench` passes `--bench`; `cargo test --all-targets` does not: then the bench runs a
/// quick, small version of itself so it keeps compiling and running in CI.
pub fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench") || std::env::var_os("ARCHON_BENCH_QUICK").is_some()
}

/// A figure line: name, value, unit, and the target when there is one.
pub fn figure(name: &str, value: f64, unit: &str, target: Option<&str>) {
    match target {
        Some(target) => println!("{name:<58} {value:>12.2} {unit:<10} (target {target})"),
        None => println!("{name:<58} {value:>12.2} {unit}"),
    }
}
