//! A c-tor client on the private network: the baseline the benchmarks hold arti to.

use crate::TestNet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running c-tor client; killed on drop.
pub struct CtorClient {
    child: Child,
    /// Its SOCKS port on 127.0.0.1.
    pub socks_port: u16,
    /// From start to "Bootstrapped 100%".
    pub bootstrap: Duration,
}

impl Drop for CtorClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CtorClient {
    /// Starts a fresh client with its data in `dir` (created owner-only, as tor demands)
    /// and waits for it to bootstrap, at most 180 s.
    pub fn start(net: &TestNet, dir: &Path) -> Result<CtorClient, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let info = net.info();
        let socks = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut torrc = format!(
            "TestingTorNetwork 1\nDataDirectory {d}\nSocksPort 127.0.0.1:{socks}\nLog notice stdout\n\
             UseDefaultFallbackDirs 0\nAddressDisableIPv6 1\nClientUseIPv6 0\n\
             OutboundBindAddress 127.0.0.1\nLearnCircuitBuildTimeout 0\nCircuitBuildTimeout 60\n\
             PathsNeededToBuildCircuits 0.67\nShutdownWaitLength 0\n",
            d = dir.display()
        );
        for a in &info.authorities {
            torrc.push_str(&format!(
                "DirAuthority {} orport={} no-v2 v3ident={} {}:{} {}\n",
                a.nickname, a.or_port, a.v3ident, a.address, a.dir_port, a.rsa_identity
            ));
        }
        let rc = dir.join("torrc");
        std::fs::write(&rc, torrc).map_err(|e| e.to_string())?;
        let tor = ["/usr/bin/tor", "/usr/sbin/tor"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("tor is not installed")?;
        let start = Instant::now();
        let mut child = Command::new(tor)
            .arg("-f")
            .arg(&rc)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut client = CtorClient {
            child,
            socks_port: socks,
            bootstrap: Duration::ZERO,
        };
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if line.contains("Bootstrapped 100%") {
                client.bootstrap = start.elapsed();
                return Ok(client);
            }
            if start.elapsed() > Duration::from_secs(180) {
                break;
            }
        }
        Err("c-tor did not bootstrap".into())
    }
}
