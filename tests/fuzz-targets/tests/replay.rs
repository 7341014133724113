//! Every committed input of every fuzz target, replayed through the same function the
//! fuzzer calls: the seed corpora (`fuzz/corpus/TARGET/`) and each crash the fuzzer
//! ever found (`fuzz/regressions/TARGET/`, kept after the fix). A panic fails the test.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let mut counts = Vec::new();
    for (name, run) in timb_fuzz_targets::TARGETS {
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(name);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let r = std::panic::catch_unwind(|| run(&data));
                assert!(r.is_ok(), "{name}: {} panics", f.display());
                n += 1;
            }
        }
        counts.push((name, n));
    }
    for (name, n) in &counts {
        assert!(*n > 0, "{name} has no committed input: {counts:?}");
    }
    eprintln!("replayed: {counts:?}");
}

#[test]
fn every_target_has_a_cargo_fuzz_entry() {
    for (name, _) in timb_fuzz_targets::TARGETS {
        let f = fuzz_dir().join(format!("fuzz_targets/{name}.rs"));
        let text =
            std::fs::read_to_string(&f).unwrap_or_else(|_| panic!("{} missing", f.display()));
        assert!(
            text.contains(&format!("timb_fuzz_targets::{name}")),
            "{}",
            f.display()
        );
    }
}
