//! The updater's network and verification costs on the private Tor network, as a Markdown
//! table (`cargo xtask bench update`): a refresh from an empty store and the download of a
//! 16 MiB target through arti from the "update" onion service (the app's `TorFetcher`, on
//! its own isolation), the same bytes through a c-tor client's SOCKS port, and the
//! verifier's hashing next to `sha256sum` on the same file. Only the onion path is measured:
//! the app fetches plain HTTP only from `.onion` mirrors, and the private network has no
//! HTTPS server with a web-PKI certificate behind its exit.

#[path = "../tests/support/repo.rs"]
mod repo;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use repo::tuf_repo::{self, Repo, BUNDLE};
use repo::{publish, BundleKey, Server};
use timb_release::tuf::{names, TrustedSet};
use timb_testnet::{socks5_connect, CtorClient, TestNet};
use timb_tor::{BootstrapProgress, TorConfig, Transport};
use timb_update::{Store, TorFetcher, Updater, Url};

const RUNS: usize = 5;
const SIZE: usize = 16 << 20;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib_s(bytes: usize, d: Duration) -> String {
    format!(
        "{:.1} MiB/s",
        bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
    )
}

/// `GET path` through c-tor's SOCKS port; the whole response.
fn ctor_get(socks: u16, host: &str, path: &str) -> Result<(usize, Duration), String> {
    let start = Instant::now();
    let mut s = socks5_connect(socks, host, 80).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    Ok((all.len(), start.elapsed()))
}

fn main() {
    let net = TestNet::shared();
    let svc = net
        .info()
        .onion_service("update")
        .expect("the update onion service")
        .clone();
    let tmp = tempfile::tempdir().expect("tempdir");
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = repo::noise(SIZE);
    let mut repo = Repo::new();
    repo.add_target(
        BUNDLE,
        &data,
        tuf_repo::timb("0.2.0", "linux-x86_64", "stable"),
    );
    let key = BundleKey::new(tmp.path(), "bundle");
    let files = repo.files();
    publish(&www.join("m1"), &repo, &files, &[(BUNDLE, &data)], &key);
    let _server = Server::start_on(&www, svc.target_port);
    let set: TrustedSet = files.trusted();
    let info = set.target(BUNDLE).expect("target");
    let target_path = format!("/m1/targets/{}", names::target(true, &info).remove(0));
    let base = format!("http://{}/m1/", svc.onion);
    let metadata = Url::parse(&format!("{base}metadata/")).expect("url");
    let targets = Url::parse(&format!("{base}targets/")).expect("url");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (refreshes, downloads) = rt.block_on(async {
        let config = TorConfig::private_network(net.config_path(), &tmp.path().join("arti"))
            .expect("config");
        let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
        let t = Transport::bootstrap(config, tx)
            .await
            .expect("arti bootstrap");
        let (mut refreshes, mut downloads) = (Vec::new(), Vec::new());
        for run in 0..=RUNS {
            let dir = tmp.path().join(format!("store-{run}"));
            let store = Store::open(&dir).expect("store");
            store
                .write(timb_release::tuf::RoleName::Root, &files.root)
                .expect("root");
            // A new fetcher each run: new isolation, new circuits, as each app check has.
            let u = Updater::new(store, TorFetcher::new(t.clone()), vec![metadata.clone()]);
            let start = Instant::now();
            let set = u.refresh().await.expect("refresh");
            let refreshed = start.elapsed();
            let start = Instant::now();
            u.download(
                &set,
                BUNDLE,
                std::slice::from_ref(&targets),
                &dir.join("out"),
            )
            .await
            .expect("download");
            // Run 0 warms the descriptor cache and guards; it is not counted.
            if run > 0 {
                refreshes.push(refreshed);
                downloads.push(start.elapsed());
            }
        }
        (refreshes, downloads)
    });

    let ctor = CtorClient::start(net, &tmp.path().join("ctor"));
    let ctor_download = ctor.as_ref().map_err(Clone::clone).and_then(|c| {
        let _ = ctor_get(c.socks_port, &svc.onion, &target_path)?;
        let mut v = Vec::new();
        for _ in 0..RUNS {
            let (n, d) = ctor_get(c.socks_port, &svc.onion, &target_path)?;
            if n < SIZE {
                return Err(format!("short response: {n} bytes"));
            }
            v.push(d);
        }
        Ok(median(v))
    });

    let file = tmp.path().join("target.bin");
    std::fs::write(&file, &data).expect("write");
    let verify = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let bytes = std::fs::read(&file).expect("read");
                let mut v = info.verifier().expect("verifier");
                for chunk in bytes.chunks(64 * 1024) {
                    v.update(chunk).expect("update");
                }
                v.finish().expect("hash matches");
                start.elapsed()
            })
            .collect(),
    );
    let sha256sum = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let ok = std::process::Command::new("sha256sum")
                    .arg(&file)
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                assert!(ok, "sha256sum failed");
                start.elapsed()
            })
            .collect(),
    );

    let show = |r: &Result<Duration, String>| match r {
        Ok(d) => format!("{} ({})", ms(*d), mib_s(SIZE, *d)),
        Err(e) => format!("failed: {e}"),
    };
    println!("| updater over the private Tor network (median of {RUNS}, after one warm-up) | timb (arti, `TorFetcher`) | baseline |");
    println!("|---|---|---|");
    println!(
        "| refresh from an empty store (timestamp, snapshot, targets) from the onion mirror | {} | — |",
        ms(median(refreshes))
    );
    println!(
        "| download of a 16 MiB target from the onion mirror | {} | c-tor SOCKS, same bytes: {} |",
        show(&Ok(median(downloads))),
        show(&ctor_download)
    );
    println!(
        "| verify 16 MiB (read + TUF length and sha256) | {} ({}) | `sha256sum`: {} ({}) |",
        ms(verify),
        mib_s(SIZE, verify),
        ms(sha256sum),
        mib_s(SIZE, sha256sum)
    );
    drop(ctor);
}
