//! The bundle pipeline end to end: build the signed bundle, rebuild it from a
//! copy of the source elsewhere under a different zone, locale, umask and
//! clock, check it with the stock minisign CLI, tamper with it, and run it.
//!
//! Run through `cargo xtask test`, which passes the xtask binary in
//! `TIMB_XTASK_BIN`; each test reuses the one bundle built by the first.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn xtask() -> Command {
    match std::env::var_os("TIMB_XTASK_BIN") {
        Some(bin) => {
            let mut c = Command::new(bin);
            c.current_dir(repo_root());
            c
        }
        None => {
            let mut c = Command::new(env!("CARGO"));
            c.current_dir(repo_root()).args([
                "run",
                "--locked",
                "--quiet",
                "--package",
                "xtask",
                "--",
            ]);
            c
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("timb-bundle-tests-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(cmd: &mut Command) -> Output {
    let started = std::time::Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    // Where the time goes, for CI's log (`cargo xtask test` runs these with --nocapture).
    let what: Vec<_> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args().take(2))
        .map(|a| Path::new(a).file_name().unwrap_or(a).to_string_lossy())
        .collect();
    // Tests run two at a time: each line names its test (libtest names the thread so).
    eprintln!(
        "    [{:.1} min] {} ({})",
        started.elapsed().as_secs_f64() / 60.0,
        what.join(" "),
        std::thread::current().name().unwrap_or("?")
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

struct Bundle {
    dir: PathBuf,
    /// The Linux archive.
    archive: PathBuf,
    /// The Windows archive, built by the same `cargo xtask bundle` when asked for.
    windows: Option<PathBuf>,
    version: String,
}

/// Whether this run builds and tests the Windows bundle too: always, unless a developer
/// iterating on the Linux tests sets `TIMB_WINDOWS_BUNDLE=0` (the Windows tests then fail,
/// saying why; `cargo xtask test` never sets it).
fn with_windows() -> bool {
    std::env::var_os("TIMB_WINDOWS_BUNDLE").is_none_or(|v| v != "0")
}

/// Builds the signed bundles once for all tests: Linux and Windows (`cargo xtask bundle`
/// with no `--target` builds both, at the same time).
fn bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| {
        let dir = scratch("signed");
        let mut cmd = xtask();
        cmd.args(["bundle", "--out"]).arg(&dir);
        // The release machine is one of the release's builders (a dirty tree names no
        // commit a builder can vouch for: then it is not).
        if clean_commit() {
            let (name, key) = &builders()[0];
            cmd.arg("--builder-key")
                .arg(key)
                .args(["--builder", name])
                .env("TIMB_BUILDER_PASSWORD", BUILDER_PASSWORD);
        }
        if !with_windows() {
            cmd.args(["--target", "linux-x86_64"]);
        }
        let out = run_ok(&mut cmd);
        let printed = String::from_utf8(out.stdout).unwrap();
        let find = |suffix: &str| {
            let p = printed
                .lines()
                .find(|l| l.ends_with(suffix))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("bundle printed no *{suffix}:\n{printed}"));
            assert!(p.is_file(), "bundle printed {p:?}");
            p
        };
        let archive = find("-linux-x86_64.tar.xz");
        let windows = with_windows().then(|| find("-windows-x86_64.zip"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut loud = vec!["LOCAL DEVELOPMENT KEY"];
        if with_windows() {
            loud.push("LOCAL DEVELOPMENT Authenticode");
        }
        for loud in loud {
            assert!(
                stderr.contains(loud),
                "a development-signed bundle must say so loudly ({loud}):\n{stderr}"
            );
        }
        let name = archive.file_name().unwrap().to_str().unwrap();
        let version = name
            .strip_prefix("timb-")
            .unwrap()
            .strip_suffix("-linux-x86_64.tar.xz")
            .unwrap()
            .to_string();
        Bundle {
            dir,
            archive,
            windows,
            version,
        }
    })
}

/// The last commit's time, as the bundle's build takes it.
fn source_date_epoch() -> String {
    let out =
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(repo_root())
                .args(["log", "-1", "--format=%ct"]),
        );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn dev_pub() -> PathBuf {
    target_dir().join("timb-dev-key/timb-dev.pub")
}

/// A minisign key pair `secret` and `public`, encrypted with `password` as a person's key
/// is (without a terminal, setsid, minisign reads the password from its input).
fn minisign_keypair(secret: &Path, public: &Path, password: &str) {
    let mut gen = Command::new("setsid")
        .args(["minisign", "-G", "-p"])
        .arg(public)
        .arg("-s")
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let pw = format!("{password}\n{password}\n");
        gen.stdin.take().unwrap().write_all(pw.as_bytes()).unwrap();
    }
    assert!(gen.wait().unwrap().success(), "minisign -G failed");
}

/// The password of the test builders' keys.
const BUILDER_PASSWORD: &str = "a test builder's key";

/// The release's builders (#15), their keys made once: `release-machine` (the build that
/// bundle() makes vouches for itself), `rebuilder` (the rebuild elsewhere) and `carol`, who
/// is listed in the quorum's policy and signs nothing. Each `(name, secret key)`, the
/// public key beside it as `.pub`.
fn builders() -> &'static [(String, PathBuf)] {
    static B: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    B.get_or_init(|| {
        let dir = scratch("builders");
        ["release-machine", "rebuilder", "carol"]
            .iter()
            .map(|name| {
                let key = dir.join(format!("{name}.key"));
                minisign_keypair(&key, &dir.join(format!("{name}.pub")), BUILDER_PASSWORD);
                (name.to_string(), key)
            })
            .collect()
    })
}

/// Runs `cmd` with `home` as its HOME (created), keeping the cargo and rustup homes it had.
fn with_home(cmd: &mut Command, home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    let old = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let cargo = std::env::var_os("CARGO_HOME").map_or_else(|| old.join(".cargo"), PathBuf::from);
    let rustup = std::env::var_os("RUSTUP_HOME").map_or_else(|| old.join(".rustup"), PathBuf::from);
    cmd.env("HOME", home)
        .env("CARGO_HOME", cargo)
        .env("RUSTUP_HOME", rustup);
}

/// Whether this checkout is a clean commit with no untracked file that is not ignored (as
/// CI's clone is): only then is a bundle of it a build a builder can vouch for.
fn clean_commit() -> bool {
    let out = run_ok(Command::new("git").arg("-C").arg(repo_root()).args([
        "status",
        "--porcelain",
        "--untracked-files=normal",
    ]));
    out.stdout.is_empty()
}

/// Unpacks a `.tar.xz` or `.zip` bundle into `into`.
fn extract(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    if archive.extension().is_some_and(|e| e == "zip") {
        run_ok(
            Command::new("unzip")
                .arg("-q")
                .arg(archive)
                .arg("-d")
                .arg(into),
        );
        return;
    }
    run_ok(
        Command::new("tar")
            .arg("-xJf")
            .arg(archive)
            .arg("-C")
            .arg(into),
    );
}

/// Copies the files git knows about (tracked and new) to another folder.
fn copy_source(to: &Path) {
    let root = repo_root();
    let out = run_ok(Command::new("git").arg("-C").arg(&root).args([
        "ls-files",
        "-z",
        "-co",
        "--exclude-standard",
    ]));
    for rel in out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let rel = std::str::from_utf8(rel).unwrap();
        let from = root.join(rel);
        if !from.is_file() {
            continue;
        }
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&from, &dst).unwrap();
    }
}

/// Both bundles rebuilt elsewhere by one `cargo xtask verify` (the targets build at the same
/// time), the Windows one compared after its published exes' Authenticode signatures are
/// stripped: the same bytes.
#[test]
fn rebuilding_elsewhere_gives_the_same_bytes() {
    let b = bundle();
    let mut archives = vec![(
        b.archive.as_path(),
        format!("timb-{v}-linux-x86_64/app/{v}/timb", v = b.version),
    )];
    if let Some(w) = b.windows.as_deref() {
        archives.push((
            w,
            format!("timb-{v}-windows-x86_64/app/{v}/timb.exe", v = b.version),
        ));
    }
    rebuild_and_compare(&archives);
}

/// The bundles, with the Windows one; a clear failure when a Windows test runs without it.
fn windows_bundle() -> (&'static Bundle, &'static Path) {
    let b = bundle();
    let w = b.windows.as_deref().unwrap_or_else(|| {
        panic!("TIMB_WINDOWS_BUNDLE=0: the Windows bundle was not built for this run")
    });
    (b, w)
}

/// The rebuild's target folder (`repro-second-build`, seeded with the first build's
/// third-party crates, its build container made there) is shared by the update test's
/// builds; the bundle tests run two at a time, so one of them uses it at a time.
fn second_build() -> std::sync::MutexGuard<'static, ()> {
    static SECOND_BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SECOND_BUILD.lock().unwrap_or_else(|p| p.into_inner())
}

