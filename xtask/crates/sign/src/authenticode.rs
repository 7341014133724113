//! Authenticode signatures over the Windows exes, through Debian's `osslsigncode`.
//!
//! Windows shows a signed exe's publisher and SmartScreen weighs it; the bundle's trust still
//! comes from minisign over the archive (what `verify` and the updater check). A release gives
//! its code-signing certificate and key (PEM); without one, a development certificate is made
//! once with `openssl` and kept beside the development minisign key, its subject saying loudly
//! that it is not a release. Signing time and the signature are not reproducible, so
//! reproducibility is judged on the unsigned exe: [`strip`] gives it back byte for byte
//! (package's `pe::canonical_unsigned` writes exes in that form).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The development certificate's subject: seen in Windows' file properties.
pub const DEV_SUBJECT: &str = "/CN=timb LOCAL DEVELOPMENT code signing - NOT A RELEASE";

/// A certificate and its private key, both PEM files.
pub struct CodeSigner {
    pub cert: PathBuf,
    key: PathBuf,
    pub dev: bool,
}

/// The development code-signing certificate, made on first use.
pub fn dev_code_signer(target_dir: &Path) -> Result<CodeSigner> {
    let dir = crate::dev_key_dir(target_dir);
    let cert = dir.join("timb-dev-codesign.crt");
    let key = dir.join("timb-dev-codesign.key");
    if !cert.is_file() || !key.is_file() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir)?;
        // openssl writes the key with the umask's mode: the folder keeps it to this user.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "3650",
            ])
            .args(["-subj", DEV_SUBJECT])
            .args(["-addext", "extendedKeyUsage=codeSigning"])
            .args(["-addext", "keyUsage=digitalSignature"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .context("running openssl (Debian package openssl) for the development certificate")?;
        if !out.status.success() {
            bail!(
                "openssl could not make the development code-signing certificate: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(CodeSigner {
        cert,
        key,
        dev: true,
    })
}

/// A release certificate and key given by the release engineer.
pub fn release_code_signer(cert: &Path, key: &Path) -> Result<CodeSigner> {
    for f in [cert, key] {
        if !f.is_file() {
            bail!("{} does not exist", f.display());
        }
    }
    Ok(CodeSigner {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        dev: false,
    })
}

impl CodeSigner {
    /// Signs `exe` (SHA-256, the program name shown by Windows) into `out`. No timestamp:
    /// the build has no network (a release that wants its signature to outlive the
    /// certificate timestamps it later, outside the build).
    pub fn sign(&self, exe: &Path, out: &Path) -> Result<()> {
        let _ = std::fs::remove_file(out);
        osslsigncode(
            Command::new("osslsigncode")
                .arg("sign")
                .arg("-certs")
                .arg(&self.cert)
                .arg("-key")
                .arg(&self.key)
                .args(["-h", "sha256", "-n", "timb"])
                .arg("-in")
                .arg(exe)
                .arg("-out")
                .arg(out),
        )
        .with_context(|| format!("signing {}", exe.display()))
    }
}

/// Removes the signature of `exe` into `out`: the unsigned exe the build wrote.
pub fn strip(exe: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    osslsigncode(
        Command::new("osslsigncode")
            .arg("remove-signature")
            .arg("-in")
            .arg(exe)
            .arg("-out")
            .arg(out),
    )
    .with_context(|| format!("removing the signature of {}", exe.display()))
}

/// Checks the signature of `exe` against the certificate `ca` (a self-signed one is its
/// own CA). An exe changed after signing fails.
pub fn verify(exe: &Path, ca: &Path) -> Result<()> {
    osslsigncode(
        Command::new("osslsigncode")
            .arg("verify")
            .arg("-CAfile")
            .arg(ca)
            .arg("-in")
            .arg(exe),
    )
    .with_context(|| {
        format!(
            "the Authenticode signature of {} does not verify",
            exe.display()
        )
    })
}

fn osslsigncode(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .context("running osslsigncode (Debian package osslsigncode)")?;
    if !out.status.success() {
        bail!(
            "osslsigncode: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
