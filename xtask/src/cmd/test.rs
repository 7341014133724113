//! `cargo xtask test`: provision, lint, then the whole suite, with the tests
//! that need a network run inside a fresh network namespace that has only
//! loopback, so nothing a test does can reach another machine.

use crate::testnet::start_testnet;
use anyhow::{bail, Context, Result};
use pipeline::{provision, util};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian packages the suite uses: real servers, the stock minisign CLI, X.
pub const TEST_PACKAGES: &[&str] = &[
    "bubblewrap",
    "mmdebstrap",
    "tor",
    "prosody",
    "ngircd",
    "xvfb",
    "xdotool",
    "x11-utils",
    "imagemagick",
    "minisign",
    "strace",
    "faketime",
    "diffoscope-minimal",
    "iproute2",
    "util-linux",
    "libgcrypt20-dev",
    "libgpg-error-dev",
    "libfontconfig-dev",
    "pkg-config",
    // libotr-sys builds libgcrypt and libgpg-error from their pinned archives.
    "make",
    "patch",
    "bzip2",
    "xz-utils",
    // Pinned Debian files over HTTP from a named mirror (TIMB_DEBIAN_MIRROR; a Mac's path).
    "curl",
    // objdump: the glibc-baseline reader (package/src/elf.rs) is checked against binutils'.
    "binutils",
    // rbm-projects/*/build are checked by shellcheck.
    "shellcheck",
    // The TLS 1.1 refusal test serves TLS 1.1 with openssl s_server.
    "openssl",
    // The accessibility test reads the real window over AT-SPI (tests/bundle/a11y):
    // a session bus, the AT-SPI bus and registry, libatspi through Debian's python3-gi.
    "dbus-daemon",
    "at-spi2-core",
    "python3-gi",
    "gir1.2-atspi-2.0",
    // The window under a Wayland compositor with no X server (weston's headless backend).
    "weston",
    // The Windows bundle: its Authenticode signatures (the bundle step signs with it, the
    // tests verify and strip), its zip, and running it under wine (64-bit only), with the
    // test-only ProcessPrng stand-in compiled by mingw-w64.
    "osslsigncode",
    "unzip",
    "wine",
    "wine64",
    "gcc-mingw-w64-x86-64-win32",
    // Bridges (#16): the private network's obfs4 bridge and, until the bundle's lyrebird
    // is built, the tests' client transport (an implementation independent of lyrebird);
    // nftables is the censor of the censored-network test.
    "obfs4proxy",
    "nftables",
];

/// The slow bundle tests run alone, after everything else.
const BUNDLE_TESTS: &str = "timb-bundle-tests";

