//! A TUF repository the updater's tests serve: a real HTTP/1.1 server on loopback over a
//! folder (ranges, endless, stalling and cut files on demand), minisign-signed bundles, and
//! archives in a bundle's shape. Included by the update-client tests and the window's update
//! test (app/timb/tests/gui_update.rs), so it names no binary of either.
// Each includer uses part of it.
#![allow(dead_code)]

#[path = "../../../../app/timb-release/tests/common/tuf_repo.rs"]
pub mod tuf_repo;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use timb_release::tuf::{names, TrustedSet};
use timb_release::{PublicKey, Sha256, SourceCommit, Target, TrustedComment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tuf_repo::{Files, Repo};

/// A loopback HTTP server over `root`, answering `Range: bytes=N-` with 206. Paths in
/// `endless` stream zeros forever; paths in `stall` send headers and then nothing; a path in
/// `cut` has its connection closed after that many body bytes (once, then it is removed).
/// Every request is logged as `PATH` or `PATH from N`. Dropping it closes its port (and
/// every connection it still serves), so the next server can take the same port.
pub struct Server {
    pub port: u16,
    pub root: PathBuf,
    pub endless: Arc<Mutex<HashSet<String>>>,
    pub stall: Arc<Mutex<HashSet<String>>>,
    pub switches: Arc<Switches>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A listener on 127.0.0.1:`port` (0: any free port). A fixed port (a Tor exit's) was
/// often held a moment ago by the previous test world's server on the same port: a CI run
/// once found it still in use right after that server's thread had ended, so an address
/// in use is tried again for up to 5 s before it is an error.
fn bind_retrying(port: u16) -> std::net::TcpListener {
    let mut tries = 0;
    loop {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("binding 127.0.0.1:{port}: {e}"),
        }
    }
}

/// What the tests change on a running [`Server`].
#[derive(Default)]
pub struct Switches {
    pub cut: Mutex<BTreeMap<String, usize>>,
    pub log: Mutex<Vec<String>>,
    /// Answer every request with the whole file (200), as a server without ranges does.
    pub ignore_ranges: std::sync::atomic::AtomicBool,
}

impl Server {
    /// The requests logged for paths ending in `suffix`, and the log cleared.
    pub fn take_log(&self, suffix: &str) -> Vec<String> {
        let mut log = self.switches.log.lock().unwrap();
        let all = std::mem::take(&mut *log);
        all.into_iter()
            .filter(|l| l.split(' ').next().is_some_and(|p| p.ends_with(suffix)))
            .collect()
    }
}

impl Server {
    pub fn start(root: &Path) -> Server {
        Server::start_on(root, 0)
    }

    /// On a given loopback port (an onion service's target); 0 picks a free one.
    pub fn start_on(root: &Path, port: u16) -> Server {
        Server::start_wrapped(root, port, |sock| async move { Some(sock) })
    }

    /// [`Server::start_on`] with each accepted connection first passed through `wrap` (a TLS
    /// handshake, say); a connection `wrap` gives up on is dropped.
    pub fn start_wrapped<F, Fut, S>(root: &Path, port: u16, wrap: F) -> Server
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<S>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let wrap = Arc::new(wrap);
        let listener = bind_retrying(port);
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let endless = Arc::new(Mutex::new(HashSet::new()));
        let stall = Arc::new(Mutex::new(HashSet::new()));
        let switches = Arc::new(Switches::default());
        let (r, e, s) = (root.to_path_buf(), endless.clone(), stall.clone());
        let sw = switches.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                // Until the server is dropped (looked at every 50 ms); then the runtime,
                // the listener and the connections still served go with this thread.
                while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    let accepted =
                        tokio::time::timeout(std::time::Duration::from_millis(50), l.accept())
                            .await;
                    let Ok(accepted) = accepted else { continue };
                    let (sock, _) = accepted.unwrap();
                    let (r, e, s, sw, wrap) =
                        (r.clone(), e.clone(), s.clone(), sw.clone(), wrap.clone());
                    tokio::spawn(async move {
                        if let Some(sock) = wrap(sock).await {
                            serve(sock, r, e, s, sw).await;
                        }
                    });
                }
            });
        });
        Server {
            port,
            root: root.to_path_buf(),
            endless,
            stall,
            switches,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }
}

