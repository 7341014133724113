//! The real `timb` binary confines itself (timb-sandbox, #17): run under Xvfb with the
//! debug-only probe switch, it tries from inside the running app what an exploit would
//! try first, and reports what the system answered and what its window shows. Then
//! "Restart to update" still starts the bundle's launcher, though the app may not run
//! programs: its helper, forked before the sandbox, does it once the app has exited.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        use std::io::Read;
        // -displayfd: Xvfb picks a free display and writes its number when ready.
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "800x600x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (Debian's xvfb; cargo xtask test installs it)");
        let mut out = child.stdout.take().unwrap();
        let mut number = String::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            number.push(byte[0] as char);
        }
        Xvfb {
            child,
            display: format!(":{}", number.trim()),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch tree: `home/secret`, `outside/`, and (for `bundle`) a bundle whose
/// `app/0.1.0/timb` is this build's binary (a hard link: `current_exe` must see the
/// bundle's path) and whose launcher is a script that records who started it.
fn tree(bundle: bool) -> tempfile::TempDir {
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let p = t.path();
    std::fs::create_dir_all(p.join("home")).unwrap();
    std::fs::create_dir_all(p.join("outside")).unwrap();
    std::fs::write(p.join("home/secret"), b"private key").unwrap();
    if bundle {
        let v = p.join("bundle/app/0.1.0");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::hard_link(env!("CARGO_BIN_EXE_timb"), v.join("timb")).unwrap();
        std::fs::write(p.join("bundle/app/current"), "0.1.0\n").unwrap();
        // The bundle's obfs4 transport: Debian's obfs4proxy stands in for lyrebird.
        std::os::unix::fs::symlink("/usr/bin/obfs4proxy", v.join("lyrebird")).unwrap();
        let launcher = p.join("bundle/timb");
        std::fs::write(
            &launcher,
            "#!/bin/sh\necho \"$PPID\" > \"$(dirname \"$0\")/launcher-started\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    t
}

/// Runs `exe` with the probe switch until it quits; its stdout.
fn run(exe: &Path, root: &Path, x: &Xvfb, env: &[(&str, &str)]) -> (String, u32) {
    run_with(Command::new(exe), root, x, env)
}

fn run_with(mut cmd: Command, root: &Path, x: &Xvfb, env: &[(&str, &str)]) -> (String, u32) {
    cmd.env("DISPLAY", &x.display).env_remove("WAYLAND_DISPLAY");
    run_probe(cmd, root, env)
}

/// Runs `cmd` (its display already chosen) with the probe switch until it quits.
fn run_probe(mut cmd: Command, root: &Path, env: &[(&str, &str)]) -> (String, u32) {
    cmd.env_remove("TIMB_NO_SANDBOX")
        .env("HOME", root.join("home"))
        .env("TIMB_TEST_SANDBOX_PROBE", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    // stdout (the probe's lines) then stderr (the Wayland protocol log, when asked for).
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "timb failed: {text}");
    (text, pid)
}

/// A process (its name) whose working folder is `dir`.
fn working_in(dir: &Path) -> Option<String> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
        (cwd == dir).then(|| std::fs::read_to_string(e.path().join("comm")).unwrap_or_default())
    })
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("timb printed no {key}: {text}"))
        .trim()
}