/// `inside_netns`: the second half, run by the first inside the namespace it made.
pub fn run(root: &Path, inside_netns: bool) -> Result<()> {
    if inside_netns {
        return inside(root);
    }
    let started = std::time::Instant::now();
    // Taken now: the test build below rebuilds this very binary (xtask has integration
    // tests), and afterwards /proc/self/exe names the replaced file, "… (deleted)". The
    // path itself then holds the new build of the same source.
    let exe = std::env::current_exe()?;
    util::stage(1, 5, "installing missing Debian packages");
    provision::ensure(TEST_PACKAGES)?;
    // The OTR interoperability peer runs on Node; a machine that has Node
    // from elsewhere keeps it.
    if !util::have_command("node") || !util::have_command("npm") {
        provision::ensure(&["nodejs", "npm"])?;
    }
    util::stage(
        2,
        5,
        "fetching crates, pinned sources and test peers (the last step with network)",
    );
    // --check: the build container's locked packages too, and a line per kind of input
    // saying how it is pinned.
    util::run(
        Command::new(&exe)
            .args(["fetch", "--check"])
            .current_dir(root),
    )?;
    // The independent OTR implementation the interop tests talk to, pinned by
    // its package-lock.json (integrity hashes).
    let interop = root.join("app/timb-otr/tests/interop");
    if interop.join("package-lock.json").is_file() {
        util::run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&interop),
        )
        .context("installing the otr.js interop peer (npm ci)")?;
    }
    // The macOS test signs the cross-built launcher ad hoc and verifies it with rcodesign.
    // A fresh machine builds it (3 minutes) beside the bundle tests rather than before
    // them: their bundle build is the longest chain of the run, and the macOS test, which
    // waits for the marker, comes long after.
    let rcodesign = crate_tool_bin(
        root,
        "apple-codesign",
        RCODESIGN_VERSION,
        "rcodesign",
        RCODESIGN_ARGS,
    );
    std::env::set_var(RCODESIGN_ENV, &rcodesign);
    let rcodesign_ready = util::cargo_target_dir(root).join("rcodesign-ready");
    let _ = std::fs::remove_file(&rcodesign_ready);
    std::env::set_var(RCODESIGN_READY_ENV, &rcodesign_ready);
    // The bundle's release builds (the bundle, then its rebuild elsewhere) run in their
    // own sandboxes and target directories and need nothing from the suite, so they start
    // now, beside the lint and test build and then the suite, and share the cores with them
    // equally (each sandbox is its own session, so the kernel's autogroups schedule it as
    // one unit). Measured from an empty target directory on a fresh machine: the two
    // chains end within a minute of each other (46 min in all, against 63 when the bundle
    // tests waited for the test build), so neither gets a priority.
    let bundle_tests = BundleTests::start(root, &exe)?;
    let rcodesign_build = {
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let built = install_crate_tool(
                &root,
                "apple-codesign",
                RCODESIGN_VERSION,
                "rcodesign",
                RCODESIGN_ARGS,
            );
            let said = match &built {
                Ok(_) => "ok\n".to_string(),
                Err(e) => format!("building rcodesign failed: {e:#}\n"),
            };
            // Written whole, then renamed: the tests read it as soon as it exists.
            let tmp = rcodesign_ready.with_extension("tmp");
            std::fs::write(&tmp, said)
                .and_then(|()| std::fs::rename(&tmp, &rcodesign_ready))
                .with_context(|| format!("writing {}", rcodesign_ready.display()))?;
            built.map(drop)
        })
    };
    let lint_and_build = || -> Result<()> {
        // The TUF reference implementation the updater is checked against; the
        // tests (run in this process's children) find it through this variable.
        let python = tuf_python(root)?;
        std::env::set_var(TUF_PYTHON_ENV, &python);
        util::stage(
            3,
            5,
            "cargo fmt --check, cargo deny, then clippy -D warnings and the test build in one pass",
        );
        util::run(
            util::cargo()
                .current_dir(root)
                .args(["fmt", "--all", "--", "--check"]),
        )
        .context("code is not formatted: run `cargo fmt --all`")?;
        // cargo-deny (built on a fresh machine, 1.5 minutes, then seconds of checks) beside
        // the lint and test build: both only read the tree. Both failures are told.
        std::thread::scope(|s| {
            let denied = s.spawn(|| deny(root));
            let built = lint_and_build_tests(root);
            let denied = denied
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the cargo deny thread panicked")));
            match (denied, built) {
                (Err(d), Err(b)) => Err(anyhow::anyhow!("{d:#}\nand: {b:#}")),
                (d, b) => d.and(b),
            }
        })
    };
    // Whatever failed, the rcodesign build is waited for: it would outlive xtask otherwise.
    let done = lint_and_build();
    let built = rcodesign_build
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the rcodesign build thread panicked")));
    done?;
    built?;
    // The bundle tests' real-window test waits for the servers' harness this build made.
    bundle_tests.test_build_done()?;
    util::stage(
        4,
        5,
        "running the suite in a network namespace with only loopback (the bundle tests run beside it)",
    );
    let mut inner = Command::new(&exe);
    inner.args(["test", "--inside-netns"]).current_dir(root);
    let status = match netns_prefix() {
        Some(prefix) => {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..])
                .arg(&exe)
                .args(["test", "--inside-netns"])
                // Tests that change the network (the censored-network test adds a
                // namespace and a veth pair) run only inside a namespace made for them.
                .env(NETNS_MARKER, "1")
                .current_dir(root);
            c.status()?
        }
        None if host_loopback_allowed() => {
            eprintln!(
                "    (could not create a network namespace; {ALLOW_HOST_LOOPBACK}=1: running on the host's loopback)"
            );
            inner.status()?
        }
        None => bail!(
            "could not create a network namespace (neither `unshare --net` nor \
             `unshare --map-root-user --net` works here), so the tests could reach other \
             machines; run as root or with user namespaces, or set {ALLOW_HOST_LOOPBACK}=1 \
             to run them on the host's loopback anyway"
        ),
    };
    if !status.success() {
        bail!("the test suite failed");
    }
    util::stage(
        5,
        5,
        "the bundle: built, rebuilt elsewhere and compared, signatures, running it (waiting for it)",
    );
    bundle_tests.finish()?;
    eprintln!("all passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo clippy --workspace --all-targets -D warnings` and the test build in one pass:
/// clippy-driver (clippy's rustc) compiles the workspace's own crates, linting them as it
/// goes, so the dependencies are compiled once instead of checked for clippy and then
/// built for the tests (on 2 cores, a cold clippy alone took ~13 of the budget's 60
/// minutes). It is what `cargo clippy` itself does (`RUSTC_WORKSPACE_WRAPPER`, with the
/// lint flags in `CLIPPY_ARGS`), driving a build instead of a check; the namespace suite
/// inherits the same variables, so it finds everything built. Without clippy-driver in
/// the toolchain: `cargo clippy`, then the build.
fn lint_and_build_tests(root: &Path) -> Result<()> {
    let test_build = || {
        util::run(
            util::cargo()
                .current_dir(root)
                .args(["test", "--workspace"])
                .args(TEST_TARGETS)
                .args(["--locked", "--no-run", "--quiet"]),
        )?;
        // The examples once, as the programs the suite (and the bundle tests' real-window
        // test, which waits for this stage) runs: `cargo test` would also build each in its
        // test profile, ten more compiles and links no one runs. Built here, with the same
        // flags (clippy lints them as it compiles them), the suite finds them done: a cold
        // run once started that test while stage 4 was still linking `real_window_world`.
        util::run(util::cargo().current_dir(root).args([
            "build",
            "--workspace",
            "--examples",
            "--locked",
            "--quiet",
        ]))
    };
    let sysroot = util::output(
        Command::new("rustc")
            .args(["--print", "sysroot"])
            .current_dir(root),
    )
    .ok()
    .map(|s| PathBuf::from(s.trim()));
    match sysroot
        .map(|s| s.join("bin/clippy-driver"))
        .filter(|d| d.is_file())
    {
        Some(driver) => {
            // Line tables are enough for the tests' backtraces, and the ~70 test binaries
            // link faster without full debug info (developers' own builds keep theirs).
            std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");
            // A whole-suite run compiles the workspace once: incremental compilation's
            // caches would cost time to write and never be read (unless asked for).
            if std::env::var_os("CARGO_INCREMENTAL").is_none() {
                std::env::set_var("CARGO_INCREMENTAL", "0");
            }
            lints_fail_the_build(&driver)?;
            std::env::set_var("RUSTC_WORKSPACE_WRAPPER", driver);
            std::env::set_var("CLIPPY_ARGS", CLIPPY_ARGS);
            test_build().context("clippy (-D warnings) or the test build failed")
        }
        None => {
            util::run(util::cargo().current_dir(root).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]))?;
            test_build()
        }
    }
}

