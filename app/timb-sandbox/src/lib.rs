//! timb confines itself once it knows its folders, before it starts any thread: a parser
//! bug a server or a peer can reach must not become access to the user's files, to other
//! programs, or to the network outside Tor.
//!
//! - **Landlock** (files): read-only access to the system (libraries, fonts, locale data,
//!   `/proc`, `/sys`) and a few named files of the user's desktop (X authority, font and
//!   cursor settings); read-write access only to the folders timb owns (the bundle, or
//!   the profile when it runs outside one). The home folder, `~/.ssh` and `/tmp` are out
//!   of reach. Binding a TCP port is refused (timb never listens).
//! - **seccomp** (system calls, every thread): no `execve`, no `ptrace` or reading other
//!   processes' memory, no sockets but Unix (X11, Wayland, D-Bus) and TCP (arti's relay
//!   connections), so no UDP (no DNS leak) and no raw or netlink sockets; no namespaces,
//!   mounts, BPF, keyrings, kernel modules or `io_uring` (which would bypass the filter).
//!   A refused call fails with `EPERM`; nothing is killed, so a library that probes
//!   something gets an error it already handles.
//!
//! Not allowed on purpose: `/dev/shm`, where other programs of the same user keep shared
//! memory. On X11, softbuffer's shared-memory image is then refused and it falls back to
//! sending the image over the X connection (seen in the bundle's leak trace); Wayland
//! uses a memfd, which needs no path.
//!
//! A denylist, not an allowlist of system calls: the GUI stack (winit, X11/Wayland
//! clients, fontconfig, glibc's variants across distributions) uses calls no test here
//! can enumerate for every user's machine, and a missed one would kill the messenger
//! mid-conversation. What an attacker needs next (run a program, read files, reach the
//! network around Tor, attack the kernel's larger surfaces) is what is refused.
//!
//! `TIMB_NO_SANDBOX=1` turns both off for debugging; the window then says so loudly.
//! Elsewhere than Linux this does nothing yet and says so ([`Status::Unsupported`]).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

/// The environment switch that turns the sandbox off (debugging only; shown in the window).
pub const DISABLE_ENV: &str = "TIMB_NO_SANDBOX";

/// What [`confine`] achieved, for the About box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Landlock fully enforced and the seccomp filter installed.
    Confined,
    /// Some of it: `files` says what Landlock managed, `syscalls` whether seccomp did.
    Partial { files: Files, syscalls: bool },
    /// The user turned it off with [`DISABLE_ENV`].
    Disabled,
    /// Not implemented on this system (only Linux is confined so far).
    Unsupported,
}

/// How much of the file rules the kernel enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Files {
    /// Every rule.
    Full,
    /// An older Landlock: some rights (e.g. truncation, renames across folders) not enforced.
    Partly,
    /// No Landlock in this kernel (or it is turned off).
    None,
}

impl Status {
    /// True when nothing protects the user's files.
    pub fn files_exposed(&self) -> bool {
        match self {
            Status::Confined => false,
            Status::Partial { files, .. } => *files == Files::None,
            Status::Disabled | Status::Unsupported => true,
        }
    }
}

/// The folders the confined process may write, and the files it reads outside the system's.
#[derive(Clone, Debug, Default)]
pub struct Allowed {
    /// Read, write, create and delete beneath these (the bundle or the profile).
    pub writable: Vec<PathBuf>,
    /// Read beneath these, in addition to the system's folders (see [`Allowed::desktop`]).
    pub readable: Vec<PathBuf>,
}

impl Allowed {
    /// `writable` plus what a desktop program reads from the user's home and runtime
    /// folders: the X authority file, font, cursor and compose settings. Never the home
    /// folder itself.
    pub fn desktop(writable: Vec<PathBuf>) -> Allowed {
        let mut readable = Vec::new();
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(x) = env("XAUTHORITY") {
            readable.push(x);
        }
        if let Some(home) = env("HOME") {
            for rel in [
                ".Xauthority",
                ".XCompose",
                ".fonts",
                ".fonts.conf",
                ".icons",
                ".cache/fontconfig",
                ".config/fontconfig",
                ".local/share/fonts",
                ".local/share/icons",
            ] {
                readable.push(home.join(rel));
            }
        }
        for k in ["XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"] {
            if let Some(d) = env(k) {
                readable.push(d.join("fontconfig"));
                readable.push(d.join("fonts"));
                readable.push(d.join("icons"));
            }
        }
        Allowed { writable, readable }
    }
}

/// The kernel's Landlock ABI version, 0 when it has none (tests choose what to expect
/// with it; `confine` itself lets the landlock crate negotiate).
pub fn landlock_abi() -> i64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) takes
        // no memory and only returns the ABI version (or an error).
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<u8>(),
                0usize,
                1u32,
            )
        };
        v.max(0)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// True when the user asked for no sandbox (`TIMB_NO_SANDBOX=1`).
pub fn disabled_by_user() -> bool {
    std::env::var_os(DISABLE_ENV).is_some_and(|v| v == "1")
}

/// Confines this process, as far as the system allows. Call it before starting any
/// thread: Landlock restricts the calling thread and what it starts afterwards.
pub fn confine(allowed: &Allowed) -> Status {
    if disabled_by_user() {
        return Status::Disabled;
    }
    imp::confine(allowed)
}

/// Test-only: what an exploit would try (debug builds only; never in a release binary).
#[cfg(debug_assertions)]
pub mod probe;

