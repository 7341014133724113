//! `cargo xtask fuzz [TARGET] [--time S]`: libFuzzer over timb's parsers (`fuzz/`, whose
//! target bodies are `tests/fuzz-targets`), with cargo-fuzz built once into the tools
//! folder and the installed compiler's sanitizer support opened with `RUSTC_BOOTSTRAP=1`
//! (no nightly toolchain can be fetched here). Inputs the fuzzer finds go to
//! `target/fuzz-corpus/` (not committed); a crash is written to
//! `fuzz/regressions/TARGET/`, which `cargo xtask test` replays once it is committed.
//! Prints a table: executions, edges covered and crashes per target.

use anyhow::{bail, Context, Result};
use pipeline::util;
use std::path::Path;
use std::process::Command;

const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn cargo_fuzz(root: &Path) -> Result<std::path::PathBuf> {
    super::test::install_tool(root, "cargo-fuzz", CARGO_FUZZ_VERSION)
}

/// The targets `fuzz/fuzz_targets/*.rs` defines, sorted.
fn targets(root: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("fuzz/fuzz_targets"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The last value libFuzzer printed for `key` (`cov: 123`, `stat::number_of_executed_units: 9`).
fn last_number(log: &str, key: &str) -> Option<u64> {
    log.rsplit(key)
        .next()
        .filter(|_| log.contains(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

pub fn run(root: &Path, only: Option<&str>, seconds: u64) -> Result<()> {
    let all = targets(root)?;
    let chosen: Vec<&String> = match only {
        Some(t) if !all.iter().any(|n| n == t) => {
            bail!("no fuzz target {t}; the targets are {}", all.join(", "))
        }
        Some(t) => all.iter().filter(|n| *n == t).collect(),
        None => all.iter().collect(),
    };
    let bin = cargo_fuzz(root)?;
    let target_dir = util::cargo_target_dir(root);
    let mut rows = Vec::new();
    let mut crashed = Vec::new();
    for name in chosen {
        let work = target_dir.join("fuzz-corpus").join(name);
        let regressions = root.join("fuzz/regressions").join(name);
        std::fs::create_dir_all(&work)?;
        std::fs::create_dir_all(&regressions)?;
        eprintln!("fuzzing {name} for {seconds} s");
        let out = Command::new(&bin)
            .args(["fuzz", "run", "--release", name])
            .arg(&work)
            .arg(root.join("fuzz/corpus").join(name))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg(format!("-artifact_prefix={}/", regressions.display()))
            .current_dir(root.join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", target_dir.join("fuzz"))
            .output()
            .with_context(|| format!("running cargo fuzz for {name}"))?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::write(target_dir.join(format!("fuzz-{name}.log")), &log)?;
        let execs = last_number(&log, "stat::number_of_executed_units:").unwrap_or(0);
        let edges = last_number(&log, "cov:").unwrap_or(0);
        let features = last_number(&log, "ft:").unwrap_or(0);
        let crash = !out.status.success();
        if crash {
            crashed.push(name.clone());
        }
        rows.push(format!(
            "| {name} | {seconds} | {execs} | {edges} | {features} | {} |",
            if crash {
                "1 (see fuzz/regressions)"
            } else {
                "0"
            }
        ));
    }
    let table = format!(
        "| target | seconds | executions | edges (cov) | features (ft) | crashes |\n|---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    print!("{table}");
    let out = root.join("out/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("fuzz.md"), &table)?;
    if !crashed.is_empty() {
        bail!(
            "crashes in {}: inputs in fuzz/regressions/, logs in {}",
            crashed.join(", "),
            target_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn libfuzzer_stats_are_read_from_the_last_report() {
        let log = "#2 INITED cov: 10 ft: 12 corp: 1\n#900 DONE cov: 345 ft: 678 corp: 9\nstat::number_of_executed_units: 901\n";
        assert_eq!(super::last_number(log, "cov:"), Some(345));
        assert_eq!(super::last_number(log, "ft:"), Some(678));
        assert_eq!(
            super::last_number(log, "stat::number_of_executed_units:"),
            Some(901)
        );
        assert_eq!(super::last_number(log, "absent:"), None);
    }
}
