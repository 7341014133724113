//! A real ngircd on 127.0.0.1: plain text on one or more ports, TLS on another, with a
//! certificate for [`IRC_HOST`] and 127.0.0.1 from a throwaway CA.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use timb_tls::test_ca::{Leaf, TestCa};
use timb_tls::{PinSet, TlsPolicy};

use crate::{free_port, wait_listening};

/// The IRC server's name and the name in its certificate.
pub const IRC_HOST: &str = "irc.test";

/// A test CA and a server certificate it issued, as PEM and DER.
pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub leaf: Leaf,
    pub server_cert_pem: String,
    pub server_cert_der: Vec<u8>,
    pub server_key_pem: String,
}

impl TestPki {
    /// A new CA and a leaf for [`IRC_HOST`] and 127.0.0.1.
    pub fn new() -> TestPki {
        let ca = TestCa::new("timb test CA");
        let leaf = ca.issue(&[IRC_HOST, "127.0.0.1"]);
        TestPki {
            ca_pem: ca.cert_pem.clone(),
            ca_der: ca.cert_der.to_vec(),
            server_cert_pem: leaf.cert_pem.clone(),
            server_cert_der: leaf.cert_der.to_vec(),
            server_key_pem: leaf.key_pem.clone(),
            leaf,
        }
    }
}

impl Default for TestPki {
    fn default() -> TestPki {
        TestPki::new()
    }
}

pub struct Ngircd {
    child: Child,
    /// The first plain-text port.
    pub port: u16,
    pub tls_port: u16,
    pub pki: TestPki,
    _dir: tempfile::TempDir,
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ngircd {
    /// On free ports.
    pub fn start() -> Ngircd {
        Ngircd::start_on(&[free_port()], free_port())
    }

    /// Plain text on every port in `plain` (the first is `port`), TLS on `tls_port`: lets
    /// tests bind the ports the Tor test network routes.
    pub fn start_on(plain: &[u16], tls_port: u16) -> Ngircd {
        let plain_list = plain
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let pki = TestPki::new();
        std::fs::write(d.join("cert.pem"), &pki.server_cert_pem).expect("write cert");
        std::fs::write(d.join("key.pem"), &pki.server_key_pem).expect("write key");
        std::fs::create_dir(d.join("conf.d")).expect("conf.d");
        // ngircd may drop to "nobody" when started as root.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                .expect("chmod the server folder");
        }
        let conf = format!(
            "[Global]\nName = {IRC_HOST}\nInfo = timb test server\nListen = 127.0.0.1\n\
             Ports = {plain_list}\nMotdPhrase = test\nAdminInfo1 = test\nAdminInfo2 = test\nAdminEMail = t@irc.test\n\
             [Limits]\nMaxNickLength = 30\nPingTimeout = 120\nPongTimeout = 60\nMaxConnectionsIP = 0\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\nIncludeDir = {inc}\n\
             [SSL]\nCertFile = {cert}\nKeyFile = {key}\nPorts = {tls_port}\n",
            inc = d.join("conf.d").display(),
            cert = d.join("cert.pem").display(),
            key = d.join("key.pem").display(),
        );
        let conf_path = d.join("ngircd.conf");
        std::fs::write(&conf_path, conf).expect("write ngircd.conf");
        let child = Command::new("/usr/sbin/ngircd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/ngircd (Debian package ngircd)");
        let server = Ngircd {
            child,
            port: plain[0],
            tls_port,
            pki,
            _dir: dir,
        };
        for &p in plain.iter().chain([&tls_port]) {
            assert!(
                wait_listening(p, 200, Duration::from_millis(50)),
                "ngircd did not start listening on {p}"
            );
        }
        server
    }

    /// The server's leaf key pinned for [`IRC_HOST`].
    pub fn policy(&self) -> TlsPolicy {
        TlsPolicy::Pinned(PinSet::leaf(IRC_HOST, [self.pki.leaf.spki_sha256()]))
    }
}
