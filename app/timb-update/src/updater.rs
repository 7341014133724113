//! The refresh of the TUF client workflow (spec §5.2–5.6) and the download of a target,
//! over any [`Fetch`], with mirrors tried in order: a mirror that fails or serves a file a
//! check refuses is left for the next, and the error lists what each one did.
//!
//! Every file accepted by [`TrustedSet`] is persisted at once (a root before the next one
//! is fetched), and nothing else is: a refused file changes nothing on disk.

use crate::error::{Failure, UpdateError};
use crate::fetch::{get_capped, get_streaming, Fetch, FetchError, Piece, Timeouts, Url};
use crate::minisig::BundleTrust;
use crate::store::{create_private_file, sync_dir, Store};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use timb_release::tuf::{
    names, Channel, RoleName, TargetInfo, TimbFields, TimestampUpdate, TrustedSet,
    MAX_ROOT_ROTATIONS,
};
use timb_release::{Target, Version};

/// A `.minisig` file is a few hundred bytes.
const MAX_MINISIG: u64 = 4096;
/// A release's published sums (a line per archive) and its builders' signatures (a few
/// hundred bytes each): far below this.
const MAX_VOUCH_FILE: u64 = 64 * 1024;

/// The running bundle, which an update must match and exceed.
#[derive(Debug, Clone)]
pub struct Running {
    pub version: Version,
    pub target: Target,
    pub channel: Channel,
}

/// Told the bytes of a target received so far (the window's progress bar).
pub type Progress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

pub struct Updater<F> {
    store: Store,
    fetch: F,
    metadata_mirrors: Vec<Url>,
    timeouts: Timeouts,
    now: i64,
    progress: Option<Progress>,
    stop: Option<StopPoint>,
}

/// Called before each write, fsync and rename of a download with what is about to happen;
/// only the test client sets one (to kill itself there).
pub type StopPoint = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The newest bundle in `set` that `running` may update to (its platform and channel, a
/// higher version); targets that are not such a bundle are passed over.
pub fn newest_update(set: &TrustedSet, running: &Running) -> Option<(TargetInfo, TimbFields)> {
    let targets = set.targets()?;
    targets
        .targets
        .keys()
        .filter_map(|name| set.target(name).ok())
        .filter_map(|info| {
            TimbFields::check_update(&info, &running.version, running.target, &running.channel)
                .ok()
                .map(|f| (info, f))
        })
        .max_by(|a, b| a.1.version.cmp_release(&b.1.version))
}

impl<F> std::fmt::Debug for Updater<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Updater")
    }
}

/// What one file's round of the mirrors gave.
enum Got<T> {
    Accepted(Vec<u8>, T),
    /// At least one mirror said "not there" and none gave a valid file.
    NotFound,
}

