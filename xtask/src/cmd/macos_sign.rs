//! `cargo xtask macos-sign ZIP --out OUT [identity]`: the `.app`s in a macOS bundle's zip
//! signed with rcodesign (ad hoc unless a Developer ID is given), optionally notarized, and
//! checked. `bundle` runs the same on a Mac before the minisign signatures; a release
//! engineer can run it alone on a machine that holds the certificate.

use anyhow::{bail, Context, Result};
use sign::macos::{Identity, MacSigner};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Opts {
    /// The macOS bundle (or launcher-only) zip
    #[arg(value_name = "ZIP")]
    pub zip: PathBuf,
    /// Where the signed zip goes
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// A Developer ID Application certificate (PEM) [default: ad hoc]
    #[arg(
        long,
        value_name = "FILE",
        requires = "pem_key",
        conflicts_with = "p12"
    )]
    pub pem_cert: Option<PathBuf>,
    /// Its private key (PEM)
    #[arg(long, value_name = "FILE", requires = "pem_cert")]
    pub pem_key: Option<PathBuf>,
    /// The certificate and key as PKCS#12 (password from TIMB_MACOS_P12_PASSWORD)
    #[arg(long, value_name = "FILE")]
    pub p12: Option<PathBuf>,
    /// Notarize with this App Store Connect API key (JSON), then staple [needs Apple's service]
    #[arg(long, value_name = "FILE")]
    pub notarize_api_key: Option<PathBuf>,
    /// No secure timestamp from Apple's server (offline tests; notarization needs one)
    #[arg(long)]
    pub no_timestamp: bool,
}

/// The variable holding the PKCS#12 file's password.
pub const P12_PASSWORD_ENV: &str = "TIMB_MACOS_P12_PASSWORD";

/// Signs `o.zip` into `o.out`.
pub fn run(root: &Path, o: &Opts) -> Result<()> {
    // First, so that nothing (the PKCS#12 password file) is written before a failure here.
    let rcodesign = rcodesign(root, o.notarize_api_key.is_some())?;
    let work = o.out.with_extension("signing");
    pipeline::util::remove_dir(&work)?;
    std::fs::create_dir_all(&work)?;
    let identity = match (&o.pem_cert, &o.pem_key, &o.p12) {
        (Some(cert), Some(key), None) => Identity::Pem {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, None, Some(file)) => {
            let password = std::env::var(P12_PASSWORD_ENV)
                .with_context(|| format!("--p12 needs its password in {P12_PASSWORD_ENV}"))?;
            let password_file = work.join("p12-password");
            sign::write_private(&password_file, password.as_bytes())?;
            Identity::P12 {
                file: file.clone(),
                password_file,
            }
        }
        (None, None, None) => Identity::AdHoc,
        _ => bail!("give --pem-cert with --pem-key, or --p12, or neither (ad hoc)"),
    };
    let adhoc = matches!(identity, Identity::AdHoc);
    let signer = MacSigner {
        rcodesign,
        identity,
        timestamp: !adhoc && !o.no_timestamp,
    };
    let result = sign_zip(
        &signer,
        &o.zip,
        &o.out,
        &work,
        o.notarize_api_key.as_deref(),
    );
    // The password file goes whatever happened; the signing's own failure is the one told.
    let removed = pipeline::util::remove_dir(&work);
    result?;
    removed
}

/// Signs every `.app` in `zip` into `out`, notarizes and staples when asked, then checks
/// each executable's signature with our Mach-O reader.
pub fn sign_zip(
    signer: &MacSigner,
    zip: &Path,
    out: &Path,
    work: &Path,
    notarize: Option<&Path>,
) -> Result<()> {
    let n = package::archive::sign_apps_in_zip(zip, out, &work.join("unpacked"), |app| {
        signer.sign_app(app)
    })?;
    if n == 0 {
        bail!("{} holds no .app to sign", zip.display());
    }
    if let Some(key) = notarize {
        signer.notarize(out, key)?;
        let stapled = work.join("stapled.zip");
        package::archive::sign_apps_in_zip(out, &stapled, &work.join("unpacked"), |app| {
            signer.staple(app)
        })?;
        std::fs::rename(&stapled, out)?;
    }
    let adhoc = matches!(signer.identity, Identity::AdHoc);
    let mut checked = 0;
    for (path, data) in package::archive::read_zip(out)? {
        if !path.contains(".app/Contents/MacOS/") {
            continue;
        }
        let m = package::macho::parse(&data).with_context(|| path.clone())?;
        let sig = m
            .signature
            .with_context(|| format!("{path} carries no code signature"))?;
        if sig.is_adhoc() != adhoc || sig.identifier != package::macos::BUNDLE_ID {
            bail!("{path} is not signed as asked: {sig:?}");
        }
        checked += 1;
    }
    if checked < n {
        bail!("{n} .app folders but {checked} signed executables");
    }
    Ok(())
}

/// rcodesign: `TIMB_RCODESIGN`, or built once from crates.io (with its `notarize` feature
/// only when notarizing: it adds an AWS client).
pub(crate) fn rcodesign(root: &Path, notarize: bool) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(super::test::RCODESIGN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let args: &[&str] = if notarize {
        &[]
    } else {
        super::test::RCODESIGN_ARGS
    };
    super::test::install_crate_tool(
        root,
        "apple-codesign",
        super::test::RCODESIGN_VERSION,
        "rcodesign",
        args,
    )
}
