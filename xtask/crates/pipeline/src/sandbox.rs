//! The hermetic build sandbox: bubblewrap with no network and fixed paths.
//!
//! Fixed paths (`/build/src`, `/build/target`, `/cargo`, `/toolchain`) are
//! what make the output independent of where a builder cloned the repository
//! or keeps its cargo home, without remapping flags that would differ per
//! builder. The root file system comes from `containers/` (`rootfs`), or from
//! the host's `/usr` and `/etc` read-only when none is given.

use crate::container::Rootfs;
use crate::util;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone)]
pub struct Sandbox {
    /// Cargo target directory bound at /build/target (kept between builds), one folder per
    /// target under it ([`Sandbox::for_target`]).
    pub target_dir: PathBuf,
    pub cargo_home: PathBuf,
    pub toolchain: PathBuf,
    /// A wall-clock offset for libfaketime inside the sandbox: the
    /// reproducibility test uses it to prove the clock does not matter.
    pub faketime: Option<String>,
    /// The pinned build container; `None` uses the host's (not a release build).
    pub rootfs: Option<Rootfs>,
}

pub const SANDBOX_LAYOUT: &str = "bwrap v3: /usr,/etc ro; /build/src, /build/inputs, /build/target, /cargo, /toolchain (its parts bound one by one, std's source at lib/rustlib/src/rust when given); no network; TZ=UTC LC_ALL=C.UTF-8 umask 022";

/// What [`Sandbox::identity`] says of a Mac's native builds instead.
pub const NATIVE_LAYOUT: &str = "native macOS v1: a clean folder per build, paths remapped to /build/src, /build/target, /cargo, /toolchain; only PATH=/usr/bin:/bin:/usr/sbin:/sbin; TZ=UTC LC_ALL=C ZERO_AR_DATE=1 umask 022";

pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

impl Sandbox {
    /// A sandbox with the toolchain `root`'s rust-toolchain.toml pins (the tree being built,
    /// which `bundle --source` makes another than xtask's own).
    pub fn new(root: &Path, target_dir: PathBuf) -> Result<Sandbox> {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .context("neither CARGO_HOME nor HOME is set")?;
        Ok(Sandbox {
            target_dir,
            cargo_home,
            toolchain: pinned_toolchain(root)?,
            faketime: None,
            rootfs: None,
        })
    }

    /// The sandbox a step for `target` runs in: its own cargo target directory. Builds for
    /// two targets share no cargo state, so neither's output depends on whether the other
    /// was built first (the Windows build sets RUSTC_BOOTSTRAP, which reruns build scripts,
    /// proc-macro2's among them, that then write their outputs differently).
    pub fn for_target(&self, target: &str) -> Sandbox {
        Sandbox {
            target_dir: self.target_dir.join(target),
            ..self.clone()
        }
    }

    /// What the build id records about the environment a step runs in.
    pub fn identity(&self) -> Result<String> {
        let rustc = self.toolchain.join("bin/rustc");
        let cargo = self.toolchain.join("bin/cargo");
        let v = util::output(Command::new(&rustc).arg("-vV"))?;
        let c = util::output(Command::new(&cargo).arg("-V"))?;
        let rustc_hash = util::sha256_file(&rustc)?;
        // A Mac's builds are native (package::native), not in this sandbox.
        let layout = if cfg!(target_os = "macos") {
            NATIVE_LAYOUT
        } else {
            SANDBOX_LAYOUT
        };
        let mut id = format!(
            "{layout}; {}; rustc sha256 {rustc_hash}; {}",
            v.replace('\n', "; "),
            c.trim()
        );
        if let Some(r) = &self.rootfs {
            id.push_str(&format!("; rootfs {}", r.id));
        }
        // On a Mac the native build's compiler, linker and SDK are Xcode's: a build id
        // changes with them. Asked as the native build runs them: /usr/bin, nothing else
        // of the caller's environment.
        if cfg!(target_os = "macos") {
            let tool = |exe: &str, arg: &str| {
                util::output(
                    Command::new(exe)
                        .arg(arg)
                        .env_clear()
                        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
                )
            };
            let sdk = tool("/usr/bin/xcrun", "--show-sdk-version")
                .context("xcrun: install Xcode's command-line tools (xcode-select --install)")?;
            let clang = tool("/usr/bin/clang", "--version")?;
            id.push_str(&format!(
                "; native macOS SDK {}; {}",
                sdk.trim(),
                clang.lines().next().unwrap_or_default()
            ));
        }
        Ok(id)
    }