fn decode(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut sock: S,
    root: PathBuf,
    endless: Arc<Mutex<HashSet<String>>>,
    stall: Arc<Mutex<HashSet<String>>>,
    switches: Arc<Switches>,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req);
    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
    let path = decode(&path);
    if endless.lock().unwrap().contains(&path) {
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .await;
        let zeros = vec![b'0'; 65536];
        while sock.write_all(&zeros).await.is_ok() {}
        return;
    }
    if stall.lock().unwrap().contains(&path) {
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            .await;
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return;
    }
    let from = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("range")
                .then(|| v.trim().to_string())
        })
        .and_then(|v| {
            v.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        });
    switches.log.lock().unwrap().push(match from {
        Some(n) => format!("{path} from {n}"),
        None => path.clone(),
    });
    let from = from.filter(|_| {
        !switches
            .ignore_ranges
            .load(std::sync::atomic::Ordering::SeqCst)
    });
    let file = root.join(path.trim_start_matches('/'));
    let body = if path.contains("..") {
        None
    } else {
        std::fs::read(&file).ok()
    };
    let cut = switches.cut.lock().unwrap().remove(&path);
    let _ = match body {
        Some(b) if from.is_some_and(|n| n >= b.len()) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                b.len()
            );
            sock.write_all(head.as_bytes()).await
        }
        Some(b) => {
            let (head, part) = match from {
                Some(n) => (
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len() - 1,
                        b.len(),
                        b.len() - n
                    ),
                    &b[n..],
                ),
                None => (
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    ),
                    &b[..],
                ),
            };
            let _ = sock.write_all(head.as_bytes()).await;
            match cut {
                // The connection breaks after `k` bytes of a body announced whole.
                Some(k) => {
                    let _ = sock.write_all(&part[..k.min(part.len())]).await;
                    let _ = sock.flush().await;
                    return;
                }
                None => sock.write_all(part).await,
            }
        }
        None => {
            sock.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await
        }
    };
    let _ = sock.shutdown().await;
}

/// The commit the test bundles say they were built from, and their builders vouch for.
pub const TEST_COMMIT: &str = "abababababababababababababababababababab";

/// A minisign key pair for bundles, with its public file and a policy listing it, and three
/// builders' keys the policy lists under `[builders]` with threshold 2 (two vouch for each
/// release `publish` writes).
pub struct BundleKey {
    kp: minisign::KeyPair,
    pub pub_file: PathBuf,
    pub policy_file: PathBuf,
    pub builders: Vec<(String, minisign::KeyPair)>,
    /// The bundle key's public file, then each builder's.
    pub pub_files: Vec<PathBuf>,
}

fn public_text(kp: &minisign::KeyPair) -> String {
    kp.pk.to_box().unwrap().to_string()
}

impl BundleKey {
    pub fn new(dir: &Path, name: &str) -> BundleKey {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let text = public_text(&kp);
        let id = PublicKey::parse(&text).unwrap().id();
        let pub_file = dir.join(format!("{name}.pub"));
        std::fs::write(&pub_file, &text).unwrap();
        let mut pub_files = vec![pub_file.clone()];
        let mut builders = Vec::new();
        let mut builder_ids = Vec::new();
        for b in ["builder-a", "builder-b", "builder-c"] {
            let bkp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
            let text = public_text(&bkp);
            builder_ids.push(format!("\"{}\"", PublicKey::parse(&text).unwrap().id()));
            let file = dir.join(format!("{name}-{b}.pub"));
            std::fs::write(&file, &text).unwrap();
            pub_files.push(file);
            builders.push((b.to_string(), bkp));
        }
        let policy_file = dir.join(format!("{name}-policy.toml"));
        std::fs::write(
            &policy_file,
            format!(
                "[bundle]\nkeys = [\"{id}\"]\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = [{}]\nthreshold = 2\n",
                builder_ids.join(", ")
            ),
        )
        .unwrap();
        BundleKey {
            kp,
            pub_file,
            policy_file,
            builders,
            pub_files,
        }
    }

