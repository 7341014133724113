//! `cargo xtask`: timb's build pipeline. See README.md and rbm-projects/README.md.

mod bench;
mod bundle;
mod container;
mod licences;
mod provision;
mod rbm;
mod sandbox;
mod sign;
mod sources;
mod test;
mod util;
mod verify;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use timb_release::{SignatureKind, SourceCommit, Target, TrustedComment, Version, SUMS_FILE};

const USAGE: &str = "\
cargo xtask <command>

  bundle [--key FILE] [--out DIR]   build the signed Linux bundle (development key if no --key)
  verify ARCHIVE [--pubkey FILE] [--source DIR] [--target-dir DIR] [--work DIR] [--no-rebuild]
                                    check a bundle's signature, rebuild it and compare the bytes
                                    (--reuse-deps-from TARGET_DIR: keep third-party crates
                                    compiled there; a quicker, weaker check used by the tests)
  test                              install what the suite needs, then run all of it
  bench [build|tor|xmpp|irc|otr|app] measure and print a table
  screenshots                       PNGs of each screen, English and Arabic, into docs/screenshots/
  build PROJECT [--target T]        build one rbm project into out/PROJECT/<build-id>/
  build-unsigned --out DIR          the bundle without signatures (used by verify)
  fetch                             download crates and pinned source archives (checked by sha256)
";

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
        print!("{USAGE}");
        return Ok(());
    }
    let cmd = args.remove(0);
    let root = util::repo_root();
    match cmd.as_str() {
        "bundle" => {
            let key = take_opt(&mut args, "--key")?.map(PathBuf::from);
            let out = take_opt(&mut args, "--out")?.map(PathBuf::from);
            no_more(&args)?;
            bundle_cmd(&root, key.as_deref(), out)
        }
        "build-unsigned" => {
            let out = take_opt(&mut args, "--out")?.context("--out DIR is required")?;
            no_more(&args)?;
            build_unsigned(&root, Path::new(&out), 1, 3).map(|_| ())
        }
        "verify" => {
            let o = verify::Opts {
                pubkey: take_opt(&mut args, "--pubkey")?.map(PathBuf::from),
                source: take_opt(&mut args, "--source")?.map(PathBuf::from),
                target_dir: take_opt(&mut args, "--target-dir")?.map(PathBuf::from),
                work: take_opt(&mut args, "--work")?.map(PathBuf::from),
                no_rebuild: take_flag(&mut args, "--no-rebuild"),
                reuse_deps_from: take_opt(&mut args, "--reuse-deps-from")?.map(PathBuf::from),
            };
            if args.len() != 1 {
                bail!("verify takes one archive\n\n{USAGE}");
            }
            verify::verify(&root, Path::new(&args[0]), &o)
        }
        "build" => {
            let target = take_opt(&mut args, "--target")?.unwrap_or_else(|| "linux-x86_64".into());
            if args.len() != 1 {
                bail!("build takes one project name\n\n{USAGE}");
            }
            fetch(&root)?;
            let mut ctx = new_ctx(&root)?;
            let b = ctx.build(&args[0], &target)?;
            println!("{}", b.dir.display());
            Ok(())
        }
        "fetch" => {
            no_more(&args)?;
            fetch(&root)
        }
        "test" => test::run(&root, &args),
        "bench" => bench::run(&root, &args),
        "screenshots" => {
            no_more(&args)?;
            screenshots(&root)
        }
        other => bail!("unknown command '{other}'\n\n{USAGE}"),
    }
}

fn take_opt(args: &mut Vec<String>, name: &str) -> Result<Option<String>> {
    if let Some(i) = args.iter().position(|a| a == name) {
        if i + 1 >= args.len() {
            bail!("{name} needs a value");
        }
        let v = args.remove(i + 1);
        args.remove(i);
        return Ok(Some(v));
    }
    Ok(None)
}

fn take_flag(args: &mut Vec<String>, name: &str) -> bool {
    if let Some(i) = args.iter().position(|a| a == name) {
        args.remove(i);
        true
    } else {
        false
    }
}

fn no_more(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("unexpected argument '{a}'\n\n{USAGE}");
    }
    Ok(())
}

