//! A c-tor client on the private network: the baseline the benchmarks hold arti to.

use crate::TestNet;
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running c-tor client; killed on drop.
pub struct CtorClient {
    child: Child,
    /// Its SOCKS port on 127.0.0.1.
    pub socks_port: u16,
    /// Its control port on 127.0.0.1 (no authentication: loopback, a test's own tor).
    pub control_port: u16,
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
        Self::start_with(net, dir, "")
    }

    /// [`Self::start`] with more torrc lines (e.g. `LongLivedPorts 5222`).
    pub fn start_with(net: &TestNet, dir: &Path, extra_torrc: &str) -> Result<CtorClient, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let info = net.info();
        // Both listeners held until both ports are known, so they differ.
        let listen = || TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string());
        let (a, b) = (listen()?, listen()?);
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
        let (socks, control) = (port(&a)?, port(&b)?);
        drop((a, b));
        let mut torrc = format!(
            "TestingTorNetwork 1\nDataDirectory {d}\nSocksPort 127.0.0.1:{socks}\nLog notice stdout\n\
             ControlPort 127.0.0.1:{control}\n\
             UseDefaultFallbackDirs 0\nAddressDisableIPv6 1\nClientUseIPv6 0\n\
             OutboundBindAddress 127.0.0.1\nLearnCircuitBuildTimeout 0\nCircuitBuildTimeout 60\n\
             PathsNeededToBuildCircuits 0.67\nShutdownWaitLength 0\n",
            d = dir.display()
        );
        torrc.push_str(extra_torrc);
        torrc.push('\n');
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
            control_port: control,
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

/// Control-port events of a [`CtorClient`], each with when it arrived.
pub struct ControlEvents {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl ControlEvents {
    /// The events received so far, emptied.
    pub fn take(&self) -> Vec<(Instant, String)> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl CtorClient {
    /// Subscribes to `events` (control-spec names, e.g. `HS_DESC CIRC CIRC_MINOR`) and
    /// records them as they arrive, from a thread that ends with the client.
    #[allow(clippy::disallowed_methods)] // Harness only: the control port of a tor it started on 127.0.0.1.
    pub fn watch(&self, events: &str) -> Result<ControlEvents, String> {
        let mut conn =
            TcpStream::connect(("127.0.0.1", self.control_port)).map_err(|e| e.to_string())?;
        conn.write_all(format!("AUTHENTICATE\r\nSETEVENTS {events}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
        // The two replies first, so that no event of the caller's next step is missed;
        // a tor that does not answer fails the caller instead of hanging it.
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        for what in ["AUTHENTICATE", "SETEVENTS"] {
            let mut reply = String::new();
            reader.read_line(&mut reply).map_err(|e| e.to_string())?;
            if !reply.starts_with("250") {
                return Err(format!("c-tor refused {what}: {}", reply.trim_end()));
            }
        }
        conn.set_read_timeout(None).map_err(|e| e.to_string())?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            let _keep = conn;
            for line in reader.lines().map_while(Result::ok) {
                if let Some(event) = line.strip_prefix("650 ") {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((Instant::now(), event.to_owned()));
                }
            }
        });
        Ok(ControlEvents { lines })
    }
}