    /// The bundle key and the builders' keys.
    pub fn keyring(&self) -> timb_release::Keyring {
        let mut keys = timb_release::Keyring::new();
        for f in &self.pub_files {
            let text = std::fs::read_to_string(f).unwrap();
            keys.add(PublicKey::parse(&text).unwrap(), f.display().to_string());
        }
        keys
    }

    /// The `.minisig` text of a release signature over archive `name`.
    pub fn sign(&self, name: &str, data: &[u8]) -> String {
        let (version, target) = Target::parse_archive_name(name).unwrap();
        let comment = TrustedComment::new(
            name,
            version,
            target,
            Sha256::of(data),
            SourceCommit::Exact(TEST_COMMIT.into()),
            false,
        )
        .unwrap()
        .to_string();
        minisign::sign(Some(&self.kp.pk), &self.kp.sk, data, Some(&comment), None)
            .unwrap()
            .to_string()
    }

    /// A release's published sums over `bundles` (file name, bytes), and the `.builders`
    /// file of the signatures of the builders numbered `by` (0 to 2) over it.
    pub fn vouch(&self, bundles: &[(&str, &[u8])], by: &[usize]) -> (Vec<u8>, String) {
        use timb_release::builders::{join_signatures, BuilderComment, PUBLISHED_SUMS_FILE};
        let mut sums = timb_release::Sums::new();
        for (name, data) in bundles {
            sums.add(name, Sha256::of(data)).unwrap();
        }
        let sums = sums.to_string().into_bytes();
        let version = Target::parse_archive_name(bundles[0].0).unwrap().0;
        let sigs: Vec<String> = by
            .iter()
            .map(|&i| {
                let (name, kp) = &self.builders[i];
                let comment = BuilderComment::new(
                    name,
                    version.clone(),
                    &SourceCommit::Exact(TEST_COMMIT.into()),
                    PUBLISHED_SUMS_FILE,
                    Sha256::of(&sums),
                )
                .unwrap()
                .to_string();
                minisign::sign(Some(&kp.pk), &kp.sk, sums.as_slice(), Some(&comment), None)
                    .unwrap()
                    .to_string()
            })
            .collect();
        (sums, join_signatures(&sigs))
    }
}

/// Writes `files` as the repository at `dir`: `metadata/` (root by version, timestamp,
/// snapshot and targets by consistent name) and `targets/` (each of `bundles` under its
/// hash, with `NAME.minisig` beside it by `key`, and `NAME.sha256sums` and `NAME.builders`
/// vouched for by two of its builders).
pub fn publish(dir: &Path, repo: &Repo, files: &Files, bundles: &[(&str, &[u8])], key: &BundleKey) {
    let meta = dir.join("metadata");
    let targets = dir.join("targets");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::write(meta.join(names::root(repo.root_version)), &files.root).unwrap();
    std::fs::write(meta.join(names::TIMESTAMP), &files.timestamp).unwrap();
    std::fs::write(
        meta.join(names::snapshot(true, repo.snapshot_version)),
        &files.snapshot,
    )
    .unwrap();
    std::fs::write(
        meta.join(names::targets(true, repo.targets_version)),
        &files.targets,
    )
    .unwrap();
    let set: TrustedSet = files.trusted();
    for (name, data) in bundles {
        let info = set.target(name).unwrap();
        for p in names::target(true, &info) {
            std::fs::write(targets.join(p), data).unwrap();
        }
        let file = name.rsplit('/').next().unwrap();
        std::fs::write(
            targets.join(format!("{name}.minisig")),
            key.sign(file, data),
        )
        .unwrap();
        // Two of the three builders vouch for it.
        let (sums, builders) = key.vouch(&[(file, data)], &[0, 1]);
        std::fs::write(targets.join(format!("{name}.sha256sums")), sums).unwrap();
        std::fs::write(targets.join(format!("{name}.builders")), builders).unwrap();
    }
}

/// One entry of a test archive, written with raw header bytes so that hostile names and
/// types (which `tar::Builder` refuses to write) can be made.
#[derive(Clone, Copy)]
pub struct Ent<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    /// The size the header announces (defaults to the data's).
    pub size: Option<u64>,
    pub link: &'a str,
}