/// What `cargo test` builds and the suite runs: every target with tests. Not `--examples`
/// (built once, as programs, by `cargo build --examples`) and not `--benches` (timb has
/// none; the benchmarks are examples `cargo xtask bench` runs).
const TEST_TARGETS: &[&str] = &["--lib", "--bins", "--tests"];

/// `-D warnings`, in the form cargo-clippy hands it to clippy-driver.
const CLIPPY_ARGS: &str = "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__";

/// The one-pass lint is only worth something if it fails: a throwaway crate with a
/// warn-level clippy finding (`needless_return`) must fail to build through it.
fn lints_fail_the_build(driver: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("timb-clippy-canary-{}", std::process::id()));
    util::remove_dir(&dir)?;
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"canary\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )?;
    std::fs::write(
        dir.join("src/lib.rs"),
        "pub fn one() -> u32 {\n    return 1;\n}\n",
    )?;
    let out = util::cargo()
        .args(["build", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("RUSTC_WORKSPACE_WRAPPER", driver)
        .env("CLIPPY_ARGS", CLIPPY_ARGS)
        .output()
        .context("building the clippy canary")?;
    util::remove_dir(&dir)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("needless_return") {
        bail!("the lint pass let a clippy warning through (needless_return):\n{stderr}");
    }
    eprintln!("    clippy-driver fails the build on a clippy warning (needless_return canary): ok");
    Ok(())
}

/// The bundle tests, run in the background from the start of stage 3.
///
/// They start no servers and run outside the network namespace, because the
/// independent rebuild fetches its pinned sources and makes its own build
/// container from the Debian mirror, as any rebuilder does; the builds
/// themselves still run in the sandbox, without network. Their output goes to
/// a log that stage 5 prints. Dropped before [`BundleTests::finish`] (an
/// earlier stage failed), it stops the whole process group.
struct BundleTests {
    child: Option<std::process::Child>,
    log: PathBuf,
    /// Written when the test build is done (see [`BundleTests::test_build_done`]).
    marker: PathBuf,
    /// Their temporary folder (`TMPDIR`), see [`BundleTests::start`].
    tmp: PathBuf,
    started: std::time::Instant,
}

impl BundleTests {
    fn start(root: &Path, xtask: &Path) -> Result<Self> {
        // Building the test binary takes seconds (it depends on sha2 and hex);
        // it is then run directly, so it holds no cargo lock on the target
        // directory while the builds below use it.
        let out = util::output(util::cargo().current_dir(root).args([
            "test",
            "--locked",
            "--quiet",
            "--package",
            BUNDLE_TESTS,
            "--no-run",
            "--message-format=json",
        ]))
        .context("building the bundle tests")?;
        let exe =
            test_executable(&out).context("cargo did not name the bundle tests' executable")?;
        // The test build that runs beside them relinks both executables (xtask has tests
        // of its own, and the lint pass builds with other flags); they run from copies.
        let own = util::cargo_target_dir(root).join("bundle-tests-bin");
        std::fs::create_dir_all(&own)?;
        let copy = |from: &Path, name: &str| -> Result<PathBuf> {
            let to = own.join(name);
            std::fs::copy(from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
            Ok(to)
        };
        let (exe, xtask) = (copy(&exe, "bundle-tests")?, copy(xtask, "xtask")?);
        // The real window is driven over Tor against servers from an example the test
        // build makes (app/timb/examples/real_window_world.rs): that test waits for this
        // marker, written once the test build is done.
        let marker = own.join("test-build-done");
        let _ = std::fs::remove_file(&marker);
        let world = util::cargo_target_dir(root).join("debug/examples/real_window_world");
        let log = util::cargo_target_dir(root).join("bundle-tests.log");
        // Everything the bundle tests unpack, build and run goes under one temporary folder
        // of their own (2-3 GB a run: unpacked bundles, wine prefixes, rebuilt trees), emptied
        // when they pass and at the start of the next run, so a failed run's files stay for
        // reading until then. Left in /tmp by every run, they once filled the disk in the
        // middle of a CI run. The test network's key cache stays where it was: it is reused.
        let tmp = util::cargo_target_dir(root).join("bundle-tests-tmp");
        util::remove_dir(&tmp)?;
        std::fs::create_dir_all(&tmp)?;
        let keys = std::env::var_os("TIMB_TESTNET_KEY_CACHE").map_or_else(
            || std::env::temp_dir().join("timb-testnet-keys-v1"),
            PathBuf::from,
        );
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&exe);
        // Each step prints how long it took (see tests/bundle), into the log. Two at a
        // time: once the bundles are built, the rebuild and the update test compile while
        // the window tests (which mostly wait on Tor, servers and screens) run beside them;
        // one at a time, the run outgrew the 60-minute budget when Windows joined. Three
        // (cold CI at 91f124c) starved the real window of CPU until its deadline passed,
        // and slowed the test build and the rebuild as much as it gained.
        cmd.args(["--test-threads=2", "--nocapture"]);
        let child = cmd
            .current_dir(root.join("tests/bundle"))
            .env("TIMB_XTASK_BIN", &xtask)
            .env("TIMB_REAL_WINDOW_WORLD", &world)
            .env("TIMB_TEST_BUILD_DONE", &marker)
            .env("TMPDIR", &tmp)
            .env("TIMB_TESTNET_KEY_CACHE", &keys)
            // The lint pass's wrapper is for the debug builds here; the rebuild compiles
            // xtask again with plain rustc, as a rebuilder would.
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            // Its own process group, so stopping it stops its builds too.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        eprintln!(
            "    bundle tests started in the background (pid {}), log: {}",
            child.id(),
            log.display()
        );
        Ok(Self {
            child: Some(child),
            log,
            marker,
            tmp,
            started: std::time::Instant::now(),
        })
    }

    /// Tells the bundle tests that the debug build (and the example they need) is done.
    fn test_build_done(&self) -> Result<()> {
        std::fs::write(&self.marker, b"done\n")
            .with_context(|| format!("writing {}", self.marker.display()))
    }

    fn finish(mut self) -> Result<()> {
        let mut child = self.child.take().context("bundle tests already finished")?;
        let status = child.wait()?;
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        eprintln!(
            "    bundle tests took {:.0} s in the background:",
            self.started.elapsed().as_secs_f64()
        );
        eprintln!("{text}");
        if !status.success() {
            bail!(
                "the bundle tests failed (log: {}; their files: {})",
                self.log.display(),
                self.tmp.display()
            );
        }
        util::remove_dir(&self.tmp)
    }
}

