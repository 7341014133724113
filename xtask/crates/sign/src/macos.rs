//! macOS code signatures through rcodesign (the `apple-codesign` crate, built by the
//! pipeline): ad hoc by default, which is all an unnotarized bundle needs to run on Apple
//! silicon once the user allows it; a Developer ID certificate and notarization when a
//! release gives its credentials. As for Authenticode, the bundle's trust comes from
//! minisign. An ad-hoc signature is a function of the code alone, so `verify` signs its
//! rebuild ad hoc and compares the signed bytes; a Developer ID release is judged on the
//! unsigned build (`sha256sums-unsigned-build.txt`).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Who signs.
pub enum Identity {
    /// No certificate: the signature only seals the code (rcodesign's default).
    AdHoc,
    /// A Developer ID Application certificate and its key, PEM files.
    Pem { cert: PathBuf, key: PathBuf },
    /// The same in a PKCS#12 file (Keychain's export), its password in a file.
    P12 {
        file: PathBuf,
        password_file: PathBuf,
    },
}

/// rcodesign with an identity.
pub struct MacSigner {
    pub rcodesign: PathBuf,
    pub identity: Identity,
    /// Ask Apple's time-stamp server (notarization requires a secure timestamp). Off for
    /// tests and for ad-hoc signatures, which carry none.
    pub timestamp: bool,
}

impl MacSigner {
    /// Signs the `.app` folder in place (its executable and `Contents/_CodeSignature/`).
    pub fn sign_app(&self, app: &Path) -> Result<()> {
        let mut c = Command::new(&self.rcodesign);
        c.arg("sign");
        match &self.identity {
            Identity::AdHoc => {}
            Identity::Pem { cert, key } => {
                c.arg("--pem-file").arg(cert).arg("--pem-file").arg(key);
                // The hardened runtime: notarization refuses code without it.
                c.args(["--code-signature-flags", "runtime"]);
            }
            Identity::P12 {
                file,
                password_file,
            } => {
                c.arg("--p12-file").arg(file);
                c.arg("--p12-password-file").arg(password_file);
                c.args(["--code-signature-flags", "runtime"]);
            }
        }
        if !self.timestamp {
            c.args(["--timestamp-url", "none"]);
        }
        run(c.arg(app), "rcodesign sign")
    }

    /// Submits `zip` to Apple's notary service and waits for its verdict, then staples the
    /// ticket to each `.app` (done by the caller, which unpacks them again). Needs an
    /// rcodesign built with its `notarize` feature and App Store Connect API key JSON
    /// (`rcodesign encode-app-store-connect-api-key`). Not tested: the service is Apple's.
    pub fn notarize(&self, zip: &Path, api_key: &Path) -> Result<()> {
        if matches!(self.identity, Identity::AdHoc) {
            bail!("notarization needs a Developer ID signature, not an ad-hoc one");
        }
        let help = Command::new(&self.rcodesign)
            .arg("--help")
            .output()
            .context("running rcodesign")?;
        if !String::from_utf8_lossy(&help.stdout).contains("notary-submit") {
            bail!(
                "{} was built without its `notarize` feature: build apple-codesign with its \
                 default features to notarize",
                self.rcodesign.display()
            );
        }
        let mut c = Command::new(&self.rcodesign);
        c.args(["notary-submit", "--wait", "--api-key-file"])
            .arg(api_key)
            .arg(zip);
        run(&mut c, "rcodesign notary-submit")
    }

    /// Attaches the notarization ticket to a signed, notarized `.app`.
    pub fn staple(&self, app: &Path) -> Result<()> {
        let mut c = Command::new(&self.rcodesign);
        run(c.arg("staple").arg(app), "rcodesign staple")
    }
}

fn run(c: &mut Command, what: &str) -> Result<()> {
    let out = c.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