pub fn ent<'a>(path: &'a str, data: &'a [u8]) -> Ent<'a> {
    Ent {
        path,
        kind: tar::EntryType::Regular,
        data,
        size: None,
        link: "",
    }
}

pub fn dir(path: &str) -> Ent<'_> {
    Ent {
        kind: tar::EntryType::Directory,
        ..ent(path, b"")
    }
}

pub fn tar_xz(entries: &[Ent]) -> Vec<u8> {
    let mut raw = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..e.path.len()].copy_from_slice(e.path.as_bytes());
            gnu.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
            if e.kind == tar::EntryType::GNUSparse {
                // A 10 GB file whose one stored byte sits at its end.
                let octal = |v: u64, f: &mut [u8; 12]| {
                    f.copy_from_slice(format!("{v:012o}").as_bytes());
                };
                octal(10 << 30, &mut gnu.realsize);
                octal((10 << 30) - 1, &mut gnu.sparse[0].offset);
                octal(e.data.len() as u64, &mut gnu.sparse[0].numbytes);
            }
        }
        h.set_entry_type(e.kind);
        h.set_mode(if e.path.ends_with("/timb") {
            0o755
        } else {
            0o644
        });
        h.set_size(e.size.unwrap_or(e.data.len() as u64));
        h.set_mtime(1);
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(e.data);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
    }
    raw.resize(raw.len() + 1024, 0);
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    std::io::Write::write_all(&mut xz, &raw).unwrap();
    xz.finish().unwrap()
}

pub fn script(version: &str) -> String {
    format!("#!/bin/sh\necho \"timb {version} $*\"\n")
}

/// A real bundle's shape for `version`, plus `extra` entries, handed to `pack`.
fn bundle_with(version: &str, extra: &[Ent], pack: fn(&[Ent]) -> Vec<u8>) -> Vec<u8> {
    let top = format!("timb-{version}-linux-x86_64");
    let exe = script(version);
    let names = [
        format!("{top}/"),
        format!("{top}/timb"),
        format!("{top}/app/"),
        format!("{top}/app/current"),
        format!("{top}/app/{version}/"),
        format!("{top}/app/{version}/timb"),
        format!("{top}/app/{version}/LICENSES/THIRD-PARTY.txt"),
        format!("{top}/profile/"),
    ];
    let current = format!("{version}\n");
    let mut e = vec![
        dir(&names[0]),
        ent(&names[1], b"launcher"),
        dir(&names[2]),
        ent(&names[3], current.as_bytes()),
        dir(&names[4]),
        ent(&names[5], exe.as_bytes()),
        ent(&names[6], b"licences"),
        dir(&names[7]),
    ];
    e.extend(extra.iter().copied());
    pack(&e)
}

/// A real bundle's shape for `version` as a `.tar.xz`, plus `extra` entries.
pub fn bundle_archive(version: &str, extra: &[Ent]) -> Vec<u8> {
    bundle_with(version, extra, tar_xz)
}

/// The same as a `.zip`, the Windows bundle's format.
pub fn bundle_zip(version: &str, extra: &[Ent]) -> Vec<u8> {
    bundle_with(version, extra, zip_of)
}

/// `entries` as the pipeline writes a zip (folders as entries, files deflated, Unix modes
/// kept); a `Symlink` entry becomes a zip symbolic link. Other kinds have no zip form.
pub fn zip_of(entries: &[Ent]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for e in entries {
        let mode = if e.path.ends_with("/timb") {
            0o755
        } else {
            0o644
        };
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        match e.kind {
            tar::EntryType::Directory => z.add_directory(e.path, opts).unwrap(),
            tar::EntryType::Symlink => z.add_symlink(e.path, e.link, opts).unwrap(),
            tar::EntryType::Regular => {
                z.start_file(e.path, opts).unwrap();
                std::io::Write::write_all(&mut z, e.data).unwrap();
            }
            other => panic!("no zip form for {other:?}"),
        }
    }
    z.finish().unwrap().into_inner()
}

/// `len` deterministic bytes that neither compress nor repeat (xorshift): a prefix from the
/// wrong offset cannot pass a hash, and xz-like sizes are kept.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every file of the store folder and its bytes.
pub fn store_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}