    /// Maps a path as the step names it (relative to /build) to the host.
    pub fn host_path(&self, build_root: &Path, rel: &str) -> Result<PathBuf> {
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            bail!("output '{rel}' leaves /build");
        }
        Ok(match rel.strip_prefix("target/") {
            Some(r) => self.target_dir.join(r),
            None => build_root.join(rel),
        })
    }

    /// Runs `script` with `build_root` (holding `src/` and `inputs/`) as
    /// `/build`; whatever the step writes under `/build` stays there. `std_source`, an
    /// unpacked rust-src tree ([`crate::std_src`]), appears where cargo's `-Zbuild-std`
    /// looks for it.
    pub fn run_script(
        &self,
        build_root: &Path,
        script: &str,
        env: &[(String, String)],
        source_date_epoch: u64,
        std_source: Option<&Path>,
    ) -> Result<()> {
        if !util::have_command("bwrap") {
            bail!("bubblewrap (bwrap) is needed for hermetic builds: apt-get install bubblewrap");
        }
        std::fs::create_dir_all(&self.target_dir)?;
        let mut cmd = Command::new("bwrap");
        cmd.args(["--unshare-all", "--die-with-parent", "--new-session"]);
        let sys = self
            .rootfs
            .as_ref()
            .map_or(Path::new("/"), |r| r.dir.as_path());
        cmd.arg("--ro-bind").arg(sys.join("usr")).arg("/usr");
        cmd.arg("--ro-bind").arg(sys.join("etc")).arg("/etc");
        for top in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
            let p = sys.join(&top[1..]);
            if let Ok(link) = std::fs::read_link(&p) {
                cmd.arg("--symlink").arg(link).arg(top);
            } else if p.is_dir() {
                cmd.arg("--ro-bind").arg(&p).arg(top);
            }
        }
        cmd.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
        std::fs::create_dir_all(build_root.join("target"))?;
        std::fs::create_dir_all(build_root.join("inputs"))?;
        // A step with only file inputs (the C libraries) still starts in /build/src.
        std::fs::create_dir_all(build_root.join("src"))?;
        cmd.arg("--bind").arg(build_root).arg("/build");
        cmd.arg("--bind").arg(&self.target_dir).arg("/build/target");
        cmd.arg("--bind").arg(&self.cargo_home).arg("/cargo");
        self.bind_toolchain(&mut cmd, std_source)?;
        cmd.args([
            "--dir",
            "/build/home",
            "--chdir",
            "/build/src",
            "--clearenv",
        ]);
        let fixed = [
            ("PATH", "/toolchain/bin:/usr/bin:/bin"),
            ("HOME", "/build/home"),
            ("CARGO_HOME", "/cargo"),
            ("CARGO_TARGET_DIR", "/build/target"),
            ("TZ", "UTC"),
            ("LC_ALL", "C.UTF-8"),
            ("LANG", "C.UTF-8"),
            ("TERM", "dumb"),
            // Pinned source archives (file inputs), checked by hash before staging.
            ("TIMB_SOURCES_DIR", "/build/inputs"),
        ];
        for (k, v) in fixed {
            cmd.args(["--setenv", k, v]);
        }
        cmd.args(["--setenv", "SOURCE_DATE_EPOCH"])
            .arg(source_date_epoch.to_string());
        for (k, v) in env {
            cmd.arg("--setenv").arg(k).arg(v);
        }
        if let Some(offset) = &self.faketime {
            // The host's libfaketime, bound in only when asked for: it is a
            // test of the build, never part of one.
            cmd.args(["--ro-bind", FAKETIME_LIB, "/faketime/libfaketime.so.1"]);
            cmd.args(["--setenv", "LD_PRELOAD", "/faketime/libfaketime.so.1"]);
            cmd.args(["--setenv", "FAKETIME"]).arg(offset);
            cmd.args(["--setenv", "FAKETIME_DONT_FAKE_MONOTONIC", "1"]);
            // rustc deadlocks at start-up under libfaketime (its jemalloc and
            // libfaketime's dlsym wait on each other), so rustc alone, and
            // the linker it runs, keep the real clock. cargo, build scripts,
            // configure, make and the C compiler all see the moved one. Both
            // ways rustc is started go through the wrapper: cargo's
            // (RUSTC_WRAPPER) and build scripts' own `$RUSTC --version`
            // (RUSTC; proc-macro2's and thiserror's hung there).
            let wrapper = build_root.join(".rustc-real-clock");
            std::fs::write(&wrapper, "#!/bin/sh\nunset LD_PRELOAD\nexec \"$@\"\n")?;
            let rustc = build_root.join(".rustc-real-clock-rustc");
            std::fs::write(
                &rustc,
                "#!/bin/sh\nunset LD_PRELOAD\nexec /toolchain/bin/rustc \"$@\"\n",
            )?;
            for f in [&wrapper, &rustc] {
                std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            }
            cmd.args(["--setenv", "RUSTC_WRAPPER", "/build/.rustc-real-clock"]);
            cmd.args(["--setenv", "RUSTC", "/build/.rustc-real-clock-rustc"]);
        }
        // Shows (and lets the reproducibility test check) that the clock moved.
        let clock = if self.faketime.is_some() {
            "echo \"sandbox clock (libfaketime): $(date -u +%Y-%m-%d)\" >&2\n"
        } else {
            ""
        };
        cmd.args(["/bin/sh", "-ec"])
            .arg(format!("umask 022\n{clock}{script}"));
        util::run(&mut cmd)
    }
}

