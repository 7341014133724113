//! The licence allowlist of deny.toml (`[licenses] allow`), applied where
//! cargo-deny cannot look: the C libraries in the bundle, and as a second
//! check on every crate whose licence text goes into the bundle.

use anyhow::{bail, Context, Result};
use std::path::Path;

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

    #[test]
    fn the_repository_allowlist_reads_and_covers_the_c_libraries() {
        let allow = allowlist(&crate::util::repo_root()).unwrap();
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
