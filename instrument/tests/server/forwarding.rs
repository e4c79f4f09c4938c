//! `Traced` forwards every method of rmcp's `ServerHandler`: this test reads both sources and
//! fails when rmcp gains a method the wrapper does not forward.

use std::collections::BTreeSet;
use std::process::Command;

fn method_names(source: &str) -> BTreeSet<String> {
    source
        .split("fn ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn rmcp_server_rs() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "rmcp")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("rmcp in the dependency graph")
        .to_owned();
    let path = std::path::Path::new(&manifest).parent().unwrap().join("src/handler/server.rs");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_server_handler_method_is_forwarded() {
    let rmcp = rmcp_server_rs();
    // The trait's methods are defined once, in the `server_handler_methods!` macro.
    let start =
        rmcp.find("macro_rules! server_handler_methods").expect("rmcp defines ServerHandler's methods in a macro");
    let end = start + rmcp[start..].find("\n}\n").expect("end of the macro");
    let required = method_names(&rmcp[start..end]);
    assert!(required.len() >= 32, "found only {required:?}");

    let ours = include_str!("../../src/traced.rs");
    let impl_start = ours.find("impl<H: ServerHandler> ServerHandler for Traced<H>").expect("the impl block");
    let forwarded = method_names(&ours[impl_start..]);

    let missing: Vec<_> = required.difference(&forwarded).collect();
    assert!(missing.is_empty(), "Traced does not forward {missing:?}: add them to instrument/src/traced.rs");
}