/// Now, in seconds since 1970: the fixed start time of a refresh.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl<F: Fetch> Updater<F> {
    /// An updater over `store` fetching metadata from `metadata_mirrors` (in order). Its
    /// reference time is fixed now: every role of a refresh is judged at this instant.
    pub fn new(store: Store, fetch: F, metadata_mirrors: Vec<Url>) -> Updater<F> {
        Updater {
            store,
            fetch,
            metadata_mirrors,
            timeouts: Timeouts::default(),
            now: unix_now(),
            progress: None,
            stop: None,
        }
    }

    /// Test builds only: `p` is told each step of a download (see [`StopPoint`]).
    pub fn with_stop_points(mut self, p: StopPoint) -> Updater<F> {
        self.stop = Some(p);
        self
    }

    fn stop_at(&self, what: &str) {
        if let Some(s) = &self.stop {
            s(what);
        }
    }

    /// Reports each target download's progress to `p`.
    pub fn with_progress(mut self, p: Progress) -> Updater<F> {
        self.progress = Some(p);
        self
    }

    pub fn with_timeouts(mut self, t: Timeouts) -> Updater<F> {
        self.timeouts = t;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Tries each mirror in turn for `name` (at most `max` bytes), offering the bytes to
    /// `offer` until one is accepted.
    async fn round<T>(
        &self,
        mirrors: &[Url],
        name: &str,
        max: u64,
        not_found_ends: bool,
        mut offer: impl FnMut(&[u8]) -> Result<T, timb_release::tuf::TufError>,
    ) -> Result<Got<T>, UpdateError> {
        if mirrors.is_empty() {
            return Err(UpdateError::NoMirror);
        }
        let mut failures = Vec::new();
        let mut not_found = false;
        for (i, m) in mirrors.iter().enumerate() {
            match get_capped(&self.fetch, &m.join(name), max, &self.timeouts).await {
                Ok(bytes) => match offer(&bytes) {
                    Ok(v) => return Ok(Got::Accepted(bytes, v)),
                    Err(e) => failures.push((i, Failure::Tuf(e))),
                },
                Err(FetchError::NotFound) if not_found_ends => not_found = true,
                Err(e) => failures.push((i, Failure::Fetch(e))),
            }
        }
        if not_found {
            return Ok(Got::NotFound);
        }
        Err(UpdateError::Mirrors {
            file: name.to_string(),
            failures,
        })
    }

    /// The trusted set from the store's root, at the fixed reference time.
    fn start(&self) -> Result<TrustedSet, UpdateError> {
        let root = self
            .store
            .read(RoleName::Root)?
            .ok_or(UpdateError::NotInitialised)?;
        TrustedSet::new(&root, self.now).map_err(UpdateError::LocalRoot)
    }

    /// The local timestamp as the rollback baseline; one that no longer verifies under the
    /// final root is deleted (never trusted, never kept as a baseline).
    fn load_local(&self, set: &mut TrustedSet) -> Result<(), UpdateError> {
        if let Some(b) = self.store.read(RoleName::Timestamp)? {
            if set.load_local_timestamp(&b).is_err() {
                self.store.delete(RoleName::Timestamp)?;
            }
        }
        Ok(())
    }

    /// One refresh (spec §5.2–5.6): the root chain, then timestamp, snapshot and targets.
    /// Returns the trusted set, ready for [`download`](Self::download).
    pub async fn refresh(&self) -> Result<TrustedSet, UpdateError> {
        let mut set = self.start()?;
        let root_cap = cap(RoleName::Root, None);
        // §5.3: N+1.root.json until a mirror says there is none, at most MAX_ROOT_ROTATIONS.
        for _ in 0..MAX_ROOT_ROTATIONS {
            let name = names::root(set.root().version.saturating_add(1));
            let mirrors = self.metadata_mirrors.clone();
            match self
                .round(&mirrors, &name, root_cap, true, |b| set.update_root(b))
                .await?
            {
                Got::NotFound => break,
                Got::Accepted(bytes, update) => {
                    self.store.write(RoleName::Root, &bytes)?;
                    if update.dropped_timestamp_and_snapshot {
                        // Fast-forward recovery (§5.3.11): the keys that signed them are
                        // gone, so must be the versions they claimed.
                        self.store.delete(RoleName::Timestamp)?;
                        self.store.delete(RoleName::Snapshot)?;
                    }
                }
            }
        }
        set.check_root_current()?;
        self.load_local(&mut set)?;

        // §5.4: the timestamp.
        let mirrors = self.metadata_mirrors.clone();
        let ts_cap = cap(RoleName::Timestamp, None);
        if let Got::Accepted(bytes, TimestampUpdate::Updated) = self
            .round(&mirrors, names::TIMESTAMP, ts_cap, false, |b| {
                set.update_timestamp(b)
            })
            .await?
        {
            self.store.write(RoleName::Timestamp, &bytes)?;
        }

        // §5.5: the snapshot, unless the local one is the listed one.
        if let Some(b) = self.store.read(RoleName::Snapshot)? {
            if set.load_local_snapshot(&b).is_err() {
                self.store.delete(RoleName::Snapshot)?;
            }
        }
        if !set.snapshot_is_current() {
            let meta = set
                .timestamp()
                .and_then(|t| t.snapshot_meta())
                .cloned()
                .ok_or(timb_release::tuf::TufError::MissingMeta {
                    listed_by: RoleName::Timestamp,
                    name: "snapshot.json".into(),
                })?;
            let name = names::snapshot(set.consistent_snapshot(), meta.version);
            let max = cap(RoleName::Snapshot, meta.length);
            if let Got::Accepted(bytes, ()) = self
                .round(&mirrors, &name, max, false, |b| set.update_snapshot(b))
                .await?
            {
                self.store.write(RoleName::Snapshot, &bytes)?;
            }
        }

        // §5.6: targets, unless the local one is the listed one.
        let local = self.store.read(RoleName::Targets)?;
        if local.is_none_or(|b| set.update_targets(&b).is_err()) {
            let meta = set
                .snapshot()
                .and_then(|s| s.meta.get("targets.json"))
                .cloned()
                .ok_or(timb_release::tuf::TufError::MissingMeta {
                    listed_by: RoleName::Snapshot,
                    name: "targets.json".into(),
                })?;
            let name = names::targets(set.consistent_snapshot(), meta.version);
            let max = cap(RoleName::Targets, meta.length);
            if let Got::Accepted(bytes, ()) = self
                .round(&mirrors, &name, max, false, |b| set.update_targets(b))
                .await?
            {
                self.store.write(RoleName::Targets, &bytes)?;
            }
        }
        Ok(set)
    }

    /// The trusted set from the store alone, without the network: every file must still
    /// verify and be current at the reference time (else: refresh).
    pub fn trusted(&self) -> Result<TrustedSet, UpdateError> {
        let mut set = self.start()?;
        set.check_root_current()?;
        let read = |r: RoleName| -> Result<Vec<u8>, UpdateError> {
            self.store
                .read(r)?
                .ok_or(UpdateError::Tuf(timb_release::tuf::TufError::Order {
                    role: r,
                    reason: "nothing of it is trusted yet: refresh first",
                }))
        };
        set.load_local_timestamp(&read(RoleName::Timestamp)?)?;
        set.load_local_snapshot(&read(RoleName::Snapshot)?)?;
        set.update_targets(&read(RoleName::Targets)?)?;
        Ok(set)
    }

    /// Downloads bundle `name` as the running bundle's update: its timb fields must match
    /// `running` and name a newer version (checked before a byte is fetched), then TUF's
    /// length and hashes, then its minisign signature (`NAME.minisig` beside it, from the
    /// same mirrors) by `trust`. Written to `dir` only once all hold.
    pub async fn download_update(
        &self,
        set: &TrustedSet,
        name: &str,
        running: &Running,
        trust: &BundleTrust,
        mirrors: &[Url],
        dir: &Path,
    ) -> Result<PathBuf, UpdateError> {
        let info = set.target(name)?;
        TimbFields::check_update(&info, &running.version, running.target, &running.channel)?;
        self.download_checked(set, &info, mirrors, dir, Some(trust))
            .await
    }

    /// Downloads target `name` with TUF's checks alone (any repository's target; the test
    /// client's conformance use). The app uses [`download_update`](Self::download_update).
    pub async fn download(
        &self,
        set: &TrustedSet,
        name: &str,
        mirrors: &[Url],
        dir: &Path,
    ) -> Result<PathBuf, UpdateError> {
        let info = set.target(name)?;
        self.download_checked(set, &info, mirrors, dir, None).await
    }

    async fn download_checked(
        &self,
        set: &TrustedSet,
        info: &TargetInfo,
        mirrors: &[Url],
        dir: &Path,
        trust: Option<&BundleTrust>,
    ) -> Result<PathBuf, UpdateError> {
        let parts = plain_parts(&info.name)?;
        if mirrors.is_empty() {
            return Err(UpdateError::NoMirror);
        }
        let mut out_dir = dir.to_path_buf();
        for p in &parts[..parts.len() - 1] {
            out_dir.push(p);
        }
        let file_name = parts[parts.len() - 1];
        std::fs::create_dir_all(&out_dir).map_err(|e| failure_disk(&info.name, &e.to_string()))?;
        let dest = out_dir.join(file_name);
        let tmp = out_dir.join(format!(".{file_name}.part"));
        let path = names::target(set.consistent_snapshot(), info)
            .into_iter()
            .next()
            .unwrap_or_else(|| info.name.clone());
        let mut failures = Vec::new();
        for (i, m) in mirrors.iter().enumerate() {
            let r = self
                .one_target(info, &m.join(&path), mirrors, i, &tmp, file_name, trust)
                .await;
            match r {
                Ok(()) => {
                    self.stop_at("download: checked, renaming into place");
                    std::fs::rename(&tmp, &dest)
                        .map_err(|e| failure_disk(&info.name, &e.to_string()))?;
                    self.stop_at("download: renamed");
                    sync_dir(&out_dir)?;
                    self.stop_at("download: folder synced");
                    return Ok(dest);
                }
                Err(f) => {
                    let empty = std::fs::metadata(&tmp).is_ok_and(|m| m.len() == 0);
                    if empty || !keeps_part(&f) {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    failures.push((i, f));
                }
            }
        }
        Err(UpdateError::Mirrors {
            file: info.name.clone(),
            failures,
        })
    }

    /// One mirror's attempt: stream into `tmp` through the verifier (resuming a `.part` an
    /// earlier attempt left), then the signature.
    #[allow(clippy::too_many_arguments)]
    async fn one_target(
        &self,
        info: &TargetInfo,
        url: &Url,
        mirrors: &[Url],
        mirror: usize,
        tmp: &Path,
        file_name: &str,
        trust: Option<&BundleTrust>,
    ) -> Result<(), Failure> {
        let part = self.open_part(info, tmp)?;
        let resumed = part.len > 0;
        match self.fetch_into(info, url, part).await {
            // The kept bytes were not the signed file's (another mirror's, or damaged): they
            // are dropped and this mirror is asked for the whole file once.
            Err(Failure::Tuf(_)) if resumed => {
                remove_part(tmp)?;
                let part = self.open_part(info, tmp)?;
                self.fetch_into(info, url, part).await?;
            }
            r => r?,
        }
        let Some(trust) = trust else {
            return Ok(());
        };
        let sig_name = format!("{}.minisig", info.name);
        // The mirror that served the archive first, then the others.
        let order = std::iter::once(mirror).chain((0..mirrors.len()).filter(|&j| j != mirror));
        let mut last = Failure::SignatureMissing(FetchError::NotFound);
        let data = std::fs::read(tmp).map_err(|e| Failure::Disk(e.to_string()))?;
        for j in order {
            let sig = match get_capped(
                &self.fetch,
                &mirrors[j].join(&sig_name),
                MAX_MINISIG,
                &self.timeouts,
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    if matches!(last, Failure::SignatureMissing(_)) {
                        last = Failure::SignatureMissing(e);
                    }
                    continue;
                }
            };
            match trust.check(&sig, file_name, &data) {
                Ok(commit) => {
                    return self
                        .vouched(info, file_name, &data, &commit, mirrors, mirror, trust)
                        .await
                }
                Err(f) => last = f,
            }
        }
        Err(last)
    }

    /// The builder quorum over a signed archive: `NAME.sha256sums` (the release's published
    /// sums) and `NAME.builders` (its builders' signatures), from the mirror that served the
    /// archive first, then the others.
    #[allow(clippy::too_many_arguments)]
    async fn vouched(
        &self,
        info: &TargetInfo,
        file_name: &str,
        data: &[u8],
        commit: &timb_release::SourceCommit,
        mirrors: &[Url],
        mirror: usize,
        trust: &BundleTrust,
    ) -> Result<(), Failure> {
        let order = std::iter::once(mirror).chain((0..mirrors.len()).filter(|&j| j != mirror));
        let mut last = Failure::VouchMissing(FetchError::NotFound);
        for j in order {
            let (sums_url, sigs_url) = (
                mirrors[j].join(&format!("{}.sha256sums", info.name)),
                mirrors[j].join(&format!("{}.builders", info.name)),
            );
            let fetched = async {
                let sums =
                    get_capped(&self.fetch, &sums_url, MAX_VOUCH_FILE, &self.timeouts).await?;
                let sigs =
                    get_capped(&self.fetch, &sigs_url, MAX_VOUCH_FILE, &self.timeouts).await?;
                Ok::<_, FetchError>((sums, sigs))
            };
            let (sums, signatures) = match fetched.await {
                Ok(f) => f,
                Err(e) => {
                    // A mirror without the files does not hide why another's were refused.
                    if matches!(last, Failure::VouchMissing(_)) {
                        last = Failure::VouchMissing(e);
                    }
                    continue;
                }
            };
            match trust.check_vouched(&sums, &signatures, file_name, data, commit) {
                Ok(()) => return Ok(()),
                Err(f) => last = f,
            }
        }
        Err(last)
    }
}

