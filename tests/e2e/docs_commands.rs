//! The `cargo` commands the docs tell users to run name packages, examples, binaries and
//! benches that exist where they say: a renamed one fails here (the soak example was documented
//! under the wrong package for weeks). What they do is run by `scripts/quick-examples.sh`.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The package directory of `-p NAME` (the root package without `-p`).
fn package_dir(name: Option<&str>) -> Option<PathBuf> {
    let root = Path::new(ROOT);
    match name {
        None | Some("archon-mcp-otel") => Some(root.to_path_buf()),
        Some("archon-mcp-exporter") => Some(root.join("exporter")),
        Some("archon-mcp-instrument") => Some(root.join("instrument")),
        Some(_) => None,
    }
}

/// Whether a target of `kind` named `name` exists in `dir`, as cargo finds it.
fn target_exists(dir: &Path, kind: &str, name: &str) -> bool {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let declared = manifest.contains(&format!("name = \"{name}\""));
    match kind {
        "--example" => {
            dir.join(format!("examples/{name}.rs")).exists() || dir.join(format!("examples/{name}/main.rs")).exists()
        }
        "--bin" => dir.join(format!("src/bin/{name}.rs")).exists() || dir.join("src/main.rs").exists() && declared,
        "--bench" => dir.join(format!("benches/{name}.rs")).exists() || declared,
        _ => true,
    }
}

/// Every `cargo run|build|bench …` command in the docs and the examples' own documentation.
fn documented_commands() -> Vec<(String, String)> {
    let root = Path::new(ROOT);
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for dir in ["docs", "examples", "instrument/examples", "scripts"] {
        for entry in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
            files.push(entry.path());
        }
    }
    let mut commands = Vec::new();
    for file in files.into_iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines() {
            let mut rest = line;
            while let Some(at) = rest.find("cargo ") {
                let command: String =
                    rest[at..].chars().take_while(|c| !matches!(c, '`' | '&' | '#' | '|' | ';' | '(' | ')')).collect();
                if ["cargo run", "cargo build", "cargo bench"].iter().any(|c| command.starts_with(c)) {
                    commands.push((file.strip_prefix(root).unwrap().display().to_string(), command.trim().to_owned()));
                }
                rest = &rest[at + 6..];
            }
        }
    }
    commands
}

#[test]
fn every_documented_cargo_command_names_targets_that_exist() {
    let commands = documented_commands();
    assert!(commands.len() >= 10, "found only {commands:?}");
    let mut wrong = Vec::new();
    for (file, command) in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let flag = |name: &str| words.iter().position(|w| *w == name).and_then(|i| words.get(i + 1)).copied();
        let Some(dir) = package_dir(flag("-p")) else {
            wrong.push(format!("{file}: `{command}`: no package {:?}", flag("-p")));
            continue;
        };
        for kind in ["--example", "--bin", "--bench"] {
            if let Some(name) = flag(kind)
                && !target_exists(&dir, kind, name)
            {
                wrong.push(format!("{file}: `{command}`: no {kind} {name} in {}", dir.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "documented commands that cannot run:\n{}", wrong.join("\n"));
}
