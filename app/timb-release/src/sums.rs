//! The sums file published beside a bundle: `sha256sum`'s format, one `<hex>  <name>` line per
//! file, so rebuilders compare it with `sha256sum -c` or by eye.

use crate::sha::{clip, is_plain_file_name, Sha256};
use std::fmt;
use std::str::FromStr;

/// Its file name. "unsigned build": the sums are of the unsigned build output, which every
/// rebuilder reproduces bit for bit; signatures are separate files.
pub const SUMS_FILE: &str = "sha256sums-unsigned-build.txt";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sums {
    entries: Vec<(String, Sha256)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumsError {
    #[error("line {line} of the sums file is not `<64 hex digits>  <file name>`: {text:?}")]
    Malformed { line: usize, text: String },
    #[error("line {line} of the sums file: {source}")]
    Sha256 {
        line: usize,
        source: crate::sha::Sha256Error,
    },
    #[error("{0:?} is listed twice in the sums file")]
    Repeated(String),
    #[error("the sums file must end with a newline")]
    NoFinalNewline,
    #[error("the sums file lists no file")]
    Empty,
    #[error("{0:?} cannot be listed in a sums file (empty, a path, or with spaces or control characters)")]
    FileName(String),
}

fn check_name(name: &str) -> Result<(), SumsError> {
    if is_plain_file_name(name) {
        Ok(())
    } else {
        Err(SumsError::FileName(clip(name)))
    }
}

impl Sums {
    pub fn new() -> Sums {
        Sums::default()
    }

    /// Adds a file; names are file names, not paths, each listed once.
    pub fn add(&mut self, name: &str, sha256: Sha256) -> Result<(), SumsError> {
        check_name(name)?;
        if self.get(name).is_some() {
            return Err(SumsError::Repeated(name.to_string()));
        }
        self.entries.push((name.to_string(), sha256));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Sha256> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// The entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sha256)> {
        self.entries.iter().map(|(n, s)| (n.as_str(), s))
    }
}

impl FromStr for Sums {
    type Err = SumsError;

    fn from_str(text: &str) -> Result<Sums, SumsError> {
        if text.is_empty() {
            return Err(SumsError::Empty);
        }
        let body = text.strip_suffix('\n').ok_or(SumsError::NoFinalNewline)?;
        let mut sums = Sums::new();
        for (i, l) in body.split('\n').enumerate() {
            let line = i + 1;
            let malformed = || SumsError::Malformed {
                line,
                text: clip(l),
            };
            let (hex, name) = l.split_once("  ").ok_or_else(malformed)?;
            let sha = hex
                .parse()
                .map_err(|source| SumsError::Sha256 { line, source })?;
            check_name(name).map_err(|_| malformed())?;
            sums.add(name, sha)?;
        }
        Ok(sums)
    }
}

impl fmt::Display for Sums {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, sha) in &self.entries {
            writeln!(f, "{sha}  {name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn writes_sha256sum_lines_and_round_trips() {
        let mut s = Sums::new();
        s.add("timb-0.1.0-linux-x86_64.tar.xz", SHA.parse().unwrap())
            .unwrap();
        let text = s.to_string();
        assert_eq!(text, format!("{SHA}  timb-0.1.0-linux-x86_64.tar.xz\n"));
        let back: Sums = text.parse().unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.get("timb-0.1.0-linux-x86_64.tar.xz")
                .map(ToString::to_string),
            Some(SHA.to_string())
        );
        s.add("b.zip", Sha256::of(b"")).unwrap();
        assert_eq!(s.to_string().parse::<Sums>().unwrap(), s);
    }

    #[test]
    fn rejections_say_why() {
        let cases = [
            ("", "no file"),
            (&format!("{SHA}  a") as &str, "newline"),
            (&format!("{SHA} a\n"), "line 1"),
            (&format!("{SHA}  a\n{SHA}  a\n"), "twice"),
            (&format!("{SHA}  a\n\n"), "line 2"),
            (&format!("{}  a\n", SHA.to_uppercase()), "sha256"),
            (&format!("{SHA}  dir/a\n"), "line 1"),
            (&format!("{SHA}  a b\n"), "line 1"),
            (&format!("{SHA}  \n"), "line 1"),
            ("\u{0}\n", "line 1"),
        ];
        for (text, want) in cases {
            let e = text.parse::<Sums>().unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
        assert!(Sums::new().add("a/b", Sha256::of(b"")).is_err());
        // The same names as a signed comment: none longer than a file system allows.
        assert!(Sums::new().add(&"a".repeat(256), Sha256::of(b"")).is_err());
        assert!(Sums::new().add(&"a".repeat(255), Sha256::of(b"")).is_ok());
    }
}
