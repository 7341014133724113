//! The bundle's licence collection (`LICENSES/THIRD-PARTY.txt`: every crate compiled in and
//! the C libraries linked in, with their licence texts) and the licence allowlist of
//! deny.toml (`[licenses] allow`), applied where cargo-deny cannot look: the C libraries in
//! the bundle, and as a second check on every crate whose licence text goes into the bundle.

use anyhow::{bail, Context, Result};
use pipeline::util;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The SPDX identifiers deny.toml allows.
pub fn allowlist(root: &Path) -> Result<Vec<String>> {
    let path = root.join("deny.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let allow = doc
        .get("licenses")
        .and_then(|l| l.get("allow"))
        .and_then(|a| a.as_array())
        .with_context(|| format!("{}: no [licenses] allow list", path.display()))?;
    allow
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{}: [licenses] allow must be strings", path.display()))
}

/// Fails unless the SPDX expression `expr` (of `what`) can be satisfied with
/// allowed licences only: one side of an `OR`, both sides of an `AND`.
pub fn check(what: &str, expr: &str, allow: &[String]) -> Result<()> {
    let tokens = tokenize(expr);
    let mut pos = 0;
    let ok = parse_or(&tokens, &mut pos, allow)
        .with_context(|| format!("{what}: cannot read the licence expression '{expr}'"))?;
    if pos != tokens.len() {
        bail!("{what}: cannot read the licence expression '{expr}'");
    }
    if !ok {
        bail!(
            "{what}: licence '{expr}' is not in deny.toml's allowlist of licences that can ship \
             under GPL-3.0-or-later"
        );
    }
    Ok(())
}

fn tokenize(expr: &str) -> Vec<String> {
    expr.replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ") // the old crates.io "MIT/Apache-2.0" form
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn parse_or(t: &[String], pos: &mut usize, allow: &[String]) -> Result<bool> {
    let mut ok = parse_and(t, pos, allow)?;
    while t.get(*pos).map(String::as_str) == Some("OR") {
        *pos += 1;
        ok |= parse_and(t, pos, allow)?;
    }
    Ok(ok)
}

fn parse_and(t: &[String], pos: &mut usize, allow: &[String]) -> Result<bool> {
    let mut ok = parse_one(t, pos, allow)?;
    while t.get(*pos).map(String::as_str) == Some("AND") {
        *pos += 1;
        ok &= parse_one(t, pos, allow)?;
    }
    Ok(ok)
}

fn parse_one(t: &[String], pos: &mut usize, allow: &[String]) -> Result<bool> {
    let tok = t.get(*pos).context("expression ends early")?.clone();
    *pos += 1;
    if tok == "(" {
        let ok = parse_or(t, pos, allow)?;
        if t.get(*pos).map(String::as_str) != Some(")") {
            bail!("unbalanced parenthesis");
        }
        *pos += 1;
        return Ok(ok);
    }
    if matches!(tok.as_str(), ")" | "OR" | "AND" | "WITH") {
        bail!("unexpected '{tok}'");
    }
    let mut id = tok;
    if t.get(*pos).map(String::as_str) == Some("WITH") {
        let exception = t.get(*pos + 1).context("WITH without an exception")?;
        id = format!("{id} WITH {exception}");
        *pos += 2;
    }
    Ok(allow.contains(&id))
}

/// The C libraries libotr-sys links statically into timb: a heading, the
/// pinned archive (see rbm-projects/libotr.toml and the definitions it takes
/// as input) and the files to quote from it.
const C_LIBRARIES: &[(&str, &str, &[&str])] = &[
    (
        "libotr 4.1.1 (LGPL-2.1-or-later)",
        "libotr_4.1.1.orig.tar.gz",
        &["libotr-4.1.1/COPYING.LIB", "libotr-4.1.1/AUTHORS"],
    ),
    (
        "libgcrypt 1.10.1 with Debian's 1.10.1-3+deb12u1 patches (LGPL-2.1-or-later)",
        "libgcrypt20_1.10.1.orig.tar.bz2",
        &[
            "libgcrypt-1.10.1/COPYING.LIB",
            "libgcrypt-1.10.1/LICENSES",
            "libgcrypt-1.10.1/AUTHORS",
        ],
    ),
    (
        "libgpg-error 1.46 (LGPL-2.1-or-later)",
        "libgpg-error_1.46.orig.tar.bz2",
        &["libgpg-error-1.46/COPYING.LIB", "libgpg-error-1.46/AUTHORS"],
    ),
];

/// The licence texts of the C libraries, read from their pinned archives
/// (hash-checked again here), for the LGPL's notice requirement.
pub fn c_library_licences(root: &Path) -> Result<String> {
    let pins = pins::sources(root, "timb")?;
    let dir = util::sources_dir(root);
    let mut text = String::from(
        "\n==============================================================================\nC libraries compiled statically into timb from source (app/libotr-sys).\nTheir source archives are pinned by sha256 in rbm-projects/libotr.toml,\nlibgcrypt.toml and libgpg-error.toml.\n",
    );
    let allow = allowlist(root)?;
    for (title, archive, members) in C_LIBRARIES {
        let spdx = title
            .rsplit_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'))
            .with_context(|| format!("{title}: no (licence) in its title"))?;
        check(title, spdx, &allow)?;
        let pin = pins.get(archive).with_context(|| {
            format!("{archive} is not among the sources of rbm-projects/timb.toml")
        })?;
        let path = dir.join(archive);
        if util::sha256_file(&path)? != pin.sha256 {
            bail!("{} does not match its pinned sha256", path.display());
        }
        text.push_str(&format!(
            "\n==============================================================================\n{title}\n"
        ));
        for m in *members {
            let body = util::output(Command::new("tar").arg("-xOf").arg(&path).arg(m))
                .with_context(|| format!("reading {m} from {archive}"))?;
            text.push_str(&format!("\n--- {m}\n\n{body}"));
            if !body.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// The licence texts of every crate compiled into `package` for `triple`,
/// identical texts printed once with the list of crates they cover.
pub fn third_party_licences(root: &Path, package: &str, triple: &str) -> Result<String> {
    let json = util::output(util::cargo().current_dir(root).args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
        "--filter-platform",
        triple,
    ]))?;
    let meta: serde_json::Value = serde_json::from_str(&json).context("parsing cargo metadata")?;
    let packages: BTreeMap<&str, &serde_json::Value> = meta["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    // Ours: the workspace's members. A patched crate in third_party/ has no source either,
    // and its licence is shipped like any other third-party crate's.
    let ours: std::collections::BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .context("cargo metadata has no workspace members")?
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let start = packages
        .iter()
        .find(|(id, p)| p["name"] == package && ours.contains(*id))
        .map(|(id, _)| *id)
        .with_context(|| format!("package {package} not found"))?;
    // Walk normal (not build or dev) dependencies: what ends up in the binary.
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in nodes[id]["deps"].as_array().into_iter().flatten() {
            let normal = d["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if normal {
                if let Some(pkg) = d["pkg"].as_str() {
                    todo.push(pkg);
                }
            }
        }
    }
    let allow = allowlist(root)?;
    let mut by_text: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut summary = String::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for id in &seen {
        let p = packages[id];
        if ours.contains(id) {
            continue; // our own crates: GPL-3.0-or-later, LICENSE at the top
        }
        let name = format!(
            "{} {}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?")
        );
        // No expression, or one outside deny.toml's allowlist, fails the bundle.
        let expr = p["license"]
            .as_str()
            .with_context(|| format!("{name}: no licence expression in its Cargo.toml"))?
            .to_string();
        check(&name, &expr, &allow)?;
        rows.push((name.clone(), expr));
        let dir = Path::new(p["manifest_path"].as_str().unwrap_or(""))
            .parent()
            .map(Path::to_path_buf);
        let mut texts = Vec::new();
        if let Some(dir) = dir {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                let fname = f
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if ["LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE"]
                    .iter()
                    .any(|pre| fname.starts_with(pre))
                    && f.is_file()
                {
                    if let Ok(t) = std::fs::read_to_string(&f) {
                        texts.push(t);
                    }
                }
            }
        }
        for t in texts {
            by_text.entry(t).or_default().push(name.clone());
        }
    }
    rows.sort();
    summary.push_str("Third-party software compiled into timb, with its licence expression.\n");
    summary.push_str("timb itself is GPL-3.0-or-later (see LICENSE). The full licence texts\n");
    summary.push_str("shipped by these packages follow the list.\n\n");
    for (n, e) in &rows {
        summary.push_str(&format!("{n}: {e}\n"));
    }
    let mut texts: Vec<_> = by_text.into_iter().collect();
    texts.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    for (text, users) in texts {
        summary.push_str(
            "\n==============================================================================\n",
        );
        summary.push_str(&format!("Used by: {}\n\n", users.join(", ")));
        summary.push_str(&text);
        if !text.ends_with('\n') {
            summary.push('\n');
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        [
            "MIT",
            "Apache-2.0",
            "Apache-2.0 WITH LLVM-exception",
            "GPL-3.0-only",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Needs the pinned archives (`cargo xtask fetch`, which `cargo xtask test` runs first).
    #[test]
    fn bundle_carries_the_c_libraries_licences() {
        let text = c_library_licences(&util::repo_root()).unwrap();
        assert!(
            text.matches("GNU LESSER GENERAL PUBLIC LICENSE").count() >= 3,
            "{}",
            &text[..text.len().min(2000)]
        );
        for lib in ["libotr 4.1.1", "libgcrypt 1.10.1", "libgpg-error 1.46"] {
            assert!(text.contains(lib), "{lib} missing");
        }
    }

    #[test]
    fn the_repository_allowlist_reads_and_covers_the_c_libraries() {
        let allow = allowlist(&util::repo_root()).unwrap();
        assert!(allow.iter().any(|a| a == "GPL-3.0-or-later"));
        check("libotr", "LGPL-2.1-or-later", &allow).unwrap();
    }

    #[test]
    fn expressions() {
        let a = allow();
        check("x", "MIT", &a).unwrap();
        check("x", "MIT OR Apache-2.0", &a).unwrap();
        check("x", "MIT/Apache-2.0", &a).unwrap();
        check("x", "Apache-2.0 WITH LLVM-exception OR MIT", &a).unwrap();
        check("x", "(MIT OR Proprietary) AND Apache-2.0", &a).unwrap();
        check(
            "slint",
            "GPL-3.0-only OR LicenseRef-Slint-Royalty-free-2.0",
            &a,
        )
        .unwrap();
        let e = check("x", "SSPL-1.0", &a).unwrap_err().to_string();
        assert!(e.contains("not in deny.toml's allowlist"), "{e}");
        check("x", "MIT AND SSPL-1.0", &a).unwrap_err();
        check("x", "Apache-2.0 WITH Commons-Clause", &a).unwrap_err();
        check("x", "(MIT", &a).unwrap_err();
        check("x", "", &a).unwrap_err();
        check("x", "MIT OR", &a).unwrap_err();
    }
}
