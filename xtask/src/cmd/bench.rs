//! `cargo xtask bench`: measurements printed as Markdown tables and written
//! to `out/bench/<name>.md`.

use anyhow::{Context, Result};
use pipeline::util;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// What `cargo xtask bench` measures; the name is also the table's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Build,
    Tor,
    Xmpp,
    Irc,
    Otr,
    App,
    /// The updater: refresh, download and hashing over the private Tor network, and applying
    /// the bundle `cargo xtask bundle` built.
    Update,
    /// Memory and the window's responsiveness under servers that flood (no Tor needed).
    Flood,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Build => "build",
            Which::Tor => "tor",
            Which::Xmpp => "xmpp",
            Which::Irc => "irc",
            Which::Otr => "otr",
            Which::App => "app",
            Which::Update => "update",
            Which::Flood => "flood",
        }
    }
}

pub fn run(root: &Path, which: Which) -> Result<()> {
    let table = match which {
        Which::Build => bench_build(root)?,
        Which::Tor => example(root, "timb-tor", "bench_tor")?,
        Which::Xmpp => example(root, "timb-xmpp", "bench_xmpp")?,
        Which::Irc => example(root, "timb-irc", "bench_irc")?,
        Which::Otr => example(root, "timb-otr", "bench_otr")?,
        Which::App => bench_app(root)?,
        Which::Update => bench_update(root)?,
        Which::Flood => run_example(root, "timb", "bench_flood", false)?,
    };
    let which = which.name();
    println!("{table}");
    let dir = root.join("out").join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{which}.md")), &table)?;
    Ok(())
}

fn timed(mut cmd: Command) -> Result<f64> {
    let t = Instant::now();
    util::run(&mut cmd)?;
    Ok(t.elapsed().as_secs_f64())
}

/// Clean builds into fresh target directories, so the numbers mean the same
/// on every machine; then a no-op re-run that must hit the output cache.
fn bench_build(root: &Path) -> Result<String> {
    let scratch = std::env::temp_dir().join(format!("timb-bench-{}", std::process::id()));
    util::remove_dir(&scratch)?;
    std::fs::create_dir_all(&scratch)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let exe = std::env::current_exe()?;

    let mut plain = Command::new(&cargo);
    plain
        .current_dir(root)
        .args(["build", "--release", "--locked", "--package", "timb"])
        .env("CARGO_TARGET_DIR", scratch.join("plain"));
    let t_plain = timed(plain)?;

    let out = scratch.join("bundle");
    let mut bundle = Command::new(&exe);
    bundle
        .current_dir(root)
        .args(["bundle", "--out"])
        .arg(&out)
        .env("CARGO_TARGET_DIR", scratch.join("bundle-target"))
        .env("TIMB_OUT_DIR", scratch.join("rbm-out"));
    let t_bundle = timed(bundle)?;

    let mut again = Command::new(&exe);
    again
        .current_dir(root)
        .args(["bundle", "--out"])
        .arg(&out)
        .env("CARGO_TARGET_DIR", scratch.join("bundle-target"))
        .env("TIMB_OUT_DIR", scratch.join("rbm-out"));
    let t_again = timed(again)?;

    let version: timb_release::Version = util::workspace_version(root)?.parse()?;
    let target = timb_release::Target::LinuxX86_64;
    let archive = out.join(target.archive_name(&version));
    let size = std::fs::metadata(&archive).context("no archive")?.len();
    let files = package::archive::read_tar_xz(&archive)?;
    let top = target.bundle_folder(&version);
    let size_of = |rel: &str| files.get(&format!("{top}/{rel}")).map_or(0, |b| b.len());
    let bin = size_of(&format!("app/{version}/timb"));
    let launcher = size_of("timb");
    let _ = util::remove_dir(&scratch);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(format!(
        "| measurement (clean, {} cores) | value |\n|---|---|\n| `cargo build --release -p timb` | {t_plain:.0} s |\n| `cargo xtask bundle` (sandboxed release build + bundle + sign) | {t_bundle:.0} s |\n| `cargo xtask bundle` again, nothing changed (cache hit) | {t_again:.1} s |\n| archive `{}` | {:.2} MiB |\n| `timb` binary inside (`app/VERSION/timb`) | {:.2} MiB |\n| launcher `timb` | {:.0} KiB |\n| load average at the end (1/5/15 min) | {load} |\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        archive.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
        size as f64 / 1048576.0,
        bin as f64 / 1048576.0,
        launcher as f64 / 1024.0,
    ))
}

/// The program itself: the release binary's start-up under Xvfb, and memory
/// (see app/timb/examples/bench_app.rs).
fn bench_app(root: &Path) -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(Command::new(&cargo).current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "--quiet",
        "--package",
        "timb",
    ]))?;
    let bin = util::cargo_target_dir(root).join("release/timb");
    std::env::set_var("TIMB_BIN", &bin);
    example(root, "timb", "bench_app")
}

/// The updater: refresh, download and verification over the private Tor network (the
/// `bench_fetch` example), then applying the bundle `cargo xtask bundle` built.
fn bench_update(root: &Path) -> Result<String> {
    let fetch = example(root, "timb-update-client", "bench_fetch")?;
    let version: timb_release::Version = util::workspace_version(root)?.parse()?;
    let archive = root
        .join("out")
        .join("bundle")
        .join(timb_release::Target::LinuxX86_64.archive_name(&version));
    if !archive.is_file() {
        return Ok(format!(
            "{fetch}\n(no apply measurement: {} is missing; run `cargo xtask bundle` first)\n",
            archive.display()
        ));
    }
    let mut c = util::cargo();
    c.current_dir(root)
        .args([
            "run",
            "--release",
            "--locked",
            "--quiet",
            "--package",
            "timb-update-client",
            "--",
            "bench-apply",
            "--archive",
        ])
        .arg(&archive);
    Ok(format!("{fetch}\n{}", util::output(&mut c)?))
}

/// The protocol benchmarks live beside their crates as examples that print a
/// table; they get the shared private Tor network like the tests do.
fn example(root: &Path, package: &str, name: &str) -> Result<String> {
    run_example(root, package, name, true)
}

/// A release build of example `name` of `package`, run; with the private Tor network
/// when `tor` says so.
fn run_example(root: &Path, package: &str, name: &str, tor: bool) -> Result<String> {
    let net = if tor {
        crate::testnet::start_testnet(root)?
    } else {
        None
    };
    let mut c = util::cargo();
    c.current_dir(root).args([
        "run",
        "--release",
        "--locked",
        "--quiet",
        "--package",
        package,
        "--example",
        name,
    ]);
    if let Some(n) = &net {
        c.env("TIMB_TESTNET", &n.config);
    }
    let out = util::output(&mut c)?;
    drop(net);
    Ok(out)
}