impl<F: Fetch> Updater<F> {
    /// The `.part` to write into: one an interrupted download left (no longer than the
    /// signed length) is kept and its bytes fed to the verifier, anything else is replaced
    /// by an empty file.
    fn open_part(&self, info: &TargetInfo, tmp: &Path) -> Result<Part, Failure> {
        let disk = |e: std::io::Error| Failure::Disk(e.to_string());
        let mut verifier = info.verifier().map_err(Failure::Tuf)?;
        if let Ok(m) = std::fs::symlink_metadata(tmp) {
            if m.is_file() && m.len() > 0 && m.len() <= info.length {
                self.stop_at("download: resuming the .part file");
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(tmp)
                    .map_err(disk)?;
                let mut buf = vec![0u8; 1 << 16];
                let mut len = 0u64;
                loop {
                    let n = file.read(&mut buf).map_err(disk)?;
                    if n == 0 {
                        break;
                    }
                    verifier.update(&buf[..n]).map_err(Failure::Tuf)?;
                    len += n as u64;
                }
                return Ok(Part {
                    file,
                    verifier,
                    len,
                });
            }
            remove_part(tmp)?;
        }
        self.stop_at("download: creating the .part file");
        let file = create_private_file(tmp).map_err(disk)?;
        Ok(Part {
            file,
            verifier,
            len: 0,
        })
    }

