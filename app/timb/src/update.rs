//! The update check as the app runs it: over the chats' Tor client on circuits of its own
//! (timb-update's `TorFetcher`), only once Tor runs because the user asked for something,
//! and applied beside the running version (timb-launcher's layout) so that the next start
//! runs it. Every failure reaches the window as an [`UpdateProblem`], never a raw error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use timb_launcher::Layout;
use timb_release::tuf::{Channel, RoleName, ShippedChannel, CHANNEL_FILE, ROOT_FILE};
use timb_release::{Target, Version};
use timb_tor::Transport;
use timb_update::{
    install, newest_update, BundleTrust, Limits, Problem, Running, Store, TorFetcher, Updater, Url,
    SIGNING_DIR,
};

use crate::backend::{Sink, UiEvent, UpdateProblem, UpdateStatus};

/// Where a bundle ships its update channel: `app/VERSION/update-channel/` holds `root.json`
/// (the initial trusted TUF root) and `channel.toml` (`channel = "stable"`, `mirrors = [..]`,
/// each mirror the base of a repository `cargo xtask release` wrote).
pub const CHANNEL_DIR: &str = "update-channel";

/// What the updater needs; built once at start.
pub struct UpdateSetup {
    /// `None` outside a bundle's folders.
    pub layout: Option<Layout>,
    /// `None` when the bundle ships no channel.
    pub channel: Option<ChannelConfig>,
    /// `None` only if this binary's own version does not parse (then nothing is checked).
    pub running: Option<Version>,
}

pub struct ChannelConfig {
    pub root: Vec<u8>,
    pub mirrors: Vec<Url>,
    pub channel: Channel,
    pub trust: BundleTrust,
}

impl ChannelConfig {
    /// Reads `dir/root.json` and `dir/channel.toml`, with the bundle keys and policy the
    /// same version ships. A missing folder is `Ok(None)`; a broken one an error.
    pub fn read(dir: &Path, trust: BundleTrust) -> Result<Option<ChannelConfig>, String> {
        if !dir.is_dir() {
            return Ok(None);
        }
        let root = std::fs::read(dir.join(ROOT_FILE)).map_err(|e| format!("{ROOT_FILE}: {e}"))?;
        let text = std::fs::read_to_string(dir.join(CHANNEL_FILE))
            .map_err(|e| format!("{CHANNEL_FILE}: {e}"))?;
        let f = ShippedChannel::parse(&text).map_err(|e| e.to_string())?;
        let mirrors = f
            .mirrors
            .iter()
            .map(|m| Url::parse(m).map_err(|e| format!("{CHANNEL_FILE}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ChannelConfig {
            root,
            mirrors,
            channel: f.channel,
            trust,
        }))
    }
}

impl UpdateSetup {
    /// The running binary's: its bundle (if it is in one) and the channel shipped there.
    pub fn of_running(version: &str) -> UpdateSetup {
        let layout = std::env::current_exe()
            .ok()
            .and_then(|e| Layout::of_exe(&e));
        let channel = layout.as_ref().and_then(|l| {
            let vdir = l.version_dir(version);
            let dir = vdir.join(CHANNEL_DIR);
            if !dir.is_dir() {
                return None;
            }
            let trust = BundleTrust::read(&vdir.join(SIGNING_DIR))
                .map_err(|e| eprintln!("timb: the bundle's signing keys are not usable: {e}"))
                .ok()?;
            ChannelConfig::read(&dir, trust).unwrap_or_else(|e| {
                eprintln!("timb: the bundle's update channel is not usable: {e}");
                None
            })
        });
        UpdateSetup {
            layout,
            channel,
            running: version.parse().ok(),
        }
    }
}

/// The platform this binary was built for: only its own platform's bundles are updates.
fn this_target() -> Target {
    if cfg!(windows) {
        Target::WindowsX86_64
    } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        Target::MacosAarch64
    } else if cfg!(target_os = "macos") {
        Target::MacosX86_64
    } else {
        Target::LinuxX86_64
    }
}

/// One check: refresh, and if there is a newer bundle, download, verify and install it.
/// Reports each step to the window.
pub async fn check(tor: Transport, setup: Arc<UpdateSetup>, sink: Sink) {
    sink.send(UiEvent::Update(UpdateStatus::Checking));
    let status = match check_inner(tor, &setup, &sink).await {
        Ok(s) => s,
        Err(p) => UpdateStatus::Failed(p),
    };
    sink.send(UiEvent::Update(status));
}