impl Sandbox {
    /// The toolchain at /toolchain, read-only. With a std source, the toolchain's top
    /// folders are bound one by one over a tmpfs (a read-only bind cannot take a new mount
    /// point, and the host's toolchain must not get one), then the source at
    /// `lib/rustlib/src/rust`, where cargo finds it through `rustc --print sysroot`.
    fn bind_toolchain(&self, cmd: &mut Command, std_source: Option<&Path>) -> Result<()> {
        let Some(src) = std_source else {
            cmd.arg("--ro-bind").arg(&self.toolchain).arg("/toolchain");
            return Ok(());
        };
        cmd.args(["--tmpfs", "/toolchain"]);
        for sub in ["", "lib", "lib/rustlib"] {
            let dir = self.toolchain.join(sub);
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()?;
            names.sort();
            for name in names {
                let rel = Path::new(sub).join(&name);
                // Folders on the way to lib/rustlib/src are made, not bound.
                if ["lib", "lib/rustlib", "lib/rustlib/src"].contains(&rel.to_str().unwrap_or("")) {
                    continue;
                }
                cmd.arg("--ro-bind")
                    .arg(self.toolchain.join(&rel))
                    .arg(Path::new("/toolchain").join(&rel));
            }
        }
        cmd.arg("--ro-bind")
            .arg(src)
            .arg("/toolchain/lib/rustlib/src/rust");
        cmd.args(["--remount-ro", "/toolchain"]);
        Ok(())
    }
}

/// The toolchain rust-toolchain.toml pins, resolved through rustup.
fn pinned_toolchain(root: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(root.join("rust-toolchain.toml"))?;
    let v: toml::Value = toml::from_str(&text)?;
    let channel = v
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
        .context("rust-toolchain.toml has no toolchain.channel")?;
    let rustc = util::output(
        Command::new("rustup")
            .args(["which", "--toolchain", channel, "rustc"])
            .current_dir(root),
    )
    .with_context(|| {
        format!(
            "the pinned toolchain {channel} is not installed (rustup toolchain install {channel})"
        )
    })?;
    let bin = PathBuf::from(rustc.trim());
    bin.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("unexpected rustc location")
}