    /// Fetches what `part` lacks from `url` (nothing when it is already complete), checks
    /// the whole against TUF's length and hashes, and fsyncs it.
    async fn fetch_into(&self, info: &TargetInfo, url: &Url, part: Part) -> Result<(), Failure> {
        let disk = |e: std::io::Error| Failure::Disk(e.to_string());
        let Part {
            mut file,
            mut verifier,
            len,
        } = part;
        if len < info.length {
            let mut received = len;
            let mut started = false;
            let sink = |piece: Piece<'_>| -> Result<(), Failure> {
                let chunk = match piece {
                    Piece::Start(at) => {
                        if at != len {
                            // The mirror sent the whole file: start again from its first byte.
                            file.set_len(0).map_err(disk)?;
                            verifier = info.verifier().map_err(Failure::Tuf)?;
                            received = 0;
                        }
                        return Ok(());
                    }
                    Piece::Chunk(c) => c,
                };
                if !started {
                    started = true;
                    self.stop_at("download: writing the first bytes");
                }
                verifier.update(chunk).map_err(Failure::Tuf)?;
                received += chunk.len() as u64;
                if let Some(p) = &self.progress {
                    p(received);
                }
                file.write_all(chunk).map_err(disk)
            };
            get_streaming(&self.fetch, url, len, &self.timeouts, sink)
                .await
                .map_err(Failure::Fetch)??;
        }
        verifier.finish().map_err(Failure::Tuf)?;
        self.stop_at("download: syncing the .part file");
        file.sync_all().map_err(disk)
    }
}

