//! `cargo xtask bundle [--key FILE] [--out DIR]`: the signed bundle.

use anyhow::{bail, Result};
use pipeline::util;
use std::path::{Path, PathBuf};
use timb_release::{SignatureKind, SourceCommit, TrustedComment};

/// Builds, signs, then checks the signatures as `verify` and the updater will.
pub fn run(root: &Path, key: Option<&Path>, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| root.join("out").join("bundle"));
    // A release key the policy does not list is refused here, before the build.
    let signer = match key {
        Some(k) => sign::release_signer(root, k)?,
        None => sign::dev_signer(&util::cargo_target_dir(root))?,
    };
    let u = super::build_unsigned::run(root, &out, 1, 4)?;
    util::stage(4, 4, &format!("signing with key {}", signer.key_id()));
    let commit = match util::git_commit(root) {
        Some((c, false)) => c.parse()?,
        Some((c, true)) => format!("{c}-modified").parse()?,
        None => SourceCommit::Unknown,
    };
    for file in [&u.archive, &u.sums] {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let comment = TrustedComment::new(
            name,
            u.version.clone(),
            u.target,
            util::sha256_file(file)?.parse()?,
            commit.clone(),
            signer.dev,
        )?;
        let sig = signer.sign_file(file, &comment)?;
        eprintln!("    {}", sig.display());
    }
    // What `verify` and the updater will check, checked now: a release key's bundle must pass
    // as a release, the development key's as a development bundle.
    let (policy, mut keys) = sign::repository_trust(root)?;
    if signer.dev {
        keys.add(
            sign::read_checking_key(&sign::dev_public_key_path(&util::cargo_target_dir(root)))?,
            "LOCAL DEVELOPMENT key",
        );
    }
    for file in [&u.archive, &u.sums] {
        let checked = sign::check_signature(file, &keys, &policy)?;
        let want = if signer.dev {
            SignatureKind::Development
        } else {
            SignatureKind::Release
        };
        if checked.kind() != want {
            bail!("{} did not check as a {want:?} signature", file.display());
        }
    }
    println!("{}", u.archive.display());
    if signer.dev {
        let pubkey = sign::dev_public_key_path(&util::cargo_target_dir(root));
        eprintln!(
            "\n\x1b[1;31m!!! This bundle is signed with a LOCAL DEVELOPMENT KEY ({}), not a release key.\n!!! Public key: {}\n!!! Do not publish it. Release builds pass --key.\x1b[0m",
            signer.key_id(),
            pubkey.display()
        );
    }
    Ok(())
}