/// One rebuild of `archives` from their source elsewhere (a path with a space in it), under
/// another zone, locale, umask and clock: MATCH for each, the binary named beside each
/// archive the same, and the rebuild's build container the same bytes as the first build's.
fn rebuild_and_compare(archives: &[(&Path, String)]) {
    let work = scratch("rebuild");
    // The rebuild keeps its own target directory (outside the scratch folder
    // so CI can reuse its build container between runs). Two cold release
    // builds do not fit CI's time on 2 cores, so by default the third-party
    // crates compiled by the first build seed it; every workspace crate,
    // libotr, libgcrypt, the LTO and the link are still redone under the other
    // path, zone, locale, umask and clock. TIMB_FULL_REPRO=1 shares nothing.
    let _only_user = second_build();
    let second_target = target_dir().join("repro-second-build");
    let full = std::env::var_os("TIMB_FULL_REPRO").is_some_and(|v| v == "1");
    let sde = source_date_epoch();
    // On a clean commit (as CI's clone is): `rebuild`, verify's rebuild of the whole release
    // folder from the commit it names, then (#15) the builder `rebuilder`'s signatures over
    // its sums files, with a HOME of its own. (The seeded crates and the development-signed
    // release need its test-only --test-shortcuts.) On a tree with changes no builder can
    // vouch: `rebuild` refuses before building, and `verify --source` rebuilds the copy.
    let release = archives[0].0.parent().unwrap();
    let vwork = work.join("other place/verify");
    let vouch = work.join("vouch");
    let clean = clean_commit();
    let mut verify = xtask();
    if clean {
        let (name, key) = &builders()[1];
        verify
            .arg("rebuild")
            .arg(release)
            .arg("--builder-key")
            .arg(key)
            .args(["--builder", name, "--test-shortcuts"])
            .arg("--out")
            .arg(&vouch)
            .env("TIMB_BUILDER_PASSWORD", BUILDER_PASSWORD);
        with_home(&mut verify, &work.join("rebuilder-home"));
    } else {
        let (name, key) = &builders()[1];
        let out = xtask()
            .arg("rebuild")
            .arg(release)
            .arg("--builder-key")
            .arg(key)
            .args(["--builder", name, "--test-shortcuts"])
            .env("TIMB_BUILDER_PASSWORD", BUILDER_PASSWORD)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("not a clean one"),
            "{err}"
        );
        let src = work.join("other place/timb-src");
        copy_source(&src);
        verify.arg("verify");
        for (archive, _) in archives {
            verify.arg(archive);
        }
        verify.arg("--source").arg(&src);
    }
    if full {
        let _ = std::fs::remove_dir_all(&second_target);
    } else {
        verify.arg("--reuse-deps-from").arg(target_dir());
    }
    let out = run_ok(
        verify
            .arg("--target-dir")
            .arg(&second_target)
            .arg("--work")
            .arg(&vwork)
            // verify itself changes TZ, locale and umask; this moves the clock.
            .env("TIMB_SANDBOX_FAKETIME", "+400d")
            .env("SOURCE_DATE_EPOCH", &sde),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The sandbox's clock really was 400 days ahead.
    // (The rebuild started before now: it may have been a day earlier at midnight.)
    let day = |offset: &str| {
        let o = run_ok(Command::new("date").args(["-u", "-d", offset, "+%Y-%m-%d"]));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let ahead = [day("+400 days"), day("+399 days")];
    let seen: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("sandbox clock (libfaketime): "))
        .collect();
    assert!(
        !seen.is_empty() && seen.iter().all(|d| ahead.iter().any(|a| a == d)),
        "the rebuild's sandbox clock was {seen:?}, expected {ahead:?}"
    );
    // The commit rebuilt is this checkout's: its xtask is the one compiled for the tests
    // (a --test-shortcuts rule; a builder's rebuild compiles the release's own).
    assert_eq!(
        stderr.contains("rebuilding with this xtask"),
        clean,
        "the rebuild's xtask:\n{stderr}"
    );
    // And what it built is the release commit's tree, extracted into its work folder.
    if clean {
        let from = format!("from {} (target dir", vwork.join("src").display());
        assert!(stderr.contains(&from), "not built from {from}:\n{stderr}");
    }
    // Whatever was shared, our own code and the C libraries were compiled again.
    for krate in ["timb-core", "libotr-sys", "timb"] {
        assert!(
            stderr.contains(&format!("Compiling {krate} v")),
            "the rebuild did not compile {krate}:\n{stderr}"
        );
    }
    assert_eq!(
        stdout.lines().filter(|l| *l == "MATCH").count(),
        archives.len(),
        "verify did not print MATCH for each archive:\n{stdout}"
    );
    for (archive, bin) in archives {
        let name = archive.file_name().unwrap().to_str().unwrap();
        let rebuilt = vwork.join("out").join(name);
        // What verify compared: the published archive (its signatures stripped, for Windows).
        let published = match vwork.join(format!("stripped-{name}")) {
            p if p.is_file() => p,
            _ => archive.to_path_buf(),
        };
        assert_eq!(sha256(&published), sha256(&rebuilt), "{name}");
        let (x, y) = (work.join("x").join(name), work.join("y").join(name));
        extract(&published, &x);
        extract(&rebuilt, &y);
        assert_eq!(
            sha256(&x.join(bin)),
            sha256(&y.join(bin)),
            "the binaries differ: {bin}"
        );
    }

    // Each build made its own build container from containers/: the two
    // root file systems must be the same bytes too.
    let rootfs_sums = |target: &Path| -> Vec<String> {
        let mut sums: Vec<String> = std::fs::read_dir(target.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        std::fs::read_to_string(e.path().join("rootfs.tar.sha256")).ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        sums.sort();
        sums
    };
    let (first, second) = (rootfs_sums(&target_dir()), rootfs_sums(&second_target));
    assert!(!second.is_empty(), "the rebuild made no build container");
    assert!(
        first.iter().any(|s| second.contains(s)),
        "the build containers differ: {first:?} vs {second:?}"
    );
    // Last, as it reuses the rebuild's work folder.
    if clean {
        the_builders_quorum_publishes_the_release(release, &vouch, &work, &vwork);
    }
}

/// The key id of a minisign public key file's text (the end of its first line), as a release
/// engineer copies it into the policy: stock minisign 0.11 writes it without leading zeros.
fn minisign_key_id(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .expect("a minisign public key file")
        .to_string()
}

/// #15's quorum over the real release, once `rebuilder` has vouched for it (in `vouch`)
/// beside the release machine (bundle(), in `release`): with three builders listed and
/// k = 2, `release add` publishes it; with one builder's signature, or one builder's
/// twice under two names, it refuses, saying why. Stock minisign checks a builder's
/// signature with that builder's public key; `verify` names who vouched. Then a release
/// whose Linux archive has one byte changed (and is signed again by the release key) is
/// rebuilt by `carol`: MISMATCH, a diffoscope report, and nothing signed.
fn the_builders_quorum_publishes_the_release(
    release: &Path,
    vouch: &Path,
    work: &Path,
    vwork: &Path,
) {
    let builders = builders();
    let public = |i: usize| builders[i].1.with_extension("pub");
    for file in ["sha256sums.txt", "sha256sums-unsigned-build.txt"] {
        let out = run_ok(
            Command::new("minisign")
                .arg("-V")
                .arg("-p")
                .arg(public(1))
                .arg("-m")
                .arg(release.join(file))
                .arg("-x")
                .arg(vouch.join(format!("{file}.builder-rebuilder.minisig"))),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("timb-builder builder:rebuilder")
                && text.contains(&format!("file:{file}")),
            "{text}"
        );
    }
    // What the bundles being updated would ship: the three builders, threshold 2.
    let signing = work.join("signing");
    std::fs::create_dir_all(signing.join("keys")).unwrap();
    let mut ids = Vec::new();
    for (i, (name, _)) in builders.iter().enumerate() {
        let text = std::fs::read_to_string(public(i)).unwrap();
        ids.push(format!("\"{}\"", minisign_key_id(&text)));
        std::fs::write(signing.join(format!("keys/{name}.pub")), text).unwrap();
    }
    std::fs::write(
        signing.join("policy.toml"),
        format!(
            "[bundle]\nkeys = []\n\n[update-metadata]\nkeys = []\nthreshold = 2\n\n[builders]\nkeys = [{}]\nthreshold = 2\n",
            ids.join(", ")
        ),
    )
    .unwrap();
    let keys = work.join("tuf-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let repo = work.join("repo");
    let role_keys = tuf_repository(&keys, &repo);
    // A copy of the release folder with these builders' signatures (from, as name).
    let folder = |name: &str, sigs: &[(&Path, &str)]| -> PathBuf {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(release).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_str().unwrap();
            if p.is_file() && !n.contains(".builder-") {
                std::fs::copy(&p, dir.join(n)).unwrap();
            }
        }
        for (from, as_name) in sigs {
            std::fs::copy(
                from,
                dir.join(format!("sha256sums.txt.builder-{as_name}.minisig")),
            )
            .unwrap();
        }
        dir
    };
    let add = |dir: &Path| -> Output {
        let mut c = xtask();
        c.arg("release")
            .args(["add", "--repo"])
            .arg(&repo)
            .arg("--signing")
            .arg(&signing)
            .args(&role_keys)
            .env("TIMB_RELEASE_KEY_PASSWORD", "update test");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_str().unwrap().to_string();
            if n.starts_with("timb-") && !n.ends_with(".minisig") {
                c.arg(&p);
            }
        }
        c.output().unwrap()
    };
    let machine = release.join("sha256sums.txt.builder-release-machine.minisig");
    let rebuilder = vouch.join("sha256sums.txt.builder-rebuilder.minisig");
    for (name, sigs, why) in [
        (
            "one-builder",
            vec![(rebuilder.as_path(), "rebuilder")],
            "vouched for by 1 distinct builder(s); signing/policy.toml's [builders] needs 2",
        ),
        (
            "one-builder-twice",
            vec![
                (rebuilder.as_path(), "rebuilder"),
                (rebuilder.as_path(), "mallory"),
            ],
            "same key, counted once",
        ),
    ] {
        let out = add(&folder(name, &sigs));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{name}: {err}");
    }
    let quorum = folder(
        "quorum",
        &[
            (machine.as_path(), "release-machine"),
            (rebuilder.as_path(), "rebuilder"),
        ],
    );
    let out = add(&quorum);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("vouched for by ")
            && err.contains("release-machine (key")
            && err.contains("rebuilder (key"),
        "{err}"
    );
    let linux = std::fs::read_dir(&quorum)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-linux-x86_64.tar.xz"))
        .unwrap();
    let name = linux.file_name().unwrap().to_str().unwrap();
    for suffix in ["builders", "sha256sums"] {
        assert!(
            repo.join(format!("targets/{name}.{suffix}")).is_file(),
            "{suffix}"
        );
    }
    // verify names who vouched, by the same policy.
    let out = run_ok(
        xtask()
            .arg("verify")
            .arg(&linux)
            .arg("--no-rebuild")
            .arg("--signing")
            .arg(&signing),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "builders: release-machine (key",
        "builders: rebuilder (key",
        "builders: 2 distinct, signing/policy.toml's [builders] needs 2: met",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    a_mismatching_rebuild_signs_nothing(&quorum, &linux, work, vwork);
}

