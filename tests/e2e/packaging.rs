//! What the published crates promise (issue #32): the Rust version each states is the one its
//! locked dependencies need, and the exporter as a library (`default-features = false`) builds
//! without the service's dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

fn cargo(args: &[&str]) -> String {
    let output =
        Command::new(env!("CARGO")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cargo runs");
    assert!(output.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn host() -> String {
    let version = Command::new("rustc").arg("-vV").output().expect("rustc runs");
    let text = String::from_utf8(version.stdout).unwrap();
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_owned()
}

/// `1.88` or `1.88.0` as comparable numbers.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn each_crate_states_the_rust_version_its_dependencies_need() {
    let metadata: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--locked", "--filter-platform", &host()]))
            .unwrap();
    let packages: BTreeMap<&str, &Value> =
        metadata["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p)).collect();
    let nodes: BTreeMap<&str, &Value> =
        metadata["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    for name in ["archon-mcp-instrument", "archon-mcp-exporter"] {
        let (id, package) = packages.iter().find(|(_, p)| p["name"] == name).unwrap();
        let stated = package["rust_version"].as_str().unwrap_or_else(|| panic!("{name} states no rust-version"));
        // Everything it builds with: normal and build dependencies, transitively.
        let (mut seen, mut todo) = (BTreeSet::new(), vec![*id]);
        while let Some(at) = todo.pop() {
            for dep in nodes[at]["deps"].as_array().unwrap() {
                let built =
                    dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null() || k["kind"] == "build");
                let dep_id = dep["pkg"].as_str().unwrap();
                if built && seen.insert(dep_id) {
                    todo.push(dep_id);
                }
            }
        }
        let (needed, by) = seen
            .iter()
            .filter_map(|id| Some((version(packages[id]["rust_version"].as_str()?), packages[id]["name"].as_str()?)))
            .max()
            .expect("dependencies state their Rust versions");
        assert_eq!(
            version(stated),
            needed,
            "{name} states rust-version {stated}; its locked dependencies need {needed:?} ({by})"
        );
    }
}

#[test]
fn the_exporter_library_leaves_the_service_out() {
    let tree = cargo(&[
        "tree",
        "-p",
        "archon-mcp-exporter",
        "--no-default-features",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--locked",
    ]);
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    for service in ["axum", "hyper", "tonic", "clap", "tracing-subscriber", "flate2", "tower"] {
        assert!(!crates.contains(service), "{service} is in the library's dependencies:\n{tree}");
    }
    for library in ["tokio-postgres", "opentelemetry_sdk", "refinery", "prost"] {
        assert!(crates.contains(library), "{library} missing: the tree was not read\n{tree}");
    }
}