async fn check_inner(
    tor: Transport,
    setup: &UpdateSetup,
    sink: &Sink,
) -> Result<UpdateStatus, UpdateProblem> {
    let layout = setup.layout.clone().ok_or(UpdateProblem::NotInPlace)?;
    let ch = setup.channel.as_ref().ok_or(UpdateProblem::NotConfigured)?;
    let disk = |_| UpdateProblem::Check(Problem::Disk);
    let state = layout.state_dir();
    timb_launcher::create_private_dir(&state).map_err(disk)?;
    let store =
        Store::open(&state.join("metadata")).map_err(|_| UpdateProblem::Check(Problem::Disk))?;
    if store
        .read(RoleName::Root)
        .map_err(|_| UpdateProblem::Check(Problem::Disk))?
        .is_none()
    {
        store
            .write(RoleName::Root, &ch.root)
            .map_err(|_| UpdateProblem::Check(Problem::Disk))?;
    }
    let metadata: Vec<Url> = ch.mirrors.iter().map(|m| m.join("metadata/")).collect();
    let targets: Vec<Url> = ch.mirrors.iter().map(|m| m.join("targets/")).collect();
    let updater = Updater::new(store, TorFetcher::new(tor), metadata);
    let set = updater
        .refresh()
        .await
        .map_err(|e| UpdateProblem::Check(Problem::of_update(&e)))?;
    let running = Running {
        version: setup.running.clone().ok_or(UpdateProblem::NotConfigured)?,
        target: this_target(),
        channel: ch.channel.clone(),
    };
    let Some((info, fields)) = newest_update(&set, &running) else {
        return Ok(UpdateStatus::UpToDate);
    };
    let version = fields.version.to_string();
    if layout.failed_version().as_deref() == Some(version.as_str()) {
        // It never started here; the window said so at the fallback. Wait for a later one.
        return Ok(UpdateStatus::UpToDate);
    }
    if layout.installed(&version)
        && layout.current().ok().flatten().as_deref() == Some(version.as_str())
    {
        return Ok(UpdateStatus::Ready { version });
    }
    let total = info.length;
    sink.send(UiEvent::Update(UpdateStatus::Downloading {
        version: version.clone(),
        done: 0,
        total,
    }));
    // At most ~100 progress events per download.
    let step = (total / 100).max(64 * 1024);
    let last = Arc::new(AtomicU64::new(0));
    let (psink, pversion) = (sink.clone(), version.clone());
    let updater = updater.with_progress(Arc::new(move |done| {
        let before = last.load(Ordering::Relaxed);
        if done >= before + step || done == total {
            last.store(done, Ordering::Relaxed);
            psink.send(UiEvent::Update(UpdateStatus::Downloading {
                version: pversion.clone(),
                done,
                total,
            }));
        }
    }));
    let downloads = state.join("downloads");
    let archive: PathBuf = updater
        .download_update(&set, &info.name, &running, &ch.trust, &targets, &downloads)
        .await
        .map_err(|e| UpdateProblem::Check(Problem::of_update(&e)))?;
    let v = version.clone();
    let installed = tokio::task::spawn_blocking(move || {
        let r = install(&layout, &archive, &v, Limits::default(), None);
        // The archive is not needed once unpacked (and is fetched again after a failure).
        let _ = std::fs::remove_file(&archive);
        r
    })
    .await
    .map_err(|_| UpdateProblem::Check(Problem::Other))?;
    installed.map_err(|e| UpdateProblem::Check(Problem::of_apply(&e)))?;
    Ok(UpdateStatus::Ready { version })
}

/// The bundle's launcher, which starts the version `app/current` names.
pub fn launcher(layout: &Layout) -> std::path::PathBuf {
    layout
        .root()
        .join(if cfg!(windows) { "timb.exe" } else { "timb" })
}

/// "Restart to update": has the bundle's launcher (which now picks the new version) start
/// once this process has ended. The new one opens no connection until the user asks.
///
/// The binary asks its restart helper (`restart.rs`; the sandbox forbids running a
/// program); without one (a test's window, another system) the launcher is started here.
pub fn restart(layout: &Layout) -> std::io::Result<()> {
    if crate::restart::request() {
        return Ok(());
    }
    std::process::Command::new(launcher(layout))
        .stdin(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipped_channel_is_read_and_a_broken_one_is_an_error_not_a_silent_none() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(CHANNEL_DIR);
        let signing = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../signing");
        let trust = || BundleTrust::read(&signing).unwrap();
        assert!(ChannelConfig::read(&dir, trust()).unwrap().is_none());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ROOT_FILE), b"root bytes").unwrap();
        let e = ChannelConfig::read(&dir, trust()).err().unwrap();
        assert!(e.contains(CHANNEL_FILE), "{e}");
        let onion = "http://abc.onion/";
        let shipped = ShippedChannel::new(
            Channel::new("alpha").unwrap(),
            vec![onion.into(), "https://example.org/timb/".into()],
        )
        .unwrap();
        std::fs::write(dir.join(CHANNEL_FILE), shipped.to_toml()).unwrap();
        let c = ChannelConfig::read(&dir, trust()).unwrap().unwrap();
        assert_eq!(c.root, b"root bytes");
        assert_eq!(c.channel.as_str(), "alpha");
        assert_eq!(c.mirrors[0], Url::parse(onion).unwrap());
        assert_eq!(c.mirrors[1].host, "example.org");
        std::fs::write(
            dir.join(CHANNEL_FILE),
            "channel = \"alpha\"\nmirrors = [\"http://example.org/\"]\n",
        )
        .unwrap();
        let e = ChannelConfig::read(&dir, trust()).err().unwrap();
        assert!(e.contains("plain HTTP is only for onion mirrors"), "{e}");
    }
}
