//! A real prosody on 127.0.0.1: TLS required, STARTTLS and direct-TLS ports, a MUC
//! component, users registered with `prosodyctl`, a certificate from a throwaway CA pinned by
//! [`Prosody::policy`].

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use timb_tls::test_ca::{Leaf, TestCa};
use timb_tls::{PinSet, TlsPolicy};

use crate::{free_port, wait_listening};

/// The XMPP domain every test server serves.
pub const DOMAIN: &str = "timb.test";
/// Its multi-user chat component.
pub const MUC: &str = "muc.timb.test";

pub struct Prosody {
    child: Child,
    pub dir: tempfile::TempDir,
    /// The STARTTLS port (TLS still required before authentication).
    pub c2s_port: u16,
    /// The first direct-TLS port.
    pub tls_port: u16,
    pub leaf: Leaf,
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Debugging aid: keep the server log when asked.
        if let Some(dst) = std::env::var_os("TIMB_XMPP_KEEP_LOG") {
            let _ = std::fs::copy(self.log_path(), dst);
        }
    }
}

impl Prosody {
    /// On free ports, with the given users registered.
    pub fn start(users: &[(&str, &str)]) -> Prosody {
        Prosody::start_on(users, free_port(), &[free_port()])
    }

    /// STARTTLS on `c2s_port`, direct TLS on every port of `tls_ports` (the first is
    /// `tls_port`): lets tests bind the ports the Tor test network's exits allow.
    pub fn start_on(users: &[(&str, &str)], c2s_port: u16, tls_ports: &[u16]) -> Prosody {
        Prosody::start_custom(users, c2s_port, tls_ports, "smacks_hibernation_time = 120")
    }

    /// With extra global configuration lines.
    pub fn start_custom(
        users: &[(&str, &str)],
        c2s_port: u16,
        tls_ports: &[u16],
        extra: &str,
    ) -> Prosody {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let leaf = TestCa::new("timb test CA").issue(&[DOMAIN, MUC]);
        std::fs::write(d.join("cert.pem"), &leaf.cert_pem).expect("write cert");
        std::fs::write(d.join("key.pem"), &leaf.key_pem).expect("write key");
        std::fs::create_dir_all(d.join("data")).expect("data dir");
        std::fs::create_dir_all(d.join("certs")).expect("certs dir");
        let tls_port = tls_ports[0];
        let tls_list = tls_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let p = |n: &str| d.join(n).display().to_string();
        let cfg = format!(
            r#"
run_as_root = true
pidfile = "{pid}"
data_path = "{data}"
certificates = "{certs}"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{log}" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{ {tls_list} }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
{extra}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "smacks", "posix", "version", "time", "uptime", "register" }}
modules_disabled = {{ "s2s" }}
ssl = {{ certificate = "{cert}", key = "{key}" }}
VirtualHost "{DOMAIN}"
Component "{MUC}" "muc"
"#,
            pid = p("prosody.pid"),
            data = p("data"),
            certs = p("certs"),
            log = p("prosody.log"),
            cert = p("cert.pem"),
            key = p("key.pem"),
        );
        let cfg_path = d.join("prosody.cfg.lua");
        std::fs::write(&cfg_path, cfg).expect("write prosody config");
        for (u, pw) in users {
            let st = Command::new("prosodyctl")
                .arg("--config")
                .arg(&cfg_path)
                .args(["register", u, DOMAIN, pw])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run prosodyctl (Debian package prosody)");
            assert!(st.success(), "prosodyctl register {u} failed");
        }
        let child = Command::new("prosody")
            .arg("--config")
            .arg(&cfg_path)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prosody");
        let pr = Prosody {
            child,
            dir,
            c2s_port,
            tls_port,
            leaf,
        };
        // Direct TLS ports come up with the c2s ones.
        let every = Duration::from_millis(100);
        if !(wait_listening(c2s_port, 200, every) && wait_listening(tls_port, 200, every)) {
            panic!("prosody did not start; log: {}", pr.log());
        }
        pr
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The server's leaf key pinned for [`DOMAIN`].
    pub fn policy(&self) -> TlsPolicy {
        TlsPolicy::Pinned(PinSet::leaf(DOMAIN, [self.leaf.spki_sha256()]))
    }
}