/// A download's `.part` file, open for appending, and the verifier fed with what it holds.
struct Part {
    file: std::fs::File,
    verifier: timb_release::tuf::TargetVerifier,
    len: u64,
}

fn remove_part(tmp: &Path) -> Result<(), Failure> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Failure::Disk(e.to_string())),
        _ => Ok(()),
    }
}

/// A failure after which the bytes already in the `.part` are still worth keeping: the
/// connection broke or stalled, which says nothing against them.
fn keeps_part(f: &Failure) -> bool {
    matches!(
        f,
        Failure::Fetch(
            FetchError::Connect(_)
                | FetchError::Http(_)
                | FetchError::ReadTimeout(_)
                | FetchError::RequestTimeout(_)
                | FetchError::Status(500..=599)
        )
    )
}

fn failure_disk(name: &str, e: &str) -> UpdateError {
    UpdateError::Mirrors {
        file: name.to_string(),
        failures: vec![(0, Failure::Disk(e.to_string()))],
    }
}

/// A target's path split into plain names: never absolute, never `..`, nothing that could
/// leave the download folder.
fn plain_parts(name: &str) -> Result<Vec<&str>, UpdateError> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && !p.contains('\\')
            && !p.contains(':')
            && !p.starts_with('.')
            && !p.bytes().any(|b| b < 0x20)
    });
    if ok {
        Ok(parts)
    } else {
        Err(UpdateError::BadTargetName(name.chars().take(80).collect()))
    }
}

/// At most the listed length, never more than the role's cap.
fn cap(role: RoleName, listed: Option<u64>) -> u64 {
    let max = u64::try_from(role.max_size()).unwrap_or(u64::MAX);
    listed.map_or(max, |l| l.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths_stay_in_the_folder() {
        assert_eq!(plain_parts("a/b.tar.xz").unwrap(), ["a", "b.tar.xz"]);
        for bad in [
            "", "/etc/x", "a/../b", "a//b", "./a", ".hidden", "c:x", "a\\b",
        ] {
            assert!(plain_parts(bad).is_err(), "{bad}");
        }
    }
}
