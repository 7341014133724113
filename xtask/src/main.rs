//! `cargo xtask`: timb's build pipeline. See README.md and rbm-projects/README.md.
//!
//! A thin command line: the flags are parsed here (clap), each command is one module under
//! `cmd/`, and the work is done by the library crates under `xtask/crates/` (`pipeline`,
//! `package`, `sign`, `pins`, `publish`).

mod cmd;
mod testnet;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use timb_release::Target;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "timb's build pipeline",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the signed bundles: Linux and Windows, or macOS on a Mac (development keys if no --key)
    Bundle {
        /// A release key (minisign secret key, its .pub beside it, listed in signing/policy.toml)
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Where the archive, the sums file and their signatures go [default: out/bundle]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Build another copy of this source tree instead of the one xtask was compiled from
        /// (the update test builds two versions of a copy without compiling xtask again)
        #[arg(long, value_name = "DIR")]
        source: Option<PathBuf>,
        /// Only this target (repeatable) [default: every one this machine builds: linux-x86_64 and windows-x86_64 on Linux, its own macOS target on a Mac]
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<Target>,
        /// A release Authenticode certificate (PEM) for the Windows exes [default: a development one]
        #[arg(long, value_name = "FILE", requires = "authenticode_key")]
        authenticode_cert: Option<PathBuf>,
        /// Its private key (PEM)
        #[arg(long, value_name = "FILE", requires = "authenticode_cert")]
        authenticode_key: Option<PathBuf>,
        /// On a Mac: a Developer ID identity (PKCS#12; password in TIMB_MACOS_P12_PASSWORD) for the .apps [default: ad hoc]
        #[arg(long, value_name = "FILE")]
        macos_p12: Option<PathBuf>,
        /// On a Mac: notarize with this App Store Connect API key (JSON) [needs Apple's service; untested]
        #[arg(long, value_name = "FILE", requires = "macos_p12")]
        macos_notarize_key: Option<PathBuf>,
        /// This machine is also a builder of the release: sign its sums files with this
        /// builder key (its .pub beside it; password in TIMB_BUILDER_PASSWORD)
        #[arg(long, value_name = "FILE", requires = "builder")]
        builder_key: Option<PathBuf>,
        /// The builder name to sign as, with --builder-key
        #[arg(long, value_name = "NAME", requires = "builder_key")]
        builder: Option<String>,
    },
    /// Check a bundle's signature, rebuild it and compare the bytes
    Verify(cmd::verify::Opts),
    /// An independent builder: rebuild a published release and, only if every byte matches,
    /// sign its sums files with your builder key
    Rebuild(cmd::rebuild::Opts),
    /// Sign the .apps in a macOS zip with rcodesign (ad hoc unless a Developer ID is given)
    MacosSign(cmd::macos_sign::Opts),
    /// Install what the suite needs, then run all of it
    Test {
        /// The second half, run inside the network namespace the first half made
        #[arg(long, hide = true)]
        inside_netns: bool,
    },
    /// Measure and print a table
    Bench {
        /// What to measure; the table is also written to out/bench/WHICH.md
        #[arg(value_enum, default_value_t = cmd::bench::Which::Build)]
        which: cmd::bench::Which,
    },
    /// PNGs of each screen, English and Arabic, into docs/screenshots/
    Screenshots,
    /// libFuzzer over timb's parsers (fuzz/); prints executions, edges and crashes
    Fuzz {
        /// One target (default: every one in fuzz/fuzz_targets/)
        #[arg(value_name = "TARGET")]
        target: Option<String>,
        /// Seconds per target
        #[arg(long, value_name = "S", default_value_t = 60)]
        time: u64,
    },
    /// Build one rbm project into out/PROJECT/<build-id>/
    Build {
        #[arg(value_name = "PROJECT")]
        project: String,
        #[arg(long, value_name = "T", default_value = "linux-x86_64")]
        target: String,
    },
    /// The bundle without signatures (used by verify)
    BuildUnsigned {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only this target (repeatable) [default: every one this machine builds]
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<Target>,
        /// Build this tree with this xtask (`rebuild --test-shortcuts`, for a tree of this
        /// xtask's own commit: the tests' shortcut past compiling the same xtask again)
        #[arg(long, value_name = "DIR", hide = true)]
        source: Option<PathBuf>,
    },
    /// Download crates and pinned source archives (checked by sha256)
    Fetch {
        /// Also fetch the build container's locked packages, and say how each input is pinned
        #[arg(long)]
        check: bool,
    },
    /// The TUF update repository: keys, a root, bundles, timestamps, rotations
    #[command(subcommand)]
    Release(cmd::release::Release),
    /// The build container: `lock` pins it to exact package files
    #[command(subcommand)]
    Container(cmd::container::Container),
}