#[cfg(target_os = "linux")]
mod imp {
    use super::{Allowed, Files, Status};
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, Scope, ABI,
    };
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;

    /// The newest Landlock ABI these rules were written and tested against (kernel 6.12+
    /// has it); older kernels enforce what they know ("best effort"), newer ones no more.
    const ABI_TESTED: ABI = ABI::V6;

    /// The system's folders: libraries, fonts, locale and input data, kernel interfaces.
    const SYSTEM_READ: &[&str] = &[
        "/usr",
        "/lib",
        "/lib64",
        "/lib32",
        "/bin",
        "/sbin",
        "/etc",
        "/opt",
        "/nix/store",
        "/gnu/store",
        "/var/cache/fontconfig",
        "/var/lib/dbus",
        // Other processes' /proc entries that matter (mem, environ, maps) need ptrace
        // access, which Landlock refuses across its domain.
        "/proc",
        "/sys",
        "/dev/urandom",
        "/dev/random",
    ];

    pub(super) fn confine(allowed: &Allowed) -> Status {
        let files = match landlock(allowed) {
            Ok(RulesetStatus::FullyEnforced) => Files::Full,
            Ok(RulesetStatus::PartiallyEnforced) => Files::Partly,
            Ok(RulesetStatus::NotEnforced) | Err(_) => Files::None,
        };
        let syscalls = seccomp().is_ok();
        if files == Files::Full && syscalls {
            Status::Confined
        } else {
            Status::Partial { files, syscalls }
        }
    }

    fn landlock(allowed: &Allowed) -> Result<RulesetStatus, landlock::RulesetError> {
        let abi = ABI_TESTED;
        let read = AccessFs::from_read(abi);
        let all = AccessFs::from_all(abi);
        let status = Ruleset::default()
            .handle_access(all)?
            // No TCP port is ever bound; connections are arti's, to any relay's port.
            .handle_access(AccessNet::BindTcp)?
            // Signals only to processes inside this sandbox. Abstract Unix sockets stay
            // reachable: X11 and many session buses listen on one.
            .scope(Scope::Signal)?
            .create()?
            .add_rules(path_beneath_rules(SYSTEM_READ, read))?
            .add_rules(path_beneath_rules(&allowed.readable, read))?
            .add_rules(path_beneath_rules(
                ["/dev/null"],
                read | AccessFs::WriteFile,
            ))?
            .add_rules(path_beneath_rules(&allowed.writable, all))?
            .restrict_self()?;
        Ok(status.ruleset)
    }

    /// The calls refused outright, whatever their arguments.
    fn refused() -> Vec<i64> {
        vec![
            // Running another program (the sandbox would survive it, but a shell is the
            // first thing an exploit wants).
            libc::SYS_execve,
            libc::SYS_execveat,
            // Other processes' memory.
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            // Namespaces and mounts (an unprivileged user namespace reopens much of the kernel).
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_open_tree,
            libc::SYS_move_mount,
            libc::SYS_fsopen,
            libc::SYS_fsmount,
            // Large kernel surfaces timb never needs.
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_userfaultfd,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            // io_uring performs file and socket operations the filter never sees.
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ]
    }

    fn cond(
        arg: u8,
        op: SeccompCmpOp,
        value: u64,
    ) -> Result<SeccompCondition, seccompiler::BackendError> {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
    }

    /// `socket` is refused for every family but Unix, IPv4 and IPv6, and for IPv4/IPv6
    /// for every type but a stream (the flags `SOCK_NONBLOCK`/`SOCK_CLOEXEC` masked off).
    fn socket_rules() -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
        let family = |f: i32| u64::try_from(f).unwrap_or(u64::MAX);
        let mut rules = vec![SeccompRule::new(vec![
            cond(0, SeccompCmpOp::Ne, family(libc::AF_UNIX))?,
            cond(0, SeccompCmpOp::Ne, family(libc::AF_INET))?,
            cond(0, SeccompCmpOp::Ne, family(libc::AF_INET6))?,
        ])?];
        // The kernel's socket types are 1..=10; only SOCK_STREAM (1) is allowed.
        for f in [libc::AF_INET, libc::AF_INET6] {
            for t in 2..=10u64 {
                rules.push(SeccompRule::new(vec![
                    cond(0, SeccompCmpOp::Eq, family(f))?,
                    cond(1, SeccompCmpOp::MaskedEq(0xf), t)?,
                ])?);
            }
        }
        Ok(rules)
    }

    pub(super) fn filter() -> Result<BpfProgram, seccompiler::BackendError> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
            refused().into_iter().map(|s| (s, Vec::new())).collect();
        rules.insert(libc::SYS_socket, socket_rules()?);
        let arch = TargetArch::try_from(std::env::consts::ARCH)?;
        let eperm = u32::try_from(libc::EPERM).unwrap_or(1);
        SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(eperm),
            arch,
        )?
        .try_into()
    }

    fn seccomp() -> Result<(), seccompiler::Error> {
        seccompiler::apply_filter_all_threads(&filter().map_err(seccompiler::Error::Backend)?)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Allowed, Status};

    pub(super) fn confine(_: &Allowed) -> Status {
        Status::Unsupported
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_filter_compiles_for_this_machine() {
        let prog = super::imp::filter().unwrap();
        assert!(prog.len() > 20, "{} instructions", prog.len());
    }
}
