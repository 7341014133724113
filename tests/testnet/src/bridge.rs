//! A bridge for the private network: a c-tor relay with `BridgeRelay 1` that publishes
//! nothing (so it is in no consensus), reached through an obfs4 listener run by Debian's
//! `obfs4proxy`, an implementation independent of the lyrebird the bundle ships.
//!
//! Started by a test beside a running network ([`crate::TestNet::start_bridge`]); it
//! stops when dropped, or when the test process dies.

use crate::procs::{self, Daemon};
use crate::{fingerprint_file, mkdir, ports::PortBlock, torrc, Error, NetInfo};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where Debian installs the obfs4 server (and client) program.
pub const OBFS4PROXY: &str = "/usr/bin/obfs4proxy";

/// A running bridge.
pub struct Bridge {
    /// The bridge line a client is given: `obfs4 IP:PORT FINGERPRINT cert=… iat-mode=0`.
    pub line: String,
    /// The obfs4 listener's port (on the address it was asked to listen on).
    pub obfs4_port: u16,
    /// The bridge's own ORPort on 127.0.0.1 (which a censored client cannot reach).
    pub or_port: u16,
    daemons: Vec<Daemon>,
    _ports: PortBlock,
    dir: PathBuf,
}

impl Bridge {
    /// Starts a bridge for the network `info` describes, its obfs4 listener on `listen`,
    /// and waits until it has the consensus (so it can extend a client's circuits) and its
    /// obfs4 line is written.
    pub(crate) fn start(
        info: &NetInfo,
        tor: &Path,
        listen: IpAddr,
        timeout: Duration,
    ) -> Result<Bridge, Error> {
        let ports = PortBlock::reserve()?;
        let (or_port, obfs4_port) = (ports.port(0), ports.port(1));
        let dir = std::env::temp_dir().join(format!(
            "timb-testnet-bridge-{}-{:x}",
            std::process::id(),
            crate::nanos()
        ));
        mkdir(&dir)?;
        let auth: Vec<torrc::AuthorityLine> = info
            .authorities
            .iter()
            .map(|a| torrc::AuthorityLine {
                nickname: a.nickname.clone(),
                or_port: a.or_port,
                dir_port: a.dir_port,
                v3ident: a.v3ident.clone(),
                rsa_identity: a.rsa_identity.clone(),
            })
            .collect();
        let resolv = dir.join("resolv.conf");
        let empty = dir.join("empty.torrc");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n")
            .and_then(|()| std::fs::write(&empty, ""))
            .map_err(|e| Error::new(format!("writing into {}: {e}", dir.display())))?;
        let mut text = torrc::common(&dir, "bridge", &auth);
        text.push_str(&torrc::relay(or_port, "bridge", &resolv));
        text.push_str(&torrc::bridge(OBFS4PROXY, listen, obfs4_port));
        let torrc_path = dir.join("torrc");
        std::fs::write(&torrc_path, text)
            .map_err(|e| Error::new(format!("writing {}: {e}", torrc_path.display())))?;
        let mut ports = ports;
        ports.release_ports();
        let mut cmd = Command::new(tor);
        cmd.arg("-f")
            .arg(&torrc_path)
            .arg("--defaults-torrc")
            .arg(&empty);
        let child = crate::run_to_completion(cmd, "tor (bridge)", &dir.join("stderr.log"))?;
        let mut bridge = Bridge {
            line: String::new(),
            obfs4_port,
            or_port,
            daemons: vec![Daemon {
                name: "bridge".into(),
                dir: dir.clone(),
                child,
            }],
            _ports: ports,
            dir,
        };
        let deadline = Instant::now() + timeout;
        let line_file = bridge.dir.join("pt_state/obfs4_bridgeline.txt");
        loop {
            if let Some(status) = bridge.daemons[0].exited() {
                return Err(Error::new(format!(
                    "tor (bridge) exited: {status}\n{}",
                    bridge.daemons[0].log_tail(20)
                )));
            }
            let log = std::fs::read_to_string(bridge.daemons[0].log_path()).unwrap_or_default();
            let ready = log.contains("Bootstrapped 100%");
            if ready && line_file.is_file() && bridge.dir.join("fingerprint").is_file() {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::new(format!(
                    "the bridge was not ready within {timeout:?}\n{}",
                    bridge.daemons[0].log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let template = std::fs::read_to_string(&line_file)
            .map_err(|e| Error::new(format!("reading {}: {e}", line_file.display())))?;
        let fingerprint = fingerprint_file(&bridge.dir.join("fingerprint"))?;
        bridge.line = bridge_line(&template, listen, obfs4_port, &fingerprint)?;
        Ok(bridge)
    }

    /// The bridge's data directory (its logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        procs::shutdown(&mut self.daemons, Duration::from_secs(2));
        if std::env::var_os(crate::ENV_KEEP).is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The client's line from obfs4proxy's template (`Bridge obfs4 <IP ADDRESS>:<PORT>
/// <FINGERPRINT> cert=… iat-mode=0`, after comments that name the placeholders).
fn bridge_line(
    template: &str,
    listen: IpAddr,
    port: u16,
    fingerprint: &str,
) -> Result<String, Error> {
    let t = template
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Bridge obfs4 "))
        .ok_or_else(|| Error::new(format!("no bridge line in {template:?}")))?;
    let addr = std::net::SocketAddr::new(listen, port);
    let line = t
        .trim()
        .trim_start_matches("Bridge ")
        .replace("<IP ADDRESS>:<PORT>", &addr.to_string())
        .replace("<FINGERPRINT>", fingerprint);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_filled_in_from_tors_template() {
        let template = "# obfs4 torrc client bridge line\n#  <FINGERPRINT> - The bridge's fingerprint.\n\nBridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=abc+/d iat-mode=0\n";
        let line = bridge_line(
            template,
            "10.200.0.1".parse().unwrap(),
            10_001,
            "0123456789ABCDEF0123456789ABCDEF01234567",
        )
        .unwrap();
        assert_eq!(
            line,
            "obfs4 10.200.0.1:10001 0123456789ABCDEF0123456789ABCDEF01234567 cert=abc+/d iat-mode=0"
        );
        assert!(bridge_line("nothing", "127.0.0.1".parse().unwrap(), 1, "F").is_err());
    }
}