fn main() -> ExitCode {
    // Usage mistakes are clap's to report (exit status 2); failures are ours (1).
    let cli = Cli::parse();
    let Some(command) = cli.cmd else {
        // As before: `cargo xtask` alone prints the usage and succeeds.
        return match Cli::command().print_help() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The tree a `--source DIR` names (canonical), or this checkout.
fn source_root(
    source: Option<std::path::PathBuf>,
    root: std::path::PathBuf,
) -> anyhow::Result<std::path::PathBuf> {
    match source {
        Some(s) => s
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("--source {}: {e}", s.display())),
        None => Ok(root),
    }
}

fn run(command: Cmd) -> anyhow::Result<()> {
    let root = pipeline::util::repo_root();
    // `cargo xtask` in one checkout can run an xtask compiled in another when both share a
    // CARGO_TARGET_DIR and cargo finds the pipeline crate fresh: it would then silently
    // build that other tree. cargo tells the run which package it meant.
    if let Some(meant) = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from) {
        let meant_root = meant.parent().unwrap_or(&meant);
        if meant.ends_with("xtask") && meant_root != root {
            anyhow::bail!(
                "this xtask was compiled from {} but cargo ran it for {}: touch {}/xtask/crates/pipeline/src/util.rs (where the root is compiled in), or use another CARGO_TARGET_DIR, so that cargo compiles it again",
                root.display(),
                meant_root.display(),
                meant_root.display()
            );
        }
    }
    match command {
        Cmd::Bundle {
            key,
            out,
            source,
            targets,
            authenticode_cert,
            authenticode_key,
            macos_p12,
            macos_notarize_key,
            builder_key,
            builder,
        } => {
            let root = source_root(source, root)?;
            let opts = cmd::bundle::Opts {
                key: key.as_deref(),
                out,
                targets,
                authenticode: authenticode_cert.zip(authenticode_key),
                macos_p12,
                macos_notarize_key,
                builder: builder_key.zip(builder),
            };
            cmd::bundle::run(&root, opts)
        }
        Cmd::Verify(o) => cmd::verify::verify(&root, &o),
        Cmd::Rebuild(o) => cmd::rebuild::run(&root, o),
        Cmd::MacosSign(o) => {
            cmd::macos_sign::run(&root, &o)?;
            println!("{}", o.out.display());
            Ok(())
        }
        Cmd::Test { inside_netns } => cmd::test::run(&root, inside_netns),
        Cmd::Bench { which } => cmd::bench::run(&root, which),
        Cmd::Screenshots => cmd::screenshots::run(&root),
        Cmd::Fuzz { target, time } => cmd::fuzz::run(&root, target.as_deref(), time),
        Cmd::Build { project, target } => cmd::build::run(&root, &project, &target),
        Cmd::BuildUnsigned {
            out,
            targets,
            source,
        } => {
            let root = source_root(source, root)?;
            let targets = if targets.is_empty() {
                cmd::build_unsigned::default_targets()
            } else {
                targets
            };
            cmd::build_unsigned::run(&root, &out, 1, 3, &targets).map(drop)
        }
        Cmd::Fetch { check } => cmd::fetch::run(&root, check),
        Cmd::Release(r) => cmd::release::run(&root, r),
        Cmd::Container(c) => cmd::container::run(&root, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The command lines README.md and tests/bundle use.
    #[test]
    fn documented_command_lines_parse() {
        let c = parse(&["bundle", "--key", "k.key", "--out", "d"]).unwrap();
        assert!(matches!(
            c.cmd,
            Some(Cmd::Bundle {
                key: Some(_),
                out: Some(_),
                source: None,
                ref targets,
                authenticode_cert: None,
                authenticode_key: None,
                macos_p12: None,
                macos_notarize_key: None,
                builder_key: None,
                builder: None,
            }) if targets.is_empty()
        ));
        assert!(
            parse(&["bundle", "--macos-notarize-key", "k.json"]).is_err(),
            "notarizing needs a Developer ID"
        );
        assert!(
            parse(&["bundle", "--builder-key", "b.key"]).is_err(),
            "a builder key needs the builder's name"
        );
        let c = parse(&[
            "rebuild",
            "release",
            "--builder-key",
            "b.key",
            "--builder",
            "carol",
            "--out",
            "v",
            "--source",
            "s",
            "--reuse-deps-from",
            "t",
        ])
        .unwrap();
        assert!(
            matches!(c.cmd, Some(Cmd::Rebuild(ref o)) if o.builder == "carol" && o.rebuild.source.is_some())
        );
        let c = parse(&[
            "macos-sign",
            "a.zip",
            "--out",
            "b.zip",
            "--pem-cert",
            "c.crt",
            "--pem-key",
            "c.key",
            "--no-timestamp",
        ])
        .unwrap();
        assert!(matches!(c.cmd, Some(Cmd::MacosSign(_))));
        assert!(
            parse(&[
                "macos-sign",
                "a.zip",
                "--out",
                "b",
                "--p12",
                "p",
                "--pem-cert",
                "c"
            ])
            .is_err(),
            "two identities"
        );
        let c = parse(&[
            "bundle",
            "--target",
            "windows-x86_64",
            "--target",
            "linux-x86_64",
        ])
        .unwrap();
        assert!(matches!(
            c.cmd,
            Some(Cmd::Bundle { ref targets, .. })
                if *targets == [Target::WindowsX86_64, Target::LinuxX86_64]
        ));
        assert!(parse(&["bundle", "--target", "macos-riscv"]).is_err());
        assert!(
            parse(&["bundle", "--authenticode-cert", "c.pem"]).is_err(),
            "a certificate without its key"
        );
        let c = parse(&[
            "bundle",
            "--authenticode-cert",
            "c.pem",
            "--authenticode-key",
            "k.pem",
        ])
        .unwrap();
        assert!(matches!(
            c.cmd,
            Some(Cmd::Bundle {
                authenticode_cert: Some(_),
                authenticode_key: Some(_),
                ..
            })
        ));
        assert!(parse(&["build-unsigned", "--out", "d", "--target", "windows-x86_64"]).is_ok());
        let c = parse(&["bundle", "--source", "s", "--key", "k.key", "--out", "d"]).unwrap();
        assert!(matches!(
            c.cmd,
            Some(Cmd::Bundle {
                source: Some(_),
                ..
            })
        ));
        let c = parse(&[
            "verify",
            "a.tar.xz",
            "--pubkey",
            "k.pub",
            "--source",
            "s",
            "--target-dir",
            "t",
            "--work",
            "w",
            "--reuse-deps-from",
            "r",
        ])
        .unwrap();
        let Some(Cmd::Verify(o)) = c.cmd else {
            panic!("not verify")
        };
        assert_eq!(o.archives, [PathBuf::from("a.tar.xz")]);
        assert!(!o.no_rebuild && o.rebuild.reuse_deps_from.is_some());
        let c = parse(&["verify", "--no-rebuild", "a.tar.xz", "b.zip"]).unwrap();
        assert!(matches!(c.cmd, Some(Cmd::Verify(o)) if o.no_rebuild && o.archives.len() == 2));
        assert!(matches!(
            parse(&["test", "--inside-netns"]).unwrap().cmd,
            Some(Cmd::Test { inside_netns: true })
        ));
        assert!(matches!(
            parse(&["bench"]).unwrap().cmd,
            Some(Cmd::Bench {
                which: cmd::bench::Which::Build
            })
        ));
        assert!(matches!(
            parse(&["bench", "otr"]).unwrap().cmd,
            Some(Cmd::Bench {
                which: cmd::bench::Which::Otr
            })
        ));
        let c = parse(&["build", "timb"]).unwrap();
        assert!(matches!(c.cmd, Some(Cmd::Build { target, .. }) if target == "linux-x86_64"));
        assert!(parse(&["build-unsigned", "--out", "d"]).is_ok());
        assert!(matches!(
            parse(&["build-unsigned", "--out", "d", "--source", "s"]).map(|c| c.cmd),
            Ok(Some(Cmd::BuildUnsigned {
                source: Some(_),
                ..
            }))
        ));
        assert!(parse(&["fetch"]).is_ok());
        assert!(matches!(
            parse(&["fetch", "--check"]).unwrap().cmd,
            Some(Cmd::Fetch { check: true })
        ));
        assert!(parse(&["container", "lock", "--out", "x.lock"]).is_ok());
        assert!(parse(&["screenshots"]).is_ok());
        assert!(parse(&[]).unwrap().cmd.is_none());
    }

    #[test]
    fn mistakes_are_refused_with_a_clear_error() {
        for bad in [
            &["bundle", "--frobnicate"][..],
            &["bundle", "--key"],
            &["verify"],
            &["build"],
            &["build-unsigned"],
            &["bench", "nothing"],
            &["fetch", "extra"],
            &["no-such-command"],
        ] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert_ne!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{bad:?}");
        }
        let e = parse(&["bundle", "--frobnicate"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--frobnicate"), "{e}");
    }
}