impl Drop for BundleTests {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            eprintln!(
                "    stopping the bundle tests (log: {})",
                self.log.display()
            );
            let _ = Command::new("kill")
                .args(["-TERM", "--"])
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.wait();
        }
    }
}

/// The integration test's executable (`tests/bundle.rs`, target kind "test")
/// in `cargo test --no-run --message-format=json` output.
fn test_executable(json_lines: &str) -> Option<PathBuf> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|x| x == "test"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// cargo-deny, built from crates.io by `cargo install --locked` when missing.
pub const CARGO_DENY_VERSION: &str = "0.20.2";

/// Where cargo-deny 0.20's default advisory database lives under its
/// `db-path` (a hash of the RustSec URL); a version that names it otherwise
/// fails the advisories check loudly ("cannot change to ...").
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

/// Tools the test run installs (cargo-deny, rcodesign, the Python tuf venv), each under
/// a name that carries its version or pin: `$TIMB_TOOLS_DIR`, else the user's
/// cache (`$XDG_CACHE_HOME/timb/tools`, `~/.cache/timb/tools`), which outlives
/// target directories the way an installed package would; without a home,
/// inside the target directory.
fn tools_dir(root: &Path) -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("TIMB_TOOLS_DIR") {
        return d;
    }
    match env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache"))) {
        Some(cache) if cache.is_absolute() => cache.join("timb/tools"),
        _ => util::cargo_target_dir(root).join("timb-tools"),
    }
}

/// How the TUF interoperability tests find the Python that has `tuf`.
const TUF_PYTHON_ENV: &str = "TIMB_TUF_PYTHON";