/// `carol` rebuilds a release whose Linux archive is not what its source builds: one byte
/// changed in a file under `app/VERSION/`, the archive, the sums files and their
/// signatures made again with the release's (development) key, as a compromised release
/// machine would. Her rebuild takes the first build's output cache (TIMB_OUT_DIR): the
/// honest build of the same source, without compiling it a third time; and the rebuild's
/// work folder `vwork`, whose source (the same commit, the same mtimes) and xtask build are
/// fresh. MISMATCH: a diffoscope report naming the file, and no signature.
fn a_mismatching_rebuild_signs_nothing(quorum: &Path, linux: &Path, work: &Path, vwork: &Path) {
    use timb_release::{builders::PUBLISHED_SUMS_FILE, Sums, TrustedComment, SUMS_FILE};
    let dir = work.join("compromised");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(quorum).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && !p.to_string_lossy().contains(".builder-") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let name = linux.file_name().unwrap().to_str().unwrap();
    let top = name.strip_suffix(".tar.xz").unwrap();
    let unpacked = work.join("compromised-unpacked");
    extract(linux, &unpacked);
    let version = top.split('-').nth(1).unwrap();
    let changed = format!("{top}/app/{version}/LICENSES/fonts-noto.txt");
    let file = unpacked.join(&changed);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();
    let archive = dir.join(name);
    run_ok(
        Command::new("tar")
            .arg("-cJf")
            .arg(&archive)
            .arg("-C")
            .arg(&unpacked)
            .arg(top),
    );
    let sha = sha256(&archive);
    let signer = sign::dev_signer(&target_dir()).unwrap();
    let resign = |path: &Path| {
        let old = std::fs::read_to_string(sign::sig_path(path)).unwrap();
        let comment: TrustedComment = old
            .lines()
            .nth(2)
            .and_then(|l| l.strip_prefix("trusted comment: "))
            .unwrap()
            .parse()
            .unwrap();
        let again = TrustedComment::new(
            comment.file(),
            comment.version().clone(),
            comment.target(),
            sha256(path).parse().unwrap(),
            comment.commit().clone(),
            true,
        )
        .unwrap();
        signer.sign_file(path, &again).unwrap();
    };
    resign(&archive);
    for sums_file in [SUMS_FILE, PUBLISHED_SUMS_FILE] {
        let path = dir.join(sums_file);
        let old: Sums = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let mut new = Sums::new();
        for (n, s) in old.iter() {
            let s = if n == name { sha.parse().unwrap() } else { *s };
            new.add(n, s).unwrap();
        }
        std::fs::write(&path, new.to_string()).unwrap();
        resign(&path);
    }
    let (builder, key) = &builders()[2];
    let vouch = work.join("carol-vouch");
    let mut cmd = xtask();
    cmd.arg("rebuild")
        .arg(&dir)
        .arg("--builder-key")
        .arg(key)
        .args(["--builder", builder, "--test-shortcuts"])
        .arg("--out")
        .arg(&vouch)
        .arg("--target-dir")
        .arg(target_dir().join("repro-second-build"))
        .arg("--work")
        .arg(vwork)
        .env("TIMB_OUT_DIR", rbm_out())
        .env("TIMB_BUILDER_PASSWORD", BUILDER_PASSWORD)
        .env("TZ", "America/St_Johns")
        .env("SOURCE_DATE_EPOCH", source_date_epoch());
    with_home(&mut cmd, &work.join("carol-home"));
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !out.status.success() && stderr.contains("builder carol signed nothing"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("MISMATCH") && stdout.contains(&format!("differs: {changed}")),
        "{stdout}"
    );
    assert!(!vouch.exists(), "carol signed something");
    let report = vwork.join(format!("diffoscope-{name}.txt"));
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        text.contains("fonts-noto.txt"),
        "{}: {text}",
        report.display()
    );
}

/// The committed lock is what `cargo xtask container lock` makes of the definition and the
/// mirror today: resolving again on an unchanged mirror gives the same bytes. (When Debian
/// publishes an update to a locked package, this fails, and so does every build, until the
/// lock is renewed on purpose; the builds' error says so.)
#[test]
fn the_container_lock_is_what_the_mirror_resolves_to() {
    let dir = scratch("lock");
    let out = dir.join("again.lock");
    run_ok(xtask().args(["container", "lock", "--out"]).arg(&out));
    let committed =
        std::fs::read_to_string(repo_root().join("containers/bookworm-build.lock")).unwrap();
    let again = std::fs::read_to_string(&out).unwrap();
    assert!(
        again == committed,
        "the lock resolved today differs from the committed one:\n{}",
        diff_lines(&committed, &again)
    );
}

/// Every path under `dir` with its bytes (folders as `None`).
fn home_tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), None);
                stack.push(p);
            } else {
                out.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn diff_lines(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let gone = a
        .iter()
        .filter(|l| !b.contains(l))
        .map(|l| format!("- {l}"));
    let new = b
        .iter()
        .filter(|l| !a.contains(l))
        .map(|l| format!("+ {l}"));
    gone.chain(new).collect::<Vec<_>>().join("\n")
}

#[test]
fn stock_minisign_verifies_our_signatures() {
    let b = bundle();
    for f in [
        b.archive.clone(),
        b.dir.join("sha256sums-unsigned-build.txt"),
    ]
    .into_iter()
    .chain(b.windows.clone())
    {
        let out = run_ok(
            Command::new("minisign")
                .arg("-Vm")
                .arg(&f)
                .arg("-p")
                .arg(dev_pub()),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            text.contains(&format!("file:{name} version:{}", b.version)),
            "trusted comment:\n{text}"
        );
    }
}

fn verify_fails(archive: &Path, extra: &[&str], expect: &str) {
    let out = xtask()
        .arg("verify")
        .arg(archive)
        .arg("--no-rebuild")
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "verify accepted {archive:?}:\n{err}");
    assert!(err.contains(expect), "expected {expect:?} in:\n{err}");
}

fn copy_with_sig(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let mut s = from.as_os_str().to_owned();
    s.push(".minisig");
    let mut d = to.as_os_str().to_owned();
    d.push(".minisig");
    std::fs::copy(PathBuf::from(s), PathBuf::from(d)).unwrap();
}

#[test]
fn verify_accepts_the_good_bundle_and_rejects_tampering() {
    let b = bundle();
    let name = b.archive.file_name().unwrap().to_str().unwrap().to_string();
    run_ok(xtask().arg("verify").arg(&b.archive).arg("--no-rebuild"));

    // One flipped byte.
    let d = scratch("flipped");
    let flipped = d.join(&name);
    copy_with_sig(&b.archive, &flipped);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    verify_fails(&flipped, &[], "BAD SIGNATURE");

    // A signature by another key, made with the stock minisign CLI.
    let d = scratch("otherkey");
    let other = d.join(&name);
    std::fs::copy(&b.archive, &other).unwrap();
    run_ok(
        Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(d.join("o.pub"))
            .arg("-s")
            .arg(d.join("o.key")),
    );
    run_ok(
        Command::new("minisign")
            .args(["-S", "-s"])
            .arg(d.join("o.key"))
            .arg("-m")
            .arg(&other),
    );
    verify_fails(&other, &[], "not a trusted key");
    // ...and the right signature checked against only that other key.
    let p = d.join("o.pub");
    verify_fails(
        &b.archive,
        &["--pubkey", p.to_str().unwrap()],
        "not a trusted key",
    );

    // No signature at all.
    let d = scratch("nosig");
    let bare = d.join(&name);
    std::fs::copy(&b.archive, &bare).unwrap();
    verify_fails(&bare, &[], "no signature");

    // Renamed to pass for another version, signature renamed alongside.
    let d = scratch("renamed");
    let renamed = d.join("timb-99.0.0-linux-x86_64.tar.xz");
    copy_with_sig(&b.archive, &renamed);
    verify_fails(&renamed, &[], "renamed");
}

#[test]
fn the_bundle_runs_from_any_folder() {
    let b = bundle();
    let d = scratch("run").join("a folder with spaces");
    extract(&b.archive, &d);
    let top = d.join(format!("timb-{}-linux-x86_64", b.version));
    for f in [
        "timb",
        "README.txt",
        "LICENSE",
        "timb.desktop",
        "timb.svg",
        "BUILDINFO",
        "app/current",
        &format!("app/{}/timb", b.version),
        &format!("app/{}/LICENSES/THIRD-PARTY.txt", b.version),
        &format!("app/{}/LICENSES/fonts-noto.txt", b.version),
        &format!("app/{}/LICENSES/rust-std.html", b.version),
        &format!("app/{}/fonts/NotoSans-Regular.ttf", b.version),
        &format!("app/{}/fonts/NotoSansArabic-Bold.ttf", b.version),
        &format!("app/{}/signing/policy.toml", b.version),
        &format!("app/{}/lyrebird", b.version),
        &format!("app/{}/LICENSES/lyrebird.txt", b.version),
        &format!("app/{}/LICENSES/go.txt", b.version),
    ] {
        assert!(top.join(f).is_file(), "{f} missing from the bundle");
    }
    the_bundled_transport_offers_obfs4(&top.join("app").join(&b.version).join("lyrebird"));
    assert!(
        top.join("profile").is_dir(),
        "the portable profile folder is missing"
    );
    let out = run_ok(
        Command::new(top.join("timb"))
            .arg("--version")
            .current_dir("/"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("timb {}", b.version)
    );

    // The menu entry, only when asked: --register-app writes one file in the user's
    // applications folder, --unregister-app removes it, and the home folder is as before.
    let home = scratch("home");
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::write(home.join(".config/keep"), "the user's").unwrap();
    let before = home_tree(&home);
    let with_home = |arg: &str| {
        let mut c = Command::new(top.join("timb"));
        c.arg(arg)
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .current_dir("/");
        run_ok(&mut c)
    };
    with_home("--register-app");
    let apps = home.join(".local/share/applications");
    let entries: Vec<_> = std::fs::read_dir(&apps).unwrap().collect();
    assert_eq!(entries.len(), 1, "one menu entry");
    let entry = std::fs::read_to_string(entries[0].as_ref().unwrap().path()).unwrap();
    assert!(
        entry.contains(&format!("Exec=\"{}/timb\"", top.display())),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("Icon={}/timb.svg", top.display())),
        "{entry}"
    );
    with_home("--unregister-app");
    assert_eq!(
        home_tree(&home),
        before,
        "--unregister-app left the home folder changed"
    );
    assert!(
        !top.join("update/launch").exists(),
        "registering counted as a start"
    );

    // Direct library dependencies: glibc's, and fontconfig, which every
    // desktop with fonts has. Nothing else (no OpenSSL, no sqlite, no libotr).
    let messenger = top.join("app").join(&b.version).join("timb");
    let readelf = run_ok(Command::new("readelf").arg("-d").arg(&messenger));
    let allowed = [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libfontconfig.so.1",
    ];
    let mut needed = Vec::new();
    for line in String::from_utf8_lossy(&readelf.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
    {
        let lib = line
            .split('[')
            .nth(1)
            .and_then(|s| s.split(']').next())
            .unwrap_or("")
            .to_string();
        assert!(
            allowed.contains(&lib.as_str()),
            "the binary needs {lib}, which a user's machine may lack"
        );
        needed.push(lib);
    }
    assert!(
        needed.iter().any(|l| l == "libc.so.6"),
        "readelf found no NEEDED entries: {needed:?}"
    );

    // The window opens under a real X server and draws something.
    let shot = scratch("screenshot").join("timb-main.png");
    let mut app = Command::new(top.join("timb"));
    app.env_remove("WAYLAND_DISPLAY");
    let shown = show_window(&mut app, &shot, || {});
    assert!(shown.found, "no window titled 'timb' appeared");
    assert_start_recorded(&top, &b.version);
    // A blank (or all-black) screen has one colour; text and buttons have many.
    assert!(
        shown.colours > 16,
        "the screenshot looks blank ({} colours): {shot:?}",
        shown.colours
    );
    assert_about_opened(&shown, &shot);
    let keep = target_dir().join("bundle-screenshot.png");
    let _ = std::fs::create_dir_all(keep.parent().unwrap());
    let _ = std::fs::copy(&shot, keep);
}

/// The bundle's lyrebird (#16, built by rbm-projects/lyrebird.toml) is a static executable
/// that says its version and, started as Tor starts a managed transport (pt-spec: the
/// `TOR_PT_*` variables), offers obfs4 on a loopback SOCKS port and nothing else. That it
/// carries a connection through a bridge is the censored-network test's (app/timb-tor).
fn the_bundled_transport_offers_obfs4(lyrebird: &Path) {
    use std::io::BufRead;
    let out = run_ok(Command::new(lyrebird).arg("-version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "lyrebird 0.8.1"
    );
    // Static: no program interpreter, so no glibc to be too new for a user's system.
    let headers = run_ok(Command::new("readelf").arg("-lW").arg(lyrebird));
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(
        headers.contains("LOAD") && !headers.contains("INTERP"),
        "{headers}"
    );
    let state = scratch("lyrebird-state");
    std::fs::create_dir_all(&state).unwrap();
    // `timeout`: a lyrebird that never says CMETHODS DONE ends, and the test with it.
    let mut pt = Command::new("timeout")
        .arg("30")
        .arg(lyrebird)
        .env("TOR_PT_MANAGED_TRANSPORT_VER", "1")
        .env("TOR_PT_CLIENT_TRANSPORTS", "obfs4,snowflake,meek_lite")
        .env("TOR_PT_STATE_LOCATION", &state)
        .env("TOR_PT_EXIT_ON_STDIN_CLOSE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = std::io::BufReader::new(pt.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take_while(|l| l != "CMETHODS DONE")
        .collect();
    drop(pt.stdin.take());
    let _ = pt.kill();
    let _ = pt.wait();
    let offered: Vec<&String> = lines.iter().filter(|l| l.starts_with("CMETHOD ")).collect();
    assert_eq!(offered.len(), 1, "{lines:?}");
    assert!(
        offered[0].starts_with("CMETHOD obfs4 socks5 127.0.0.1:"),
        "{lines:?}"
    );
    for other in ["snowflake", "meek_lite"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("CMETHOD-ERROR {other} "))),
            "{other} not refused: {lines:?}"
        );
    }
}