#[test]
fn the_running_app_cannot_read_home_write_outside_run_a_shell_or_open_udp() {
    if timb_sandbox::landlock_abi() < 1 {
        eprintln!("skipped: this kernel has no Landlock (the About box says so instead)");
        return;
    }
    let x = Xvfb::start();
    let t = tree(true);
    let root = t.path();
    let exe = root.join("bundle/app/0.1.0/timb");
    let (text, pid) = run(
        &exe,
        root,
        &x,
        &[("TIMB_TEST_RESTART", "1"), ("TIMB_TEST_OBFS4", "1")],
    );
    assert_eq!(field(&text, "window-drawn:"), "true", "{text}");
    assert_eq!(field(&text, "sandbox-status:"), "Confined", "{text}");
    assert_eq!(field(&text, "sandbox-shown:"), "Confined", "{text}");
    assert_eq!(
        field(&text, "sandbox-probe:"),
        "read_home_secret=refused(13) write_outside=refused(13) write_profile=allowed \
         exec_shell=refused(1) udp_socket=refused(1) tcp_socket=allowed",
        "EACCES is 13 (Landlock), EPERM 1 (seccomp)"
    );
    assert!(!root.join("outside/timb-probe-outside").exists());
    assert!(root.join("bundle/profile/timb-probe-inside").exists());

    // The obfs4 transport: started for the confined app by its helper, and gone with it
    // (no process is left working in its state folder).
    assert_eq!(field(&text, "obfs4:"), "listening on loopback", "{text}");
    let state = std::fs::canonicalize(root.join("bundle/profile"))
        .unwrap()
        .join("tor/pt_state");
    assert!(state.is_dir(), "{}", state.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = working_in(&state) {
        assert!(Instant::now() < deadline, "{left} outlived timb");
        std::thread::sleep(Duration::from_millis(100));
    }

    // "Restart to update": the helper started the launcher after timb had exited.
    assert_eq!(field(&text, "restart-asked:"), "Some(true)");
    let marker = root.join("bundle/launcher-started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the launcher was never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let parent = std::fs::read_to_string(&marker).unwrap();
    assert_ne!(
        parent.trim(),
        pid.to_string(),
        "the launcher started while the old timb was still running"
    );
}

#[test]
fn with_the_sandbox_turned_off_the_same_probes_succeed_and_the_window_says_so() {
    let x = Xvfb::start();
    let t = tree(false);
    let root = t.path();
    let profile = root.join("profile");
    let profile_s = profile.to_str().unwrap();
    let (text, _) = run(
        Path::new(env!("CARGO_BIN_EXE_timb")),
        root,
        &x,
        &[("TIMB_NO_SANDBOX", "1"), ("TIMB_PROFILE", profile_s)],
    );
    assert_eq!(field(&text, "sandbox-status:"), "Disabled", "{text}");
    assert_eq!(field(&text, "sandbox-shown:"), "Disabled", "{text}");
    assert_eq!(
        field(&text, "sandbox-probe:"),
        "read_home_secret=allowed write_outside=allowed write_profile=allowed \
         exec_shell=allowed udp_socket=allowed tcp_socket=allowed"
    );
    assert!(root.join("outside/timb-probe-outside").exists());
}

/// A kernel without Landlock, made for the child: before `exec`, a seccomp filter of our
/// own answers the three Landlock calls with `ENOSYS`, as such a kernel does. timb starts,
/// its own seccomp filter still holds (no shell, no UDP), and the window says the files
/// are not protected instead of claiming a sandbox.
#[cfg(target_arch = "x86_64")]
#[test]
fn without_landlock_timb_runs_keeps_its_syscall_filter_and_says_files_are_exposed() {
    use std::collections::BTreeMap;
    use std::os::unix::process::CommandExt;
    // landlock_create_ruleset, landlock_add_rule, landlock_restrict_self on x86_64.
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        [444, 445, 446].into_iter().map(|n| (n, vec![])).collect();
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        seccompiler::TargetArch::x86_64,
    )
    .unwrap();
    let program: seccompiler::BpfProgram = filter.try_into().unwrap();
    let x = Xvfb::start();
    let t = tree(false);
    let root = t.path();
    let profile = root.join("profile");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_timb"));
    // SAFETY: between fork and exec only the two system calls `apply_filter` makes
    // (prctl, seccomp) run, on a program built before the fork; nothing allocates.
    unsafe {
        cmd.pre_exec(move || seccompiler::apply_filter(&program).map_err(std::io::Error::other));
    }
    let (text, _) = run_with(
        cmd,
        root,
        &x,
        &[("TIMB_PROFILE", profile.to_str().unwrap())],
    );
    assert_eq!(field(&text, "window-drawn:"), "true", "{text}");
    assert_eq!(
        field(&text, "sandbox-status:"),
        "Partial { files: None, syscalls: true }",
        "{text}"
    );
    assert_eq!(field(&text, "sandbox-shown:"), "NoLandlock", "{text}");
    assert_eq!(
        field(&text, "sandbox-probe:"),
        "read_home_secret=allowed write_outside=allowed write_profile=allowed \
         exec_shell=refused(1) udp_socket=refused(1) tcp_socket=allowed",
        "files exposed (no Landlock), system calls still filtered"
    );
}

/// weston with its headless backend on a socket in a runtime folder of its own.
struct Weston {
    child: std::process::Child,
    runtime: tempfile::TempDir,
}

impl Weston {
    fn start() -> Weston {
        use std::os::unix::fs::PermissionsExt;
        let runtime = tempfile::tempdir().unwrap();
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let child = Command::new("weston")
            .args([
                "--backend=headless-backend.so",
                "--socket=timb-test",
                "--idle-time=0",
                "--no-config",
            ])
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weston (Debian's weston; cargo xtask test installs it)");
        let socket = runtime.path().join("timb-test");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "weston made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        Weston { child, runtime }
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The window opens under a Wayland compositor with no X server at all (#19), with the
/// sandbox on: Landlock leaves the compositor's socket reachable and the seccomp filter
/// lets the Wayland client library do its work, and the probes are refused as under X11.
#[test]
fn under_wayland_with_no_x_server_the_window_opens_confined() {
    if timb_sandbox::landlock_abi() < 1 {
        eprintln!("skipped: this kernel has no Landlock (the other tests cover that case)");
        return;
    }
    let w = Weston::start();
    let t = tree(false);
    let root = t.path();
    let profile = root.join("profile");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_timb"));
    cmd.env_remove("DISPLAY")
        .env("WAYLAND_DISPLAY", "timb-test")
        .env("XDG_RUNTIME_DIR", w.runtime.path());
    let (text, _) = run_probe(
        cmd,
        root,
        &[
            ("TIMB_PROFILE", profile.to_str().unwrap()),
            // libwayland's protocol log: proof the window reached the compositor.
            ("WAYLAND_DEBUG", "1"),
        ],
    );
    assert_eq!(field(&text, "window-drawn:"), "true", "{text}");
    // A toplevel, and a buffer attached to its own surface and committed: the window
    // is on the compositor's screen.
    let surface = text
        .lines()
        .find_map(|l| l.split(".get_xdg_surface(").nth(1))
        .and_then(|args| {
            args.split([',', ')']).find_map(|a| {
                a.trim()
                    .strip_prefix("wl_surface@")
                    .map(|n| format!("wl_surface@{n}"))
            })
        })
        .unwrap_or_else(|| panic!("no xdg surface: {text}"));
    assert!(text.contains(".get_toplevel("), "no toplevel: {text}");
    let attach = format!("{surface}.attach(wl_buffer@");
    let after_attach = text
        .split_once(&attach)
        .unwrap_or_else(|| panic!("no buffer attached to {surface}: {text}"))
        .1;
    assert!(
        after_attach.contains(&format!("{surface}.commit(")),
        "{surface} never committed after its buffer: {text}"
    );
    assert_eq!(field(&text, "sandbox-status:"), "Confined", "{text}");
    assert_eq!(field(&text, "sandbox-shown:"), "Confined", "{text}");
    assert_eq!(
        field(&text, "sandbox-probe:"),
        "read_home_secret=refused(13) write_outside=refused(13) write_profile=allowed \
         exec_shell=refused(1) udp_socket=refused(1) tcp_socket=allowed"
    );
}