/// The pinned Python `tuf` (requirements with hashes), in a venv cached in
/// [`tools_dir`] under the requirements' hash, so a changed pin makes a new one.
fn tuf_python(root: &Path) -> Result<PathBuf> {
    let reqs = root.join("app/timb-release/tests/tuf-interop/requirements.txt");
    let text = std::fs::read(&reqs).with_context(|| format!("reading {}", reqs.display()))?;
    let sum = timb_release::Sha256::of(&text).to_string();
    let venv = tools_dir(root).join(format!("tuf-venv-{}", &sum[..16]));
    let python = venv.join("bin/python");
    let works = |p: &Path| {
        Command::new(p)
            .args(["-c", "import tuf.ngclient"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(&python) {
        return Ok(python);
    }
    util::remove_dir(&venv)?;
    std::fs::create_dir_all(tools_dir(root))?;
    // Debian's python3 needs python3-venv for `-m venv`; another python3 on
    // PATH (pyenv) has it built in.
    let has_venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_venv {
        provision::ensure(&["python3-venv"])?;
    }
    eprintln!(
        "    installing the pinned Python tuf into {} (once)",
        venv.display()
    );
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .context("making a Python venv for the TUF reference implementation")?;
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "-r",
            ])
            .arg(&reqs),
    )
    .context("installing the pinned Python tuf (pip --require-hashes)")?;
    if !works(&python) {
        bail!("{} cannot import tuf after installing it", python.display());
    }
    Ok(python)
}

/// The cargo-deny binary, built once per version into [`tools_dir`].
fn cargo_deny(root: &Path) -> Result<PathBuf> {
    install_tool(root, "cargo-deny", CARGO_DENY_VERSION)
}

/// A cargo tool from crates.io at `version`, built once (`cargo install --locked`) into
/// its own folder of [`tools_dir`]; the path of its binary.
pub(crate) fn install_tool(root: &Path, name: &str, version: &str) -> Result<PathBuf> {
    install_crate_tool(root, name, version, name, &[])
}

/// rcodesign (the apple-codesign crate), which signs and verifies Mach-O code signatures
/// without a Mac. Without its default `notarize` feature: Apple's notary service is not
/// reachable from here, and the feature adds an AWS client.
pub const RCODESIGN_VERSION: &str = "0.29.0";

/// Its `cargo install` arguments.
pub(crate) const RCODESIGN_ARGS: &[&str] = &["--no-default-features"];

/// How the bundle tests find rcodesign.
pub(crate) const RCODESIGN_ENV: &str = "TIMB_RCODESIGN";

/// A file written once rcodesign is built ("ok") or has failed (why): the bundle tests
/// start before it is.
const RCODESIGN_READY_ENV: &str = "TIMB_RCODESIGN_READY";

/// Where [`install_crate_tool`] puts the binary `bin_name` of crate `name`.
fn crate_tool_bin(
    root: &Path,
    name: &str,
    version: &str,
    bin_name: &str,
    args: &[&str],
) -> PathBuf {
    crate_tool_prefix(root, name, version, args)
        .join("bin")
        .join(bin_name)
}

/// The folder of a crate tool built with `args`: its name records them, so other
/// arguments build anew.
fn crate_tool_prefix(root: &Path, name: &str, version: &str, args: &[&str]) -> PathBuf {
    let flavour: String = args
        .iter()
        .map(|a| a.trim_start_matches('-'))
        .collect::<Vec<_>>()
        .join("-");
    match flavour.as_str() {
        "" => tools_dir(root).join(format!("{name}-{version}")),
        f => tools_dir(root).join(format!("{name}-{version}-{f}")),
    }
}

/// [`install_tool`] for a crate whose binary has another name, with extra `cargo install`
/// arguments (features); the folder name records them, so other arguments build anew.
pub(crate) fn install_crate_tool(
    root: &Path,
    name: &str,
    version: &str,
    bin_name: &str,
    args: &[&str],
) -> Result<PathBuf> {
    let prefix = crate_tool_prefix(root, name, version, args);
    let bin = crate_tool_bin(root, name, version, bin_name, args);
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "    building {name} {version} from crates.io into {} (once; a few minutes)",
        prefix.display()
    );
    let build = tools_dir(root).join(format!("{name}-build"));
    util::run(
        util::cargo()
            .args(["install", "--locked", "--quiet", name, "--version", version])
            .args(args)
            .arg("--root")
            .arg(&prefix)
            .arg("--target-dir")
            .arg(&build)
            // Not the workspace's target directory, profile settings or lint pass (this
            // may run beside the lint and test build, which sets those).
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .env_remove("CARGO_PROFILE_DEV_DEBUG")
            // A test tool, run for seconds: built for build time, not speed. cargo-deny's
            // own release profile (fat LTO, one codegen unit) made it ~3 of a fresh
            // machine's CI minutes, rcodesign another 3.5, before any test ran.
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .current_dir(std::env::temp_dir()),
    )
    .with_context(|| format!("building {name}"))?;
    util::remove_dir(&build)?;
    if !bin.is_file() {
        bail!("cargo install did not produce {}", bin.display());
    }
    Ok(bin)
}

/// The offline RustSec snapshot: a git bundle in shared/ beside the clone
/// (or `$TIMB_ADVISORY_DB_BUNDLE`).
fn advisory_bundle(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TIMB_ADVISORY_DB_BUNDLE") {
        return Some(PathBuf::from(p));
    }
    let p = root.join("../shared/advisory-db/advisory-db.bundle");
    p.is_file().then_some(p)
}