/// The messenger told the launcher of the bundle at `top` that its window appeared (no
/// fallback will be counted).
fn assert_start_recorded(top: &Path, version: &str) {
    assert_eq!(
        std::fs::read_to_string(top.join("update/started"))
            .unwrap_or_default()
            .trim(),
        version,
        "the window appeared but the bundle did not record the start"
    );
}

/// What [`show_window`] saw.
struct Shown {
    /// A window titled `timb` appeared.
    found: bool,
    /// Colours in the first screenshot (0 if none was taken).
    colours: u32,
    /// After a click on About: whether the app was still running (a panic ends it)…
    alive_after_about: bool,
    /// …and how many pixels of the second screenshot differ from the first (the dialog).
    about_pixels: u64,
}

/// A fresh Xvfb of the test's own, large enough for the 960x640 window; stopped when
/// dropped.
struct Screen {
    display: String,
    xvfb: std::process::Child,
}

impl Screen {
    /// A free display, which Xvfb picks and prints (`-displayfd 1`) once it accepts
    /// clients: window tests can run side by side.
    fn start() -> Screen {
        use std::io::BufRead;
        let mut xvfb = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24"])
            .args(["-nolisten", "tcp", "-noreset"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = xvfb.stdout.take().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        let number: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb printed no display number: {line:?}"));
        Screen {
            display: format!(":{number}"),
            xvfb,
        }
    }

    fn xdotool(&self, args: &[&str]) -> Output {
        Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap()
    }

    /// The first window titled `timb` to appear within 30 s.
    fn find_timb(&self) -> Option<String> {
        for _ in 0..60 {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let s = self.xdotool(&["search", "--name", "^timb$"]);
            if s.status.success() {
                if let Some(w) = String::from_utf8_lossy(&s.stdout).lines().next() {
                    return Some(w.to_string());
                }
            }
        }
        None
    }

    /// The window's width (the layout is anchored left and right).
    fn width(&self, window: &str) -> i64 {
        let g = self.xdotool(&["getwindowgeometry", window]);
        String::from_utf8_lossy(&g.stdout)
            .split("Geometry: ")
            .nth(1)
            .and_then(|g| g.split('x').next())
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(960)
    }

    /// A left click at (x, y) inside `window`.
    fn click(&self, window: &str, x: i64, y: i64) {
        self.xdotool(&[
            "mousemove",
            "--window",
            window,
            &x.to_string(),
            &y.to_string(),
        ]);
        self.xdotool(&["click", "1"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    /// Replaces the focused field's text with `text` and presses Return, on the keyboard.
    fn enter(&self, text: &str) {
        self.xdotool(&["key", "--clearmodifiers", "ctrl+a", "BackSpace"]);
        self.xdotool(&["type", "--delay", "30", text]);
        self.xdotool(&["key", "--clearmodifiers", "Return"]);
    }

    /// A screenshot of the whole screen into `to`.
    fn shot(&self, to: &Path) -> bool {
        Command::new("import")
            .args(["-window", "root"])
            .arg(to)
            .env("DISPLAY", &self.display)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// Starts `app` on a fresh [`Screen`], waits for its window, then takes a screenshot into
/// `shot`, clicks the About button (top right of the header: main.slint) and takes `shot`
/// with `-about` added; `stop` runs after the app is killed (wine's server).
fn show_window(app: &mut Command, shot: &Path, stop: impl FnOnce()) -> Shown {
    let screen = Screen::start();
    let mut app = app.env("DISPLAY", &screen.display).spawn().unwrap();
    let window = screen.find_timb();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let captured = screen.shot(shot);
    let colours = Command::new("identify")
        .args(["-format", "%k"])
        .arg(shot)
        .output();
    let about_shot = shot.with_file_name(format!(
        "{}-about.png",
        shot.file_stem().unwrap().to_str().unwrap()
    ));
    let (mut alive_after_about, mut about_pixels) = (false, 0);
    if let Some(w) = &window {
        screen.click(w, screen.width(w) - 46, 22);
        std::thread::sleep(std::time::Duration::from_secs(3));
        alive_after_about = app.try_wait().is_ok_and(|s| s.is_none());
        if captured && screen.shot(&about_shot) {
            // `compare` prints the count on stderr and exits 1 when the images differ.
            let o = Command::new("compare")
                .args(["-metric", "AE"])
                .arg(shot)
                .arg(&about_shot)
                .arg("null:")
                .output()
                .unwrap();
            about_pixels = String::from_utf8_lossy(&o.stderr)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
        }
    }
    let _ = app.kill();
    let _ = app.wait();
    stop();
    let colours = match colours {
        Ok(o) if captured => String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        _ => 0,
    };
    Shown {
        found: window.is_some(),
        colours,
        alive_after_about,
        about_pixels,
    }
}

/// The About box opened without ending the app: it was running 3 s after the click, and
/// the window changed where the dialog appears.
fn assert_about_opened(shown: &Shown, shot: &Path) {
    assert!(
        shown.alive_after_about,
        "the app ended after About was clicked (a panic?): {shot:?}"
    );
    assert!(
        shown.about_pixels > 5000,
        "clicking About changed {} pixels: no dialog? {shot:?}",
        shown.about_pixels
    );
}

#[test]
fn the_bundle_is_accessible_over_at_spi() {
    // A screen reader's view of the real binary (#18): under Xvfb with a session
    // bus and the AT-SPI registry, every control has a name and a role, and Tab
    // follows the reading order, mirrored in Arabic. The script starts and ends
    // its own Xvfb, buses and timb; it says what it checks.
    let shots = target_dir().join("a11y-screenshots");
    let (ok, report) = check_a11y("a11y", &[], &shots);
    assert!(ok, "the accessibility check failed:\n{report}");
}

/// Runs tests/bundle/a11y/check_a11y.py on a fresh extraction of the bundle, with
/// `args` and its screenshots into `shots`; whether it passed, and what it printed.
fn check_a11y(name: &str, args: &[&std::ffi::OsStr], shots: &Path) -> (bool, String) {
    let b = bundle();
    let d = scratch(name);
    extract(&b.archive, &d);
    let top = d.join(format!("timb-{}-linux-x86_64", b.version));
    let out = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/bundle/a11y/check_a11y.py"))
        .arg(&top)
        .args(args)
        .arg("--screenshots")
        .arg(shots)
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    (out.status.success(), report)
}

/// Waits (an hour at most) for a file `cargo xtask test` writes when something the bundle
/// tests need, built beside them, is done.
fn wait_for_marker(marker: &Path, never: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60 * 60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{never} ({} not written)",
            marker.display()
        );
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
}

/// The example that starts the private Tor network and the servers the real window is
/// driven against. Under `cargo xtask test` it comes from the debug test build, which
/// this waits for (TIMB_TEST_BUILD_DONE).
fn real_window_world() -> PathBuf {
    let world = std::env::var_os("TIMB_REAL_WINDOW_WORLD")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/examples/real_window_world"));
    if let Some(marker) = std::env::var_os("TIMB_TEST_BUILD_DONE") {
        wait_for_marker(Path::new(&marker), "the test build never finished");
    }
    assert!(
        world.is_file(),
        "{} is missing: build it with `cargo build -p timb --example real_window_world`",
        world.display()
    );
    world
}

/// `"name": "value"` from the one-line JSON the world prints (its own format: flat,
/// string values without escapes).
fn json_field(line: &str, name: &str) -> String {
    let value = after_key(line, &format!("\"{name}\": \""));
    value.split('"').next().unwrap().to_string()
}

/// What follows `key` in the world's JSON line.
fn after_key<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    &line[at + key.len()..]
}

/// A copy of this source tree as release `version`, whose release key is `bundle_pub` (a
/// minisign public key file): a release engineer's tree once the key is added
/// (signing/README.md), with the workspace version bumped as a release does.
fn release_tree(to: &Path, version: &str, bundle_pub: &Path) {
    copy_source(to);
    let text = std::fs::read_to_string(bundle_pub).unwrap();
    let id = minisign_key_id(&text);
    std::fs::write(to.join("signing/keys/update-test.pub"), &text).unwrap();
    let policy = to.join("signing/policy.toml");
    let p = std::fs::read_to_string(&policy).unwrap();
    let listed = format!("[bundle]\nkeys = [\"{id}\"]");
    let p = p.replacen(
        "[bundle]\n# Any one of these keys may sign a bundle and its sums file.\nkeys = []",
        &listed,
        1,
    );
    assert!(
        p.contains(&listed),
        "signing/policy.toml changed shape: update this test"
    );
    // Its builders: the release machine alone (k = 1). The quorum of two and its refusals
    // are the_builders_quorum_publishes_the_release's (`release add`) and the update
    // client's tests (the updater); here the real bundle's updater checks a builder's word
    // end to end.
    let (machine, machine_key) = &builders()[0];
    let machine_pub = std::fs::read_to_string(machine_key.with_extension("pub")).unwrap();
    std::fs::write(to.join(format!("signing/keys/{machine}.pub")), &machine_pub).unwrap();
    let at = p
        .find("[builders]")
        .expect("signing/policy.toml has no [builders]");
    let vouched = format!(
        "keys = [\"{}\"]\nthreshold = 1",
        minisign_key_id(&machine_pub)
    );
    let p = format!(
        "{}{}",
        &p[..at],
        p[at..].replacen("keys = []\nthreshold = 2", &vouched, 1)
    );
    assert!(
        p.contains(&vouched),
        "signing/policy.toml's [builders] changed shape: update this test"
    );
    std::fs::write(&policy, p).unwrap();
    let manifest = to.join("Cargo.toml");
    let m = std::fs::read_to_string(&manifest).unwrap();
    let current = bundle().version.clone();
    let from = format!("[workspace.package]\nversion = \"{current}\"");
    assert!(
        m.contains(&from),
        "Cargo.toml changed shape: update this test"
    );
    let to_version = format!("[workspace.package]\nversion = \"{version}\"");
    let mut m = m.replacen(&from, &to_version, 1);
    if version != current {
        // The next version is compiled (every crate of ours: they share the version), and
        // only this test runs it, to see the update happen and the new window start: our
        // crates unoptimised (as the debug builds the suite drives are) and in 16 codegen
        // units each, not 1, so the compile of its largest (timb, with the window's
        // generated code) is short and runs on both cores. The third-party crates it reuses
        // are built as the release builds them.
        for krate in std::fs::read_dir(to.join("app")).unwrap() {
            let name = krate.unwrap().file_name().into_string().unwrap();
            if to.join("app").join(&name).join("Cargo.toml").is_file() {
                m += &format!(
                    "\n[profile.release.package.{name}]\nopt-level = 0\ncodegen-units = 16\n"
                );
            }
        }
    }
    std::fs::write(&manifest, m).unwrap();
    // The lock names the workspace's own packages (those without a `source`) with it.
    let lock = to.join("Cargo.lock");
    let l = std::fs::read_to_string(&lock).unwrap();
    let blocks: Vec<String> = l
        .split("\n[[package]]\n")
        .map(|b| {
            if b.contains("\nsource = ") || !b.starts_with("name = ") {
                b.to_string()
            } else {
                b.replacen(
                    &format!("\nversion = \"{current}\"\n"),
                    &format!("\nversion = \"{version}\"\n"),
                    1,
                )
            }
        })
        .collect();
    std::fs::write(&lock, blocks.join("\n[[package]]\n")).unwrap();
    commit_tree(to);
}

/// Commits everything in `tree` (a repository of its own, made the first time): a builder
/// vouches for a clean commit only.
fn commit_tree(tree: &Path) {
    for args in [
        &["init", "-q"][..],
        &["add", "-A"][..],
        &["commit", "-q", "--allow-empty", "-m", "release tree"][..],
    ] {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(tree)
                .args(args)
                .env("GIT_AUTHOR_NAME", "timb tests")
                .env("GIT_AUTHOR_EMAIL", "tests@timb.invalid")
                .env("GIT_COMMITTER_NAME", "timb tests")
                .env("GIT_COMMITTER_EMAIL", "tests@timb.invalid"),
        );
    }
}

/// A `key = "value"` of a Linux bundle's BUILDINFO, read from the archive.
fn buildinfo_field(archive: &Path, key: &str) -> String {
    let name = archive.file_name().unwrap().to_str().unwrap();
    let top = name.strip_suffix(".tar.xz").unwrap();
    let out = run_ok(
        Command::new("tar")
            .arg("-xJOf")
            .arg(archive)
            .arg(format!("{top}/BUILDINFO")),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {key} in {name}'s BUILDINFO:\n{text}"))
        .to_string()
}

/// The password of the update test's bundle key.
const BUNDLE_KEY_PASSWORD: &str = "update test bundle key";

/// Where `cargo xtask bundle` keeps its outputs (`out/PROJECT/BUILD-ID/`) for this tree.
fn rbm_out() -> PathBuf {
    std::env::var_os("TIMB_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("out"))
}

/// An output cache (`TIMB_OUT_DIR`) under `work` holding the messenger binary bundle() built
/// for Linux (`out/timb/ID`, the id its BUILDINFO names) and its lyrebird: a tree that
/// differs only in its keys and channel has the same build ids, so its bundle takes those
/// instead of building them again. Everything else the update test builds stays under `work`.
fn seeded_rbm_out(work: &Path, b: &Bundle) -> PathBuf {
    let out = work.join("rbm-out");
    // And the transport, built from pinned inputs that no key or channel changes.
    for project in ["timb", "lyrebird"] {
        let id = buildinfo_field(&b.archive, &format!("{project}_build_id"));
        let from = rbm_out().join(project).join(&id);
        assert!(from.is_dir(), "bundle() left no {}", from.display());
        pipeline::util::copy_tree(&from, &out.join(project).join(&id)).unwrap();
    }
    out
}

/// `cargo xtask bundle` of another source tree, signed with `key`, with the output cache
/// `rbm_out` ([`seeded_rbm_out`]). Its release build shares the rebuild's target directory:
/// the third-party crates compiled there are reused, and every crate of ours is compiled
/// again for this tree.
fn bundle_of(tree: &Path, key: &Path, rbm_out: &Path, out: &Path, as_builder: bool) -> PathBuf {
    let _only_user = second_build();
    let sde = source_date_epoch();
    let sources = std::env::var_os("TIMB_SOURCES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("out/sources"));
    let mut cmd = xtask();
    cmd.arg("bundle");
    if as_builder {
        let (name, key) = &builders()[0];
        cmd.arg("--builder-key")
            .arg(key)
            .args(["--builder", name])
            .env("TIMB_BUILDER_PASSWORD", BUILDER_PASSWORD);
    }
    let built = run_ok(
        cmd.args(["--target", "linux-x86_64"])
            .arg("--source")
            .arg(tree)
            .arg("--key")
            .arg(key)
            .arg("--out")
            .arg(out)
            .env("CARGO_TARGET_DIR", target_dir().join("repro-second-build"))
            .env("TIMB_SOURCES_DIR", sources)
            .env("TIMB_OUT_DIR", rbm_out)
            .env("TIMB_SIGNING_PASSWORD", BUNDLE_KEY_PASSWORD)
            .env("SOURCE_DATE_EPOCH", &sde),
    );
    PathBuf::from(String::from_utf8(built.stdout).unwrap().trim())
}

/// `cargo xtask release ARGS` with the test's role-key password.
fn release(args: &[&std::ffi::OsStr]) -> Output {
    let mut c = xtask();
    c.arg("release")
        .args(args)
        .env("TIMB_RELEASE_KEY_PASSWORD", "update test");
    run_ok(&mut c)
}

/// A TUF repository at `repo` (`release init`), its four roles one key each in `keys` (a
/// low scrypt cost: a test's keys); the `--key FILE` arguments that sign with them.
fn tuf_repository(keys: &Path, repo: &Path) -> Vec<std::ffi::OsString> {
    let mut roles = String::new();
    let mut role_keys: Vec<std::ffi::OsString> = Vec::new();
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let k = keys.join(format!("{role}.key"));
        release(&[
            "keygen".as_ref(),
            "--out".as_ref(),
            k.as_os_str(),
            "--kdf-log-n".as_ref(),
            "10".as_ref(),
        ]);
        roles += &format!("[{role}]\nthreshold = 1\nkeys = [\"{role}.key.pub.json\"]\n\n");
        role_keys.extend(["--key".into(), k.into_os_string()]);
    }
    let roles_file = keys.join("roles.toml");
    std::fs::write(&roles_file, roles).unwrap();
    let mut init: Vec<&std::ffi::OsStr> = vec![
        "init".as_ref(),
        "--repo".as_ref(),
        repo.as_os_str(),
        "--roles".as_ref(),
        roles_file.as_os_str(),
    ];
    init.extend(role_keys.iter().map(|k| k.as_os_str()));
    release(&init);
    role_keys
}

#[test]
fn the_real_bundle_updates_itself_to_the_next_real_bundle_over_tor() {
    // #12 end to end with two real bundles: `cargo xtask bundle` builds 0.1.0 and 0.2.0
    // from two copies of this tree (a release key of the test's own in both, added as
    // signing/README.md says), `cargo xtask release` publishes 0.2.0 in a TUF
    // repository served on the private Tor network's "app-update" onion service, and the
    // 0.1.0 bundle's real window is driven as a person would: a remembered account,
    // connected once over Tor so that its OTR key is made and kept in the profile, About, "Check for updates now" (Tor starts, the metadata is refreshed, the bundle
    // downloaded, checked and installed), "Restart to update". Then the window of 0.2.0
    // must say it was updated from 0.1.0 and show the account, and the profile's files
    // must be the same bytes (check_a11y.py --update).
    let b = bundle();
    let work = scratch("update");
    let keys = work.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (bundle_key, bundle_pub) = (keys.join("bundle.key"), keys.join("bundle.pub"));
    // Encrypted, as release keys are.
    minisign_keypair(&bundle_key, &bundle_pub, BUNDLE_KEY_PASSWORD);
    let repo = work.join("repo");
    let role_keys = tuf_repository(&keys, &repo);
    let signed = |args: &[&std::ffi::OsStr]| {
        let all: Vec<&std::ffi::OsStr> = args
            .iter()
            .copied()
            .chain(role_keys.iter().map(|k| k.as_os_str()))
            .collect();
        release(&all)
    };

    // 0.2.0 compiled now: the binary does not depend on the update channel, which needs
    // the onion address of a network not started yet. Nor on the bundle keys (data in
    // app/VERSION/signing/), so 0.1.0's is the binary bundle() built (asserted when it is
    // packaged below): only 0.2.0 is compiled.
    let next = "0.2.0";
    assert_ne!(
        b.version, next,
        "the tree is already at {next}: update this test"
    );
    let (old_tree, new_tree) = (work.join("src-old"), work.join("src-new"));
    release_tree(&old_tree, &b.version, &bundle_pub);
    release_tree(&new_tree, next, &bundle_pub);
    let cache = seeded_rbm_out(&work, b);
    bundle_of(
        &new_tree,
        &bundle_key,
        &cache,
        &work.join("prebuilt-new"),
        false,
    );

    // The network, and the repository on its onion mirror.
    let world_log = work.join("world.log");
    let mut world = Command::new(real_window_world())
        .arg("--serve-updates")
        .arg(&repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&world_log).unwrap())
        .spawn()
        .unwrap();
    let line = {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(world.stdout.take().unwrap()).lines();
        lines
            .find_map(|l| l.ok().filter(|l| l.starts_with('{')))
            .unwrap_or_else(|| panic!("the world did not start: see {}", world_log.display()))
    };
    let mirror = json_field(&line, "update_mirror");

    // The channel both bundles ship, then each packaged again (the binary is reused).
    for tree in [&old_tree, &new_tree] {
        let out = tree.join("release/stable");
        release(&[
            "channel".as_ref(),
            "--repo".as_ref(),
            repo.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--mirror".as_ref(),
            mirror.as_ref(),
        ]);
        commit_tree(tree);
    }
    let old = bundle_of(&old_tree, &bundle_key, &cache, &work.join("old"), false);
    assert_eq!(
        buildinfo_field(&old, "timb_build_id"),
        buildinfo_field(&b.archive, "timb_build_id"),
        "0.1.0 with the test's keys was compiled again: the binary depends on the keys"
    );
    // The release machine vouches for 0.2.0 as its builder (k = 1 in these trees' policy).
    let new = bundle_of(&new_tree, &bundle_key, &cache, &work.join("new"), true);
    let new_name = format!("timb-{next}-linux-x86_64.tar.xz");
    assert_eq!(new.file_name().unwrap().to_str().unwrap(), new_name);
    // Stock minisign accepts it with the release key, as a user checks a download.
    run_ok(
        Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&bundle_pub)
            .arg("-m")
            .arg(&new),
    );
    // Checked by the builders' policy the 0.1.0 bundle ships, as its updater will.
    let old_signing = old_tree.join("signing");
    signed(&[
        "add".as_ref(),
        "--repo".as_ref(),
        repo.as_os_str(),
        "--channel".as_ref(),
        "stable".as_ref(),
        "--signing".as_ref(),
        old_signing.as_os_str(),
        new.as_os_str(),
    ]);

    // The old bundle, unpacked where a user would, driven through the update.
    let home = work.join("user");
    extract(&old, &home);
    let top = home.join(format!("timb-{}-linux-x86_64", b.version));
    let info = work.join("update.json");
    // The world's own description (network, XMPP server, pin, user) and the versions.
    let info_text = format!(
        "{}, \"from\": \"{}\", \"to\": \"{next}\"}}",
        line.trim_end().trim_end_matches('}'),
        b.version
    );
    std::fs::write(&info, info_text).unwrap();
    let shots = target_dir().join("a11y-screenshots");
    let out = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/bundle/a11y/check_a11y.py"))
        .arg(&top)
        .arg("--update")
        .arg(&info)
        .arg("--screenshots")
        .arg(&shots)
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    drop(world.stdin.take());
    let _ = world.wait();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "the update through the real window failed:\n{report}"
    );
    // On disk too: 0.2.0 is current, 0.1.0 kept as the fallback.
    let current = std::fs::read_to_string(top.join("app/current")).unwrap();
    assert_eq!(current.trim(), next);
    assert!(top.join(format!("app/{}/timb", b.version)).is_file());
    assert!(top.join(format!("app/{next}/timb")).is_file());
}

#[test]
fn the_real_window_connects_over_tor_and_its_screens_are_captured() {
    // The released binary's window, driven as a user does (AT-SPI actions and the
    // keyboard, under Xvfb) over the private Tor network (#18): an XMPP account added
    // with a pinned key, connected, a room joined and read, a contact added and a
    // private conversation that turns "Private, unverified" (the banners read as text
    // by a screen reader), the bundle's own update check; then an IRC account and a
    // channel. Each screen is saved as a screenshot of the real binary. The released
    // binary confines itself (#17): its About box says so, read as text, and the XMPP
    // session runs through an obfs4 bridge with the bundle's lyrebird, under strace: any
    // connection but lyrebird's to the bridge and timb's to lyrebird, a UDP socket,
    // a file written outside the bundle and profile, a program started, or the chat's
    // words or the peer's address in a file left behind fails the test.
    // The servers come from an example of the debug test build: under `cargo xtask
    // test` this waits until that build is done (TIMB_TEST_BUILD_DONE).
    let world = real_window_world();
    let shots = target_dir().join("a11y-screenshots");
    let screens = [
        "xmpp-group-en",
        "xmpp-private-en",
        "about-update-en",
        "irc-group-en",
    ];
    for shot in screens {
        let _ = std::fs::remove_file(shots.join(format!("{shot}.png")));
    }
    let args = ["--connected".as_ref(), world.as_os_str()];
    let (ok, report) = check_a11y("connected", &args, &shots);
    assert!(ok, "driving the real window failed:\n{report}");
    for shot in screens {
        assert!(
            shots.join(format!("{shot}.png")).is_file(),
            "no screenshot {shot}.png"
        );
    }
}

#[test]
fn the_leak_check_finds_every_kind_of_leak_in_a_made_up_trace() {
    // The strace check of the connected session (check_trace) must be able to fail:
    // a made-up trace with one leak of each kind, and a clean one. Needs no bundle.
    let out = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/bundle/a11y/check_a11y.py"))
        .arg("--self-test-trace")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("all 7 kinds of leak are found"), "{text}");
}

/// The development Authenticode certificate `cargo xtask bundle` made beside its minisign key.
fn dev_codesign_cert() -> PathBuf {
    target_dir().join("timb-dev-key/timb-dev-codesign.crt")
}

/// `osslsigncode verify` of `exe` against the development certificate.
fn authenticode_verifies(exe: &Path) -> bool {
    Command::new("osslsigncode")
        .arg("verify")
        .arg("-CAfile")
        .arg(dev_codesign_cert())
        .arg("-in")
        .arg(exe)
        .output()
        .unwrap()
        .status
        .success()
}

/// Both Windows exes carry an Authenticode signature that osslsigncode accepts and a flipped
/// byte breaks; stripped, each is the unsigned exe the sums file lists.
#[test]
fn the_windows_exes_are_authenticode_signed_and_strip_to_the_unsigned_build() {
    let (b, windows) = windows_bundle();
    let d = scratch("authenticode");
    extract(windows, &d);
    let top = d.join(format!("timb-{}-windows-x86_64", b.version));
    let sums = std::fs::read_to_string(b.dir.join("sha256sums-unsigned-build.txt")).unwrap();
    let listed = |name: &str| {
        sums.lines()
            .find_map(|l| l.strip_suffix(&format!("  {name}")))
            .unwrap_or_else(|| panic!("{name} is not in the sums file:\n{sums}"))
            .to_string()
    };
    let exes = [
        (top.join("timb.exe"), "timb-launcher.exe"),
        (top.join(format!("app/{}/timb.exe", b.version)), "timb.exe"),
    ];
    for (exe, which) in exes {
        assert!(authenticode_verifies(&exe), "{exe:?} does not verify");
        let stripped = d.join(format!("stripped-{which}"));
        run_ok(
            Command::new("osslsigncode")
                .arg("remove-signature")
                .arg("-in")
                .arg(&exe)
                .arg("-out")
                .arg(&stripped),
        );
        assert_eq!(
            sha256(&stripped),
            listed(&format!("timb-{}-windows-x86_64-{which}", b.version)),
            "{which} stripped is not the unsigned build"
        );
        assert!(
            !authenticode_verifies(&stripped),
            "an unsigned exe verified"
        );
        // One flipped byte in the signed code.
        let mut bytes = std::fs::read(&exe).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x01;
        let flipped = d.join(format!("flipped-{which}"));
        std::fs::write(&flipped, bytes).unwrap();
        assert!(!authenticode_verifies(&flipped), "a flipped byte verified");
    }
}

/// A wine prefix of the test's own, with the `ProcessPrng` stand-in wine 8 lacks
/// (tests/bundle/wine/processprng.c, compiled here with mingw-w64; never in a bundle).
fn wine_prefix(dir: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
    let prefix = dir.join("prefix");
    let env = vec![
        ("WINEPREFIX", prefix.clone().into_os_string()),
        ("WINEDEBUG", "-all".into()),
        // No Mono or Gecko installer dialogs; the stand-in before wine's own DLL.
        (
            "WINEDLLOVERRIDES",
            "mscoree,mshtml=;bcryptprimitives=n,b".into(),
        ),
    ];
    run_ok(Command::new("wineboot").arg("-i").envs(env.clone()));
    let src = repo_root().join("tests/bundle/wine");
    let sys32 = prefix.join("drive_c/windows/system32");
    run_ok(
        Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(sys32.join("bcryptprimitives.dll"))
            .arg(src.join("processprng.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32"),
    );
    env
}

/// Every file under `dir`, by path relative to it. Not `home_tree`: wine links the user's
/// folders (Desktop, Documents) to the Unix home, and this does not follow links.
fn files_under(dir: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// The Windows bundle unpacked for a wine test.
struct UnderWine {
    /// The test's scratch folder, with the wine prefix in `prefix/`.
    dir: PathBuf,
    /// What wine needs in the environment for that prefix.
    env: Vec<(&'static str, std::ffi::OsString)>,
    /// The bundle's top folder, inside a folder with a non-ASCII name.
    top: PathBuf,
}

fn windows_bundle_under_wine(name: &str) -> UnderWine {
    let (b, windows) = windows_bundle();
    let dir = scratch(name);
    let env = wine_prefix(&dir);
    let place = dir.join("Ünïcødé مجلد");
    extract(windows, &place);
    let top = place.join(format!("timb-{}-windows-x86_64", b.version));
    UnderWine { dir, env, top }
}

/// The Windows bundle under wine, unpacked into a folder with a non-ASCII name: the launcher
/// starts the app, which prints its version, then opens its window; nothing is written to
/// the wine user's folders.
#[test]
fn the_windows_bundle_runs_under_wine() {
    let b = bundle();
    let UnderWine { dir: d, env, top } = windows_bundle_under_wine("wine");
    // The notices of what the toolchain linked in statically: Rust's standard library,
    // mingw-w64's C runtime, GCC's runtime library.
    for f in ["rust-std.html", "mingw-w64-runtime.txt", "gcc-runtime.txt"] {
        let notice = top.join(format!("app/{}/LICENSES/{f}", b.version));
        assert!(notice.is_file(), "{f} missing from the Windows bundle");
    }
    let home = d.join("prefix/drive_c/users");
    let before = files_under(&home);
    let out = run_ok(
        Command::new("wine")
            .arg(top.join("timb.exe"))
            .arg("--version")
            .envs(env.clone()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("timb {}", b.version)),
        "wine timb.exe --version printed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The window, drawn with the bundle's own fonts (the prefix has none: without them
    // slint's renderer panicked), and the start recorded beside the exe.
    let shot = target_dir().join("bundle-screenshot-windows.png");
    let mut app = Command::new("wine");
    app.arg(top.join("timb.exe")).envs(env.clone());
    let shown = show_window(&mut app, &shot, || {
        let _ = Command::new("wineserver")
            .arg("-k")
            .envs(env.clone())
            .status();
    });
    assert!(shown.found, "no window titled 'timb' appeared under wine");
    assert!(
        shown.colours > 16,
        "the wine screenshot looks blank ({} colours): {shot:?}",
        shown.colours
    );
    // Wine reports the display as 0 Hz, as Windows does in virtual machines: the About box
    // panicked in slint's frame timer before third_party/i-slint-backend-winit.
    assert_about_opened(&shown, &shot);
    assert_start_recorded(&top, &b.version);
    let after = files_under(&home);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "written to the wine user's folders: {new:?}"
    );
}

/// A number field of the world's JSON line.
fn json_number(line: &str, name: &str) -> u64 {
    after_key(line, &format!("\"{name}\": "))
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not a number in {line}"))
}

/// The Windows build connects over Tor under wine: a remembered XMPP account in the
/// profile of a bundle unpacked under a non-ASCII folder, "Connect" and the password typed
/// as a person would, arti inside timb.exe bootstrapping on the private network (on the
/// host's loopback, reached through wine's sockets) and the account logging in to prosody
/// through an exit; then a room joined, which the world's `ben` sees. No screen reader
/// reads a wine window here, so the room's side says it connected; the OTR key libotr
/// wrote into the profile (through `_wfopen`, under that folder) says the rest.
#[test]
fn the_windows_bundle_connects_over_tor_under_wine() {
    use std::io::BufRead;
    let UnderWine { dir: d, env, top } = windows_bundle_under_wine("wine-xmpp");

    let world_log = d.join("world.log");
    let mut world = Command::new(real_window_world())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&world_log).unwrap())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = world.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let info = rx
        .iter()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("the world did not start: see {}", world_log.display()));
    let user = json_field(&info, "xmpp_user");
    // What "Remember this account" writes (the password is never in it).
    std::fs::write(
        top.join("profile/accounts.toml"),
        format!(
            "[[account]]\nprotocol = \"xmpp\"\nserver = \"127.0.0.1\"\nport = {}\ntls = \"pinned\"\npin = \"{}\"\nidentity = \"{user}\"\npassword_mode = \"ask-each-time\"\n",
            json_number(&info, "xmpp_port"),
            json_field(&info, "xmpp_pin"),
        ),
    )
    .unwrap();

    let screen = Screen::start();
    let app_log = d.join("timb.log");
    let mut app = Command::new("wine")
        .arg(top.join("timb.exe"))
        .envs(env.clone())
        .env("DISPLAY", &screen.display)
        // A Windows path to the network's description (wine maps Z: to /).
        .env(
            "TIMB_PRIVATE_TOR_NETWORK",
            format!("Z:{}", json_field(&info, "network")),
        )
        .stdout(std::fs::File::create(&app_log).unwrap())
        .stderr(std::fs::File::create(d.join("timb.err")).unwrap())
        .spawn()
        .unwrap();
    let w = screen
        .find_timb()
        .expect("no window titled 'timb' appeared under wine");
    std::thread::sleep(std::time::Duration::from_secs(2));
    // The account's Connect button (first row under "Accounts"), then the password dialog,
    // whose field has the focus.
    screen.click(&w, CONNECT_BUTTON.0, CONNECT_BUTTON.1);
    std::thread::sleep(std::time::Duration::from_secs(1));
    screen.enter(&json_field(&info, "xmpp_password"));
    // Tor starts now, inside timb.exe; the room can be joined once the account is
    // connected, so the join is typed again until ben sees it (up to 4 minutes).
    let nick = user.split('@').next().unwrap().to_string();
    let room = json_field(&info, "room");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let mut joined = false;
    while !joined && std::time::Instant::now() < deadline {
        screen.click(&w, GROUP_FIELD.0, GROUP_FIELD.1);
        screen.enter(&room);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l == format!("{{\"joined\": \"{nick}\"}}") => {
                    joined = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let shot = target_dir().join("bundle-screenshot-windows-xmpp.png");
    std::thread::sleep(std::time::Duration::from_secs(2));
    screen.shot(&shot);
    let alive = app.try_wait().is_ok_and(|s| s.is_none());
    let _ = app.kill();
    let _ = app.wait();
    let _ = Command::new("wineserver")
        .arg("-k")
        .envs(env.clone())
        .status();
    drop(world.stdin.take());
    let _ = world.wait();
    assert!(alive, "timb.exe ended under wine: see {}", d.display());
    assert!(
        joined,
        "the room never saw {nick} join from timb.exe under wine (screenshot {shot:?}, logs in {})",
        d.display()
    );
    let keys: Vec<_> = files_under(&top.join("profile"))
        .into_iter()
        .filter(|p| p.ends_with("otr.private_key"))
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "libotr wrote no key into the profile under {top:?}"
    );
}

/// Where the first account's Connect button and the "Group to join" field are in the
/// window, measured on a screenshot under wine (the left column has a fixed width:
/// main.slint; the font is the bundled one), for the wine test that cannot find them by
/// name.
const CONNECT_BUTTON: (i64, i64) = (51, 154);
const GROUP_FIELD: (i64, i64) = (106, 285);

/// timb-update.exe, the updater's test client, which the Windows build of timb compiles
/// beside timb.exe (rbm-projects/timb/build; the bundle built it, so this is its cached
/// output); its `apply` is the app's `timb_update::install`.
fn windows_update_client() -> PathBuf {
    let out = run_ok(xtask().args(["build", "timb", "--target", "windows-x86_64"]));
    let dir = String::from_utf8(out.stdout).unwrap();
    let dir = dir.lines().last().expect("xtask build printed no folder");
    let client = Path::new(dir.trim()).join("test-tools/timb-update.exe");
    assert!(client.is_file(), "the Windows build made no {client:?}");
    client
}

/// Compiles tests/bundle/wine/fake-app.c to `to`: a timb.exe that prints `timb VERSION ARGS`.
fn fake_windows_app(version: &str, to: &Path) {
    run_ok(
        Command::new("x86_64-w64-mingw32-gcc")
            .arg("-O2")
            .arg(format!("-DTIMB_VERSION=\"{version}\""))
            .arg("-o")
            .arg(to)
            .arg(repo_root().join("tests/bundle/wine/fake-app.c")),
    );
}

/// [`home_tree`] with paths relative to `root`.
fn relative_tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Option<Vec<u8>>> {
    home_tree(root)
        .into_iter()
        .map(|(p, v)| (p.strip_prefix(root).unwrap().to_path_buf(), v))
        .collect()
}

/// The updater's apply steps under wine, by the Windows build of its code and the bundle's
/// real launcher, with the real signed zip as the update: the bundle is first made to look
/// as an older version (0.0.1) left it, whose timb.exe is a stand-in that says so. The zip
/// is applied beside the old version (nothing of the old version, the launcher or the
/// profile changes, so no exe that may be running is replaced) and the launcher starts
/// the real timb.exe; then a kill (TerminateProcess) at each write, rename and fsync leaves
/// a bundle whose launcher starts the old or the new version, and a retry completes.
#[test]
fn the_windows_updater_applies_an_update_under_wine_and_survives_a_kill_at_every_step() {
    let b = bundle();
    let (_, archive) = windows_bundle();
    let UnderWine { dir: d, env, top } = windows_bundle_under_wine("wine-update");
    let client = windows_update_client();
    let (old, new) = ("0.0.1", b.version.as_str());
    let shipped = d.join("shipped");
    let app = |root: &Path, v: &str| root.join("app").join(v);
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(app(&top, new))
            .arg(&shipped),
    );
    std::fs::rename(app(&top, new), app(&top, old)).unwrap();
    fake_windows_app(old, &app(&top, old).join("timb.exe"));
    std::fs::write(top.join("app/current"), format!("{old}\n")).unwrap();
    std::fs::write(top.join("profile/accounts.toml"), "remembered").unwrap();

    let wine = |what: &Path| {
        let mut c = Command::new("wine");
        c.arg(what).envs(env.clone());
        c
    };
    // The version the launcher starts: the stand-in prints `timb 0.0.1 --version`, the
    // real timb.exe `timb VERSION`.
    let started = |root: &Path| {
        let out = run_ok(wine(&root.join("timb.exe")).arg("--version"));
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let apply = |root: &Path| {
        let mut c = wine(&client);
        c.arg("apply")
            .arg("--bundle")
            .arg(format!("Z:{}", root.display()))
            .arg("--archive")
            .arg(format!("Z:{}", archive.display()))
            .args(["--version", new]);
        c
    };

    let initial = d.join("initial");
    run_ok(Command::new("cp").arg("-a").arg(&top).arg(&initial));
    let before = relative_tree(&top);
    assert_eq!(started(&top), old);
    let out = run_ok(apply(&top).env("TIMB_APPLY_STOPS", "1"));
    let steps: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("stop "))
        .map(str::to_string)
        .collect();
    assert_eq!(started(&top), new);
    let after = relative_tree(&top);
    let installed = Path::new("app").join(new);
    let pointers = [Path::new("app/current"), Path::new("app/previous")];
    let rest = |t: &std::collections::BTreeMap<PathBuf, Option<Vec<u8>>>| {
        t.iter()
            .filter(|(p, _)| !p.starts_with(&installed) && !pointers.contains(&p.as_path()))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert!(
        rest(&before) == rest(&after),
        "the apply changed more than app/{new}/ and the pointers"
    );
    for (pointer, v) in pointers.iter().zip([new, old]) {
        assert_eq!(
            std::fs::read_to_string(top.join(pointer)).unwrap(),
            format!("{v}\n")
        );
    }
    assert!(
        relative_tree(&app(&top, new)) == relative_tree(&shipped),
        "app/{new}/ is not the zip's app folder"
    );

    // staging (4), folder rename and sync (2), previous and current pointers (5 each).
    assert_eq!(steps.len(), 16, "{steps:#?}");
    let commit = steps
        .iter()
        .position(|s| s.ends_with("current: renamed"))
        .unwrap()
        + 1;
    let root = d.join("killed");
    for (n, step) in steps.iter().enumerate().map(|(i, s)| (i + 1, s)) {
        let _ = std::fs::remove_dir_all(&root);
        run_ok(Command::new("cp").arg("-a").arg(&initial).arg(&root));
        let out = apply(&root)
            .env("TIMB_APPLY_STOP_AT", n.to_string())
            .env("TIMB_APPLY_STOPS", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            // TerminateProcess's code (tests/update-client: kill_self).
            out.status.code() == Some(137)
                && err.lines().rfind(|l| l.starts_with("stop ")) == Some(step.as_str()),
            "not killed at {step}: {err}"
        );
        let expect = if n >= commit { new } else { old };
        assert_eq!(started(&root), expect, "after a kill at {step}");
        run_ok(&mut apply(&root));
        assert_eq!(started(&root), new, "after the retry of {step}");
        assert!(
            std::fs::read_dir(root.join("app"))
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().starts_with(".staging")),
            "a staging folder outlived the retry after {step}"
        );
        assert_eq!(
            std::fs::read(root.join("profile/accounts.toml")).unwrap(),
            b"remembered"
        );
    }
    let _ = Command::new("wineserver")
        .arg("-k")
        .envs(env.clone())
        .status();
}

/// Unpacks the macOS zip and signs its `Timb.app` with rcodesign both ways the release can:
/// ad hoc (the default), checked by our reader (rcodesign's `verify` cannot check an ad-hoc
/// signature: it fails on the empty CMS blob, "CMS error: missing further values"), and with
/// a Developer ID certificate, here a loudly named development one made for the test,
/// checked by `rcodesign verify` and by our reader. A byte changed afterwards must fail both.
/// `--timestamp-url none`: rcodesign would otherwise ask Apple's time-stamp server.
fn signed_by_rcodesign(zip: &Path, top: &str) {
    let rcodesign =
        PathBuf::from(std::env::var_os("TIMB_RCODESIGN").expect(
            "TIMB_RCODESIGN is unset: run through `cargo xtask test`, which builds rcodesign",
        ));
    // `cargo xtask test` builds it beside these tests and says when it is done.
    if let Some(ready) = std::env::var_os("TIMB_RCODESIGN_READY") {
        let ready = PathBuf::from(ready);
        wait_for_marker(&ready, "rcodesign was never built");
        let said = std::fs::read_to_string(&ready).unwrap();
        assert_eq!(said, "ok\n", "{said}");
    }
    let dir = scratch(&format!("rcodesign-{top}"));
    // Ad hoc, as `bundle` signs on a Mac by default (`macos-sign`, the pipeline's code):
    // twice, the same bytes.
    let sign = |out: &Path, extra: &[&std::ffi::OsStr]| {
        run_ok(
            xtask()
                .arg("macos-sign")
                .arg(zip)
                .arg("--out")
                .arg(out)
                .args(extra)
                .env("TIMB_RCODESIGN", &rcodesign),
        );
    };
    let (adhoc, again) = (dir.join("adhoc.zip"), dir.join("adhoc-again.zip"));
    sign(&adhoc, &[]);
    sign(&again, &[]);
    assert_eq!(
        sha256(&adhoc),
        sha256(&again),
        "ad-hoc signing is not deterministic"
    );
    let files = package::archive::read_zip(&adhoc).unwrap();
    let sig = package::macho::parse(&files[&format!("{top}/Timb.app/Contents/MacOS/timb")])
        .unwrap()
        .signature
        .expect("rcodesign left no ad-hoc signature");
    assert!(sig.is_adhoc(), "{sig:?}");
    assert_eq!(sig.identifier, package::macos::BUNDLE_ID);
    assert!(
        files.contains_key(&format!(
            "{top}/Timb.app/Contents/_CodeSignature/CodeResources"
        )),
        "the .app's resources are not sealed"
    );
    let seal = String::from_utf8_lossy(
        &files[&format!("{top}/Timb.app/Contents/_CodeSignature/CodeResources")],
    )
    .into_owned();
    assert!(
        seal.contains("Resources/timb.icns"),
        "the icon is not sealed: {seal}"
    );

    let cert = dir.join("dev");
    run_ok(
        Command::new(&rcodesign)
            .args(["generate-self-signed-certificate", "--person-name"])
            .arg("timb LOCAL DEVELOPMENT, NOT FOR RELEASE")
            .args([
                "--profile",
                "developer-id-application",
                "--team-id",
                "TIMBDEV000",
            ])
            .arg("--pem-filename")
            .arg(&cert),
    );
    let devid = dir.join("devid.zip");
    sign(
        &devid,
        &[
            "--pem-cert".as_ref(),
            cert.with_extension("crt").as_os_str(),
            "--pem-key".as_ref(),
            cert.with_extension("key").as_os_str(),
            "--no-timestamp".as_ref(),
        ],
    );
    let unpacked = dir.join("devid");
    run_ok(
        Command::new("unzip")
            .arg("-q")
            .arg(&devid)
            .arg("-d")
            .arg(&unpacked),
    );
    let exe = unpacked.join(top).join("Timb.app/Contents/MacOS/timb");
    run_ok(Command::new(&rcodesign).arg("verify").arg(&exe));
    let mut bytes = std::fs::read(&exe).unwrap();
    let sig = package::macho::parse(&bytes).unwrap().signature.unwrap();
    assert!(
        !sig.is_adhoc() && sig.identifier == package::macos::BUNDLE_ID,
        "{sig:?}"
    );
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&exe, &bytes).unwrap();
    let out = Command::new(&rcodesign)
        .arg("verify")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "rcodesign verify accepted a changed executable"
    );
    assert!(package::macho::parse(&bytes).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What this machine builds of the macOS bundle (#14): the launcher's `Timb.app`, cross-built
/// for both architectures with the pinned compiler, the std built from the pinned rust-src
/// and the pinned zig as C compiler and linker (`cargo xtask build macos-app`). Checked as a
/// Mac reads it: an executable of the right architecture and minimum macOS that loads only
/// libSystem, and on arm64 the linker's ad-hoc signature, whose page hashes match the file;
/// signed again with rcodesign ([`signed_by_rcodesign`]); the Info.plist fixed by the
/// version alone. Built again into a fresh output folder under another time zone and locale
/// (the launcher compiled and linked again, std reused as verify reuses third-party crates),
/// the arm64 zip is the same bytes (the sandbox fixes the paths: where the source and the
/// output live does not reach it).
#[test]
fn the_macos_launcher_app_is_a_checked_reproducible_mach_o_on_both_architectures() {
    let build = |target: &str, fresh: Option<&Path>| -> (PathBuf, String) {
        let mut cmd = xtask();
        cmd.args(["build", "macos-app", "--target", target]);
        if let Some(out) = fresh {
            cmd.env("TIMB_OUT_DIR", out)
                .env("TZ", "Asia/Tehran")
                .env("LC_ALL", "fa_IR.UTF-8");
        }
        let out = run_ok(&mut cmd);
        let printed = String::from_utf8(out.stdout).unwrap();
        let dir = PathBuf::from(
            printed
                .lines()
                .last()
                .expect("xtask build printed no folder"),
        );
        let zip = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "zip"))
            .unwrap_or_else(|| panic!("no zip in {dir:?}"));
        (zip, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (target, arch) in [("macos-aarch64", "arm64"), ("macos-x86_64", "x86_64")] {
        let (zip, _) = build(target, None);
        let top = zip.file_stem().unwrap().to_str().unwrap().to_string();
        let version: timb_release::Version = top
            .strip_prefix("timb-")
            .and_then(|t| t.strip_suffix(&format!("-{target}-launcher-only")))
            .unwrap_or_else(|| panic!("{top}"))
            .parse()
            .unwrap();
        let files = package::archive::read_zip(&zip).unwrap();
        let file = |rel: &str| {
            files
                .get(&format!("{top}/{rel}"))
                .unwrap_or_else(|| panic!("{zip:?} has no {rel}: {:?}", files.keys()))
        };
        let m = package::macho::parse(file("Timb.app/Contents/MacOS/timb")).unwrap();
        assert_eq!(m.arch, arch);
        assert_eq!(m.min_macos, package::macos::MINIMUM_MACOS);
        assert_eq!(m.dylibs, ["/usr/lib/libSystem.B.dylib"], "{target}");
        if arch == "arm64" {
            // macOS on Apple silicon runs no unsigned code: the linker signs ad hoc.
            let sig = m
                .signature
                .expect("an arm64 executable without a code signature");
            assert!(sig.is_adhoc() && sig.pages > 0, "{sig:?}");
        }
        assert_eq!(
            file("Timb.app/Contents/Info.plist"),
            package::macos::info_plist(&version, "timb").as_bytes()
        );
        for licence in ["rust-std.html", "zig.txt", "THIRD-PARTY.txt"] {
            assert!(!file(&format!("LICENSES/{licence}")).is_empty());
        }
        signed_by_rcodesign(&zip, &top);
        assert!(file("BUILDINFO").starts_with(b"name = \"timb\""));
        if target == "macos-aarch64" {
            // Built again elsewhere, by verify's rule (tests/bundle rebuilding_elsewhere):
            // the standard library compiled by the first build is reused (both run the same
            // cargo folder), the launcher is compiled and linked again and everything after.
            // (Rebuilding std as well cost CI 4 of its 60 minutes.)
            let fresh = scratch("macos-again");
            let (again, stderr) = build(target, Some(&fresh));
            assert!(
                stderr.contains("Compiling timb-launcher v"),
                "the rebuild did not compile the launcher:\n{stderr}"
            );
            assert_eq!(
                sha256(&zip),
                sha256(&again),
                "two builds of {target} differ: {zip:?} {again:?}"
            );
            std::fs::remove_dir_all(&fresh).unwrap();
        }
    }
}
