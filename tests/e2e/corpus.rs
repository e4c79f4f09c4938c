//! The kept fuzz corpus (`fuzz/corpus`, `fuzz/seeds`) replayed through the fuzz targets' checks:
//! every input the fuzzer once found interesting stays a regression test, without libFuzzer.

type Check = fn(&[u8]);

fn replay(target: &str, check: Check) {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "seeds"] {
        let entries = std::fs::read_dir(fuzz.join(dir).join(target)).expect("the kept corpus");
        for path in entries.map(|e| e.unwrap().path()) {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails again: `cargo +nightly fuzz run {target} {0}`", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 100, "only {replayed} inputs in the {target} corpus");
}

#[test]
fn otlp_http_body_corpus_replays_clean() {
    replay("otlp_http_body", archon_mcp_exporter::fuzzing::otlp_http_body);
}

#[test]
fn user_resolution_corpus_replays_clean() {
    replay("user_resolution", archon_mcp_instrument::fuzzing::user_resolution);
}