/// `cargo deny check licenses bans sources` (deny.toml), then the advisories
/// against the offline snapshot, never fetching.
fn deny(root: &Path) -> Result<()> {
    let bin = cargo_deny(root)?;
    util::run(
        Command::new(&bin)
            .args(["deny", "--offline", "check", "licenses", "bans", "sources"])
            .current_dir(root),
    )
    .context("cargo deny: a licence, banned crate or source is not allowed (deny.toml)")?;
    deny_catches_an_unlisted_licence(root, &bin)?;
    let Some(bundle) = advisory_bundle(root) else {
        eprintln!(
            "    advisories NOT checked: no RustSec snapshot at ../shared/advisory-db/advisory-db.bundle \
             (set TIMB_ADVISORY_DB_BUNDLE)"
        );
        return Ok(());
    };
    // A fresh clone each run: the snapshot is small, and a stale one is never used.
    let dbs = tools_dir(root).join("advisory-dbs");
    let db = dbs.join(ADVISORY_DB_DIR);
    if db.exists() {
        util::remove_dir(&db)?;
    }
    std::fs::create_dir_all(&dbs)?;
    util::run(
        Command::new("git")
            .args(["-c", "init.defaultBranch=main", "clone", "--quiet"])
            .arg(&bundle)
            .arg(&db),
    )
    .with_context(|| format!("cloning the advisory snapshot {}", bundle.display()))?;
    let date = util::output(Command::new("git").arg("-C").arg(&db).args([
        "log",
        "-1",
        "--format=%cs %h",
    ]))?;
    eprintln!("    advisories: RustSec snapshot of {}", date.trim());
    util::run(
        Command::new(&bin)
            .args(["deny", "--offline", "check", "advisories"])
            .env("TIMB_ADVISORY_DBS", &dbs)
            .current_dir(root),
    )
    .context("cargo deny: an advisory applies (deny.toml [advisories])")
}

/// The licence check is only worth something if it fails: a throwaway
/// workspace whose crate depends on one licensed SSPL-1.0 (not allowed) must
/// fail `cargo deny check licenses` under the repository's deny.toml.
fn deny_catches_an_unlisted_licence(root: &Path, bin: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("timb-deny-canary-{}", std::process::id()));
    util::remove_dir(&dir)?;
    let files = [
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"app\", \"dep\"]\nresolver = \"2\"\n",
        ),
        (
            "app/Cargo.toml",
            "[package]\nname = \"canary-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"GPL-3.0-or-later\"\npublish = false\n[dependencies]\ncanary-dep = { path = \"../dep\" }\n",
        ),
        ("app/src/lib.rs", ""),
        (
            "dep/Cargo.toml",
            "[package]\nname = \"canary-dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"SSPL-1.0\"\npublish = false\n",
        ),
        ("dep/src/lib.rs", ""),
    ];
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().context("a parent")?)?;
        std::fs::write(&p, text)?;
    }
    std::fs::copy(root.join("deny.toml"), dir.join("deny.toml"))?;
    let out = Command::new(bin)
        .args(["deny", "--offline", "check", "licenses"])
        .current_dir(&dir)
        .output()
        .context("running cargo deny on the canary workspace")?;
    util::remove_dir(&dir)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("SSPL-1.0") {
        bail!("cargo deny accepted a crate licensed SSPL-1.0 (not in deny.toml):\n{stderr}");
    }
    eprintln!("    cargo deny refuses an unlisted licence (SSPL-1.0 canary): ok");
    Ok(())
}

/// Set to 1 to run the suite on the host's loopback when no network namespace
/// can be made (otherwise that is an error).
pub const ALLOW_HOST_LOOPBACK: &str = "TIMB_ALLOW_HOST_LOOPBACK";

/// Set for the suite when it runs in a network namespace made for it.
const NETNS_MARKER: &str = "TIMB_TEST_NETNS";

fn host_loopback_allowed() -> bool {
    std::env::var(ALLOW_HOST_LOOPBACK).is_ok_and(|v| v == "1")
}

/// `unshare --net` as root, `unshare -rn` for a user with user namespaces.
fn netns_prefix() -> Option<Vec<&'static str>> {
    for p in [
        vec!["unshare", "--net"],
        vec!["unshare", "--map-root-user", "--net"],
    ] {
        let ok = Command::new(p[0])
            .args(&p[1..])
            .arg("true")
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(p);
        }
    }
    None
}

fn inside(root: &Path) -> Result<()> {
    // A new namespace starts with `lo` down.
    let _ = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    std::env::set_var("CARGO_NET_OFFLINE", "true");
    let testnet = start_testnet(root)?;
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(t) = &testnet {
        env.push(("TIMB_TESTNET".into(), t.config.display().to_string()));
    }
    // Missing interop peers fail the run instead of being skipped.
    env.push(("TIMB_REQUIRE_INTEROP".into(), "1".into()));
    let unit = run_suite(root, &env);
    drop(testnet);
    unit
}

/// How many test programs run at once in the namespace. Their tests mostly wait (on Tor,
/// servers, timeouts); `cargo test` runs the programs one after another, which took six
/// of the budget's minutes. The private network's port contract (timb-testnet's
/// `exit_port_index`) is what lets them share it.
const PARALLEL_TEST_PROGRAMS: usize = 3;