fn new_ctx(root: &Path) -> Result<rbm::Ctx> {
    let target_dir = util::cargo_target_dir(root).join("sandbox");
    let mut sandbox = sandbox::Sandbox::new(target_dir)?;
    // The pinned container unless the builder opts out; see containers/README.md.
    if std::env::var_os("TIMB_HOST_ROOTFS").is_some_and(|v| v == "1") {
        eprintln!("\x1b[1;33m!!! TIMB_HOST_ROOTFS=1: building with this machine's /usr and /etc, not the pinned container.\n!!! The output is not a release build.\x1b[0m");
    } else {
        let cache = util::cargo_target_dir(root).join("containers");
        let rootfs = container::ensure_rootfs(root, &cache)?;
        // Cargo's fingerprints know nothing of the rootfs: a target directory shared with
        // another rootfs would keep build-script results (pkg-config probes) made there.
        sandbox.target_dir =
            util::cargo_target_dir(root).join(format!("sandbox-{}", &rootfs.id[..16]));
        sandbox.rootfs = Some(rootfs);
    }
    // Lets the reproducibility test move the sandbox's wall clock.
    if let Ok(offset) = std::env::var("TIMB_SANDBOX_FAKETIME") {
        if !Path::new(sandbox::FAKETIME_LIB).is_file() {
            bail!("TIMB_SANDBOX_FAKETIME is set but libfaketime is not installed (apt-get install faketime)");
        }
        sandbox.faketime = Some(offset);
    }
    // The output cache; the build benchmark points it at a fresh folder.
    let out = std::env::var_os("TIMB_OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("out"));
    rbm::Ctx::new(root.to_path_buf(), out, sandbox)
}

/// The real window and network backend against the private Tor network and
/// prosody (app/timb/examples/screenshots.rs), pictures into docs/screenshots/.
fn screenshots(root: &Path) -> Result<()> {
    provision::ensure(&["tor", "prosody"])?;
    let net = test::start_testnet(root)?;
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root)
        .args([
            "run",
            "--locked",
            "--quiet",
            "--package",
            "timb",
            "--example",
            "screenshots",
            "--",
        ])
        .arg(root.join("docs/screenshots"));
    if let Some(n) = &net {
        c.env("TIMB_TESTNET", &n.config);
    }
    let r = util::run(&mut c);
    drop(net);
    r
}

/// Crates for every platform in Cargo.lock, then every pinned source archive.
fn fetch(root: &Path) -> Result<()> {
    util::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["fetch", "--locked", "--quiet"]),
    )
    .context("downloading crates")?;
    provision::fetch_pinned_sources(root)
}

struct Unsigned {
    archive: PathBuf,
    sums: PathBuf,
    version: Version,
    target: Target,
}

fn build_unsigned(root: &Path, out: &Path, first_stage: usize, total: usize) -> Result<Unsigned> {
    provision::ensure(&["bubblewrap", "mmdebstrap"])?;
    util::stage(
        first_stage,
        total,
        "fetching crates and pinned sources (the only step with network)",
    );
    fetch(root)?;
    util::stage(
        first_stage + 1,
        total,
        "building timb in the sandbox (no network; ~9 min on 2 cores when nothing is cached)",
    );
    let mut ctx = new_ctx(root)?;
    let target = Target::LinuxX86_64;
    let built = ctx.build("linux-bundle", target.name())?;
    let version: Version = ctx.version(&ctx.load("linux-bundle")?)?.parse()?;
    util::stage(first_stage + 2, total, "collecting the bundle");
    std::fs::create_dir_all(out)?;
    let name = target.archive_name(&version);
    let archive = out.join(&name);
    let sums = out.join(SUMS_FILE);
    for (from, to) in [
        (built.dir.join(&name), &archive),
        (built.dir.join(SUMS_FILE), &sums),
    ] {
        std::fs::copy(&from, to).with_context(|| format!("copying {}", from.display()))?;
        let _ = std::fs::remove_file(sign::sig_path(to));
    }
    eprintln!(
        "    {}  {}",
        util::sha256_file(&archive)?,
        archive.display()
    );
    Ok(Unsigned {
        archive,
        sums,
        version,
        target,
    })
}

fn bundle_cmd(root: &Path, key: Option<&Path>, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| root.join("out").join("bundle"));
    // A release key the policy does not list is refused here, before the build.
    let signer = match key {
        Some(k) => sign::release_signer(root, k)?,
        None => sign::dev_signer(&util::cargo_target_dir(root))?,
    };
    let u = build_unsigned(root, &out, 1, 4)?;
    util::stage(4, 4, &format!("signing with key {}", signer.key_id()));
    let commit = match util::git_commit(root) {
        Some((c, false)) => c.parse()?,
        Some((c, true)) => format!("{c}-modified").parse()?,
        None => SourceCommit::Unknown,
    };
    for file in [&u.archive, &u.sums] {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let comment = TrustedComment::new(
            name,
            u.version.clone(),
            u.target,
            util::sha256_file(file)?.parse()?,
            commit.clone(),
            signer.dev,
        )?;
        let sig = signer.sign_file(file, &comment)?;
        eprintln!("    {}", sig.display());
    }
    // What `verify` and the updater will check, checked now: a release key's bundle must pass
    // as a release, the development key's as a development bundle.
    let (policy, mut keys) = sign::repository_trust(root)?;
    if signer.dev {
        keys.add(
            sign::read_checking_key(&sign::dev_public_key_path(&util::cargo_target_dir(root)))?,
            "LOCAL DEVELOPMENT key",
        );
    }
    for file in [&u.archive, &u.sums] {
        let checked = sign::check_signature(file, &keys, &policy)?;
        let want = if signer.dev {
            SignatureKind::Development
        } else {
            SignatureKind::Release
        };
        if checked.kind() != want {
            bail!("{} did not check as a {want:?} signature", file.display());
        }
    }
    println!("{}", u.archive.display());
    if signer.dev {
        let pubkey = sign::dev_public_key_path(&util::cargo_target_dir(root));
        eprintln!(
            "\n\x1b[1;31m!!! This bundle is signed with a LOCAL DEVELOPMENT KEY ({}), not a release key.\n!!! Public key: {}\n!!! Do not publish it. Release builds pass --key.\x1b[0m",
            signer.key_id(),
            pubkey.display()
        );
    }
    Ok(())
}
