//! The build on a Mac (`macos-native`, rbm-projects/macos-messenger.toml): the messenger's
//! window links Apple's frameworks, whose link stubs come only with Xcode's command-line
//! tools, so the macOS bundle's binaries are compiled natively there. A Mac has no
//! bubblewrap: what the sandbox gives by fixed paths, [`native_cargo_build`] gives by a clean
//! folder for every build and remapped paths (`--remap-path-prefix`, the sandbox's own names),
//! with the sandbox's fixed environment otherwise (`SOURCE_DATE_EPOCH`, `ZERO_AR_DATE=1` for
//! Apple's `ar`, `TZ=UTC`, `LC_ALL=C`, umask 022, nothing inherited but `PATH`).
//!
//! [`native_cargo_build`] is not macOS code: a test here builds timb's launcher with it for
//! Linux in two folders and gets the same bytes. The step itself refuses to run off a Mac.

use anyhow::{bail, Context, Result};
use pipeline::{util, BuildEnv, Project, Step, StepCtx};
use std::path::{Path, PathBuf};
use std::process::Command;
use timb_release::Target;

/// One native `cargo build --release` of `packages` for `rust_target`, from the repository
/// files `project`'s inputs name for `target`, with `env`'s toolchain, cargo home, pinned
/// archives and `SOURCE_DATE_EPOCH`.
pub struct NativeBuild<'a> {
    pub env: &'a BuildEnv,
    pub project: &'a Project,
    pub target: &'a str,
    /// Emptied first: `src/` gets the files, `target/` is cargo's.
    pub work: &'a Path,
    pub rust_target: &'a str,
    pub packages: &'a [&'a str],
    /// More fixed variables (`MACOSX_DEPLOYMENT_TARGET`).
    pub extra_env: &'a [(&'a str, &'a str)],
}

/// Copies the inputs into a clean `work/src` (as the sandbox stages them) and builds there;
/// returns `work/target/<rust_target>/release`.
pub fn native_cargo_build(b: &NativeBuild) -> Result<PathBuf> {
    util::remove_dir(b.work)?;
    let src = b.work.join("src");
    let target = b.work.join("target");
    b.env.stage_repository_inputs(b.project, b.target, &src)?;
    let (toolchain, cargo_home) = (&b.env.sandbox.toolchain, &b.env.sandbox.cargo_home);
    // The sandbox's names for the four places a path can come from. rustc applies the last
    // remap that matches; none of these folders holds another, so the order does not matter.
    let remaps = [
        (&src, "/build/src"),
        (&target, "/build/target"),
        (cargo_home, "/cargo"),
        (toolchain, "/toolchain"),
    ];
    let rustflags: Vec<String> = remaps
        .iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect();
    let mut cargo = Command::new("/bin/sh");
    cargo
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(toolchain.join("bin/cargo"))
        .args(["build", "--release", "--locked", "--offline", "--quiet"])
        .args(["--target", b.rust_target]);
    for p in b.packages {
        cargo.args(["--package", p]);
    }
    cargo
        .current_dir(&src)
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", b.work)
        .env("CARGO_HOME", cargo_home)
        .env("RUSTC", toolchain.join("bin/rustc"))
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TERM_COLOR", "never")
        .env("SOURCE_DATE_EPOCH", b.env.source_date_epoch.to_string())
        .env("ZERO_AR_DATE", "1")
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .env("TIMB_SOURCES_DIR", &b.env.sources);
    for (k, v) in b.extra_env {
        cargo.env(k, v);
    }
    util::run(&mut cargo).with_context(|| format!("building for {}", b.rust_target))?;
    Ok(target.join(b.rust_target).join("release"))
}

/// What building the macOS messenger needs, said on any other machine.
pub fn needs_a_mac(target: Target) -> String {
    format!(
        "{target}: the messenger cannot be built on this machine. Its window (slint, winit, \
         accesskit) links Apple's frameworks (AppKit, Foundation, CoreFoundation, \
         CoreGraphics, CoreText, QuartzCore), whose link stubs come only with Apple's SDK \
         (Xcode or its command-line tools), licensed for use on Apple hardware: build the \
         macOS bundle on a Mac (`cargo xtask bundle --target {target}` there). What this \
         machine does build for macOS is the launcher's Timb.app, a checked Mach-O: \
         `cargo xtask build macos-app --target {target}`."
    )
}

/// The step named `macos-native` in rbm-projects/: `timb` and `timb-launcher`, compiled
/// natively on a Mac, checked as Mach-O files of the target's architecture and minimum
/// macOS, with the standard library's notices.
pub struct MacosNative;

impl Step for MacosNative {
    fn run(&self, env: &BuildEnv, s: &StepCtx) -> Result<()> {
        let target: Target = s.target.parse()?;
        if !cfg!(target_os = "macos") {
            bail!("{}", needs_a_mac(target));
        }
        let rust_target = s
            .vars
            .get("rust_target")
            .context("the macos-native step needs the rust_target variable")?;
        let work = s.out_dir.with_extension("native");
        let release = native_cargo_build(&NativeBuild {
            env,
            project: s.project,
            target: s.target,
            work: &work,
            rust_target,
            packages: &["timb", "timb-launcher"],
            extra_env: &[("MACOSX_DEPLOYMENT_TARGET", crate::macos::MINIMUM_MACOS)],
        })?;
        for name in ["timb", "timb-launcher"] {
            let exe = std::fs::read(release.join(name))
                .with_context(|| format!("reading the built {name}"))?;
            crate::macos::check_macho(&exe, target).with_context(|| name.to_string())?;
            let to = s.out_dir.join(name);
            std::fs::write(&to, exe)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
        }
        let licences = s.out_dir.join("licences");
        std::fs::create_dir_all(&licences)?;
        std::fs::copy(
            env.sandbox
                .toolchain
                .join("share/doc/rust/COPYRIGHT-library.html"),
            licences.join("rust-std.html"),
        )
        .context("the toolchain's notices of the standard library")?;
        util::remove_dir(&work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The native build's promise, on this machine: the same source built in two folders
    /// of different depths gives the same bytes (timb's launcher, std only, for Linux), and
    /// no build folder's path is in them.
    #[test]
    fn two_native_builds_in_two_folders_give_the_same_bytes() {
        let root = util::repo_root();
        let sandbox = pipeline::sandbox::Sandbox::new(&root, root.join("target/unused")).unwrap();
        let env = BuildEnv::new(root.clone(), sandbox).unwrap();
        let project = env.load("macos-messenger").unwrap();
        let tmp = std::env::temp_dir().join(format!("timb-native-{}", std::process::id()));
        let build = |work: &Path| {
            let release = native_cargo_build(&NativeBuild {
                env: &env,
                project: &project,
                target: "macos-aarch64",
                work,
                rust_target: "x86_64-unknown-linux-gnu",
                packages: &["timb-launcher"],
                extra_env: &[],
            })
            .unwrap();
            std::fs::read(release.join("timb-launcher")).unwrap()
        };
        let a_dir = tmp.join("a");
        let b_dir = tmp.join("another folder/deeper/b");
        let a = build(&a_dir);
        let b = build(&b_dir);
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(a.len() > 100_000, "not a program: {} bytes", a.len());
        assert!(a == b, "two native builds differ");
        let text = String::from_utf8_lossy(&a);
        assert!(
            !text.contains(tmp.to_str().unwrap()),
            "a build folder's path is in the binary"
        );
    }
}