/// A test program still running after this long is stopped (with every process it
/// started) and counted as failed: the slowest take about two minutes, and a hang must
/// end the suite with its name, not reach the CI's own limit with no word.
const PROGRAM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The programs that took longest in the last measured runs (30 s or more), longest
/// first: they start first. The rest keep cargo's order.
const SLOWEST: &[&str] = &[
    "timb/disconnect",
    "update-client/update",
    "timb-tor/transport",
    "timb-irc/ngircd",
];

/// How often the suite says which programs are still running.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `cmd` in a process group of its own with its output in `log`; past `deadline` the
/// whole group is killed. Ok when it exited with success.
fn run_with_deadline(mut cmd: Command, log: &Path, deadline: std::time::Duration) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .context("could not start it")?;
    let started = std::time::Instant::now();
    // The group: the program and what it started (servers, Tor clients, a window). Killed
    // however the program ended, so nothing it left running outlives it.
    let kill_group = |child: &mut std::process::Child| {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    };
    loop {
        let status = match child.try_wait() {
            Ok(s) => s,
            Err(e) => {
                kill_group(&mut child);
                return Err(e.into());
            }
        };
        if let Some(status) = status {
            kill_group(&mut child);
            return if status.success() {
                Ok(())
            } else {
                bail!("ended with {status}")
            };
        }
        if started.elapsed() > deadline {
            kill_group(&mut child);
            bail!(
                "stopped after {} s without ending (its output so far is above, and in {})",
                deadline.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// One test program of the workspace, as `cargo test` would run it.
#[derive(Debug, PartialEq)]
struct TestProgram {
    /// `package/target` (what the log calls it).
    name: String,
    exe: PathBuf,
    /// Its package's folder: cargo runs a test there, with `CARGO_MANIFEST_DIR` set to it.
    dir: PathBuf,
}

/// The test programs in `cargo test --no-run --message-format=json` output.
fn test_programs(json_lines: &str) -> Vec<TestProgram> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            let exe = PathBuf::from(m["executable"].as_str()?);
            let dir = Path::new(m["manifest_path"].as_str()?)
                .parent()?
                .to_path_buf();
            let package = dir.file_name()?.to_string_lossy().into_owned();
            let target = m["target"]["name"].as_str()?;
            Some(TestProgram {
                name: format!("{package}/{target}"),
                exe,
                dir,
            })
        })
        .collect()
}

/// The suite (every test program but the bundle tests', then the doc tests),
/// [`PARALLEL_TEST_PROGRAMS`] at a time; each program's output printed whole when it ends.
fn run_suite(root: &Path, env: &[(String, String)]) -> Result<()> {
    let suite = ["--workspace", "--locked", "--exclude", BUNDLE_TESTS];
    // Built in stage 3: this only lists them.
    let listed = util::output(
        util::cargo()
            .current_dir(root)
            .arg("test")
            .args(suite)
            .args(TEST_TARGETS)
            .args(["--no-run", "--quiet", "--message-format=json"]),
    )?;
    let mut programs = test_programs(&listed);
    // The longest first, so the last minute is not one long program alone.
    programs.sort_by_key(|p| {
        SLOWEST
            .iter()
            .position(|s| *s == p.name)
            .unwrap_or(SLOWEST.len())
    });
    if programs.is_empty() {
        bail!("cargo listed no test program");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut jobs: Vec<(String, Command)> = programs
        .iter()
        .map(|p| {
            let mut c = Command::new(&p.exe);
            c.current_dir(&p.dir)
                .env("CARGO_MANIFEST_DIR", &p.dir)
                .env("CARGO", &cargo);
            (p.name.clone(), c)
        })
        .collect();
    let mut doc = util::cargo();
    doc.current_dir(root).arg("test").args(suite).arg("--doc");
    // The doc tests compile (rustdoc) while the first programs run.
    jobs.insert(0, ("doc tests".into(), doc));
    for (_, c) in &mut jobs {
        c.envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
    }
    // Each program's output goes to a file (target/<profile>/suite-logs/) and is printed
    // whole when it ends; a hung program's file shows how far it got.
    let logs = programs[0]
        .exe
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| root.join("target"), Path::to_path_buf)
        .join("suite-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let jobs = std::sync::Mutex::new(jobs.into_iter().enumerate());
    let failed = std::sync::Mutex::new(Vec::new());
    let print = std::sync::Mutex::new(());
    let running = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let workers_left = std::sync::atomic::AtomicUsize::new(PARALLEL_TEST_PROGRAMS);
    let total = programs.len() + 1;
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_TEST_PROGRAMS {
            s.spawn(|| {
                // Counted down however the worker ends, a panic included: the progress
                // thread waits for the count.
                struct Done<'a>(&'a std::sync::atomic::AtomicUsize);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _done = Done(&workers_left);
                loop {
                    let next = jobs.lock().map(|mut j| j.next()).unwrap_or(None);
                    let Some((n, (name, cmd))) = next else { break };
                    let started = std::time::Instant::now();
                    // By number: a package's lib and bin tests share a name ("timb/timb").
                    if let Ok(mut r) = running.lock() {
                        r.insert(n, (name.clone(), started));
                    }
                    let log = logs.join(format!("{n:02}-{}.log", name.replace(['/', ' '], "-")));
                    let ended = run_with_deadline(cmd, &log, PROGRAM_DEADLINE);
                    if let Ok(mut r) = running.lock() {
                        r.remove(&n);
                    }
                    let _one_at_a_time = print.lock();
                    {
                        use std::io::Write;
                        let mut so = std::io::stdout().lock();
                        let _ = so.write_all(&std::fs::read(&log).unwrap_or_default());
                        let _ = so.flush();
                    }
                    let ok = match &ended {
                        Ok(()) => true,
                        Err(e) => {
                            eprintln!("{name}: {e:#}");
                            false
                        }
                    };
                    eprintln!(
                        "    {} {name} ({:.0} s)",
                        if ok { "passed" } else { "FAILED" },
                        started.elapsed().as_secs_f64()
                    );
                    if !ok {
                        if let Ok(mut f) = failed.lock() {
                            f.push(name);
                        }
                    }
                }
            });
        }
        // What is still running, now and then: a slow or hung program is named while it
        // runs, not only when the CI's own limit ends everything.
        s.spawn(|| {
            let mut last = std::time::Instant::now();
            while workers_left.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                std::thread::sleep(std::time::Duration::from_millis(500));
                if last.elapsed() < PROGRESS_EVERY {
                    continue;
                }
                last = std::time::Instant::now();
                let now: Vec<String> = running
                    .lock()
                    .map(|r| {
                        r.values()
                            .map(|(n, t)| {
                                format!("{n} ({:.0} min)", t.elapsed().as_secs_f64() / 60.0)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if !now.is_empty() {
                    let _one_at_a_time = print.lock();
                    eprintln!("    still running: {}", now.join(", "));
                }
            }
        });
    });
    let failed = failed.into_inner().unwrap_or_default();
    if !failed.is_empty() {
        bail!(
            "{} of {total} test programs failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    eprintln!("    all {total} test programs passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the process whose id `pid_file` holds is gone within 5 s (or a zombie
    /// waiting for its killed parent's reaper).
    fn ends_soon(pid_file: &Path) -> bool {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let stat = Path::new("/proc").join(pid.trim()).join("stat");
        (0..50).any(|_| {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            let gone = state.is_empty() || state.contains(") Z");
            if !gone {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            gone
        })
    }

    #[test]
    fn a_program_past_its_deadline_is_stopped_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let (log, pid) = (dir.path().join("p.log"), dir.path().join("pid"));
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "echo started; sleep 60 & echo $! > {}; wait",
            pid.display()
        ));
        let t = std::time::Instant::now();
        let e = run_with_deadline(c, &log, std::time::Duration::from_secs(1)).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        assert!(format!("{e:#}").contains("stopped after 1 s"), "{e:#}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\n");
        assert!(
            ends_soon(&pid),
            "the program's own child outlived the deadline"
        );
    }

    #[test]
    fn what_a_program_leaves_running_ends_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("sleep 60 & echo $! > {}", pid.display()));
        run_with_deadline(
            c,
            &dir.path().join("p.log"),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            ends_soon(&pid),
            "the program's background child outlived it"
        );
    }

    #[test]
    fn a_failing_program_says_how_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let log = dir.path().join("p.log");
        let e = run_with_deadline(c, &log, std::time::Duration::from_secs(60)).unwrap_err();
        assert!(format!("{e:#}").contains("exit status: 3"), "{e:#}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\n");
    }

    #[test]
    fn test_programs_are_read_with_their_package_folder() {
        let lines = [
            r#"{"reason":"compiler-artifact","manifest_path":"/r/app/timb-tor/Cargo.toml","target":{"kind":["test"],"name":"transport"},"profile":{"test":true},"executable":"/t/deps/transport-1"}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/r/app/timb-tor/Cargo.toml","target":{"kind":["lib"],"name":"timb_tor"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/r/xtask/Cargo.toml","target":{"kind":["bin"],"name":"xtask"},"profile":{"test":true},"executable":"/t/deps/xtask-2"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            test_programs(&lines),
            vec![
                TestProgram {
                    name: "timb-tor/transport".into(),
                    exe: "/t/deps/transport-1".into(),
                    dir: "/r/app/timb-tor".into(),
                },
                TestProgram {
                    name: "xtask/xtask".into(),
                    exe: "/t/deps/xtask-2".into(),
                    dir: "/r/xtask".into(),
                },
            ]
        );
    }

    #[test]
    fn the_integration_test_is_run_not_the_library_harness() {
        let lines = [
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"profile":{"test":true},"executable":"/t/deps/timb_bundle_tests-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"kind":["test"]},"profile":{"test":true},"executable":"/t/deps/bundle-2"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            test_executable(&lines),
            Some(PathBuf::from("/t/deps/bundle-2"))
        );
        assert_eq!(
            test_executable(&lines.replace("[\"test\"]", "[\"lib\"]")),
            None
        );
    }
}
