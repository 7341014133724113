//! The trusted comment: the one line a minisign signature covers besides the file.
//!
//! `timb file:<name> version:<v> target:<t> sha256:<hex> commit:<c> [key:DEVELOPMENT-KEY-NOT-FOR-RELEASE]`
//!
//! Binding the name and the version means a genuine bundle renamed to pass for another version,
//! or a signature moved to another file, fails the check. The writer ([`fmt::Display`]) always
//! produces the fields in this order, one space apart; the parser accepts them in any order but
//! refuses unknown, repeated or missing fields.

use crate::sha::{clip, is_plain_file_name, Sha256};
use crate::target::{Target, Version};
use std::fmt;
use std::str::FromStr;

/// The word a development signature carries as `key:`; the stock `minisign` tool prints it,
/// so a person checking by hand sees it too.
pub const DEVELOPMENT_KEY_MARK: &str = "DEVELOPMENT-KEY-NOT-FOR-RELEASE";

/// Which source a file was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCommit {
    /// A clean checkout of this commit (40 or 64 lowercase hex digits).
    Exact(String),
    /// This commit with uncommitted changes: written `<commit>-modified`.
    Modified(String),
    /// No git history (written `unknown`).
    Unknown,
}

impl SourceCommit {
    /// The commit a rebuilder can check out, if the tree was clean.
    pub fn exact(&self) -> Option<&str> {
        match self {
            SourceCommit::Exact(c) => Some(c),
            _ => None,
        }
    }
}

fn is_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for SourceCommit {
    type Err = CommentError;

    fn from_str(s: &str) -> Result<SourceCommit, CommentError> {
        if s == "unknown" {
            return Ok(SourceCommit::Unknown);
        }
        if is_commit(s) {
            return Ok(SourceCommit::Exact(s.to_string()));
        }
        match s.strip_suffix("-modified") {
            Some(c) if is_commit(c) => Ok(SourceCommit::Modified(c.to_string())),
            _ => Err(CommentError::Commit(clip(s))),
        }
    }
}

impl fmt::Display for SourceCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceCommit::Exact(c) => f.write_str(c),
            SourceCommit::Modified(c) => write!(f, "{c}-modified"),
            SourceCommit::Unknown => f.write_str("unknown"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommentError {
    #[error("the signed comment is not a timb comment (it must start with \"{kind} \"): {text:?}")]
    NotTimb { kind: &'static str, text: String },
    #[error("malformed field {0:?} in the signed comment (fields are key:value)")]
    Malformed(String),
    #[error("field {0} appears twice in the signed comment")]
    Repeated(String),
    #[error("unknown field {0:?} in the signed comment")]
    UnknownField(String),
    #[error("the signed comment has no {0} field")]
    Missing(&'static str),
    #[error(
        "file name {0:?} cannot be signed (empty, a path, or with spaces or control characters)"
    )]
    FileName(String),
    #[error("in the signed comment: {0}")]
    Version(#[from] crate::target::VersionError),
    #[error("in the signed comment: {0}")]
    Target(#[from] crate::target::TargetError),
    #[error("in the signed comment: {0}")]
    Sha256(#[from] crate::sha::Sha256Error),
    #[error(
        "commit {0:?} in the signed comment is neither a git commit, <commit>-modified nor unknown"
    )]
    Commit(String),
    #[error("key:{0} in the signed comment: the only key mark is {DEVELOPMENT_KEY_MARK}")]
    KeyMark(String),
}

/// What a signature says about the file it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedComment {
    file: String,
    version: Version,
    target: Target,
    sha256: Sha256,
    commit: SourceCommit,
    development: bool,
}

fn check_file_name(name: &str) -> Result<(), CommentError> {
    if is_plain_file_name(name) {
        Ok(())
    } else {
        Err(CommentError::FileName(clip(name)))
    }
}

impl TrustedComment {
    /// A comment for the file named `file` (a name, not a path). `development` marks a
    /// signature by a development key.
    pub fn new(
        file: &str,
        version: Version,
        target: Target,
        sha256: Sha256,
        commit: SourceCommit,
        development: bool,
    ) -> Result<TrustedComment, CommentError> {
        check_file_name(file)?;
        Ok(TrustedComment {
            file: file.to_string(),
            version,
            target,
            sha256,
            commit,
            development,
        })
    }

    pub fn file(&self) -> &str {
        &self.file
    }
    pub fn version(&self) -> &Version {
        &self.version
    }
    pub fn target(&self) -> Target {
        self.target
    }
    pub fn sha256(&self) -> &Sha256 {
        &self.sha256
    }
    pub fn commit(&self) -> &SourceCommit {
        &self.commit
    }
    /// Whether the signature says it was made with a development key.
    pub fn is_development(&self) -> bool {
        self.development
    }
}

/// The `key:value` words of a one-line signed comment that starts with `kind`, in the order
/// of `names`: each at most once, no other, the same rules for every comment timb signs.
pub(crate) fn fields<'a, const N: usize>(
    c: &'a str,
    kind: &'static str,
    names: [&'static str; N],
) -> Result<[Option<&'a str>; N], CommentError> {
    // A comment is one line; `split_whitespace` would otherwise accept a newline.
    if c.chars().any(|ch| ch.is_control()) {
        return Err(CommentError::Malformed(clip(c)));
    }
    let mut words = c.split(' ');
    if words.next() != Some(kind) {
        return Err(CommentError::NotTimb {
            kind,
            text: clip(c),
        });
    }
    let mut out = [None; N];
    for w in words {
        let (k, v) = w
            .split_once(':')
            .ok_or_else(|| CommentError::Malformed(clip(w)))?;
        let i = names
            .iter()
            .position(|n| *n == k)
            .ok_or_else(|| CommentError::UnknownField(clip(k)))?;
        if out[i].replace(v).is_some() {
            return Err(CommentError::Repeated(k.to_string()));
        }
    }
    Ok(out)
}

impl FromStr for TrustedComment {
    type Err = CommentError;

    fn from_str(c: &str) -> Result<TrustedComment, CommentError> {
        let [file, version, target, sha256, commit, key] = fields(
            c,
            "timb",
            ["file", "version", "target", "sha256", "commit", "key"],
        )?;
        let file = file.ok_or(CommentError::Missing("file"))?;
        let version = version.ok_or(CommentError::Missing("version"))?.parse()?;
        let target = target.ok_or(CommentError::Missing("target"))?.parse()?;
        let sha256 = sha256.ok_or(CommentError::Missing("sha256"))?.parse()?;
        let commit = commit.ok_or(CommentError::Missing("commit"))?.parse()?;
        let development = match key {
            None => false,
            Some(DEVELOPMENT_KEY_MARK) => true,
            Some(other) => return Err(CommentError::KeyMark(clip(other))),
        };
        TrustedComment::new(file, version, target, sha256, commit, development)
    }
}

impl fmt::Display for TrustedComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timb file:{} version:{} target:{} sha256:{} commit:{}",
            self.file, self.version, self.target, self.sha256, self.commit
        )?;
        if self.development {
            write!(f, " key:{DEVELOPMENT_KEY_MARK}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const COMMIT: &str = "80e1d2b0c0ffee0000000000000000000000beef";

    fn sample(development: bool) -> TrustedComment {
        TrustedComment::new(
            "timb-0.1.0-linux-x86_64.tar.xz",
            "0.1.0".parse().unwrap(),
            Target::LinuxX86_64,
            SHA.parse().unwrap(),
            SourceCommit::Exact(COMMIT.into()),
            development,
        )
        .unwrap()
    }

    #[test]
    fn writes_the_bytes_the_pipeline_always_wrote() {
        assert_eq!(
            sample(false).to_string(),
            format!("timb file:timb-0.1.0-linux-x86_64.tar.xz version:0.1.0 target:linux-x86_64 sha256:{SHA} commit:{COMMIT}")
        );
        assert_eq!(
            sample(true).to_string(),
            format!("timb file:timb-0.1.0-linux-x86_64.tar.xz version:0.1.0 target:linux-x86_64 sha256:{SHA} commit:{COMMIT} key:DEVELOPMENT-KEY-NOT-FOR-RELEASE")
        );
    }

    #[test]
    fn round_trips() {
        for dev in [false, true] {
            let c = sample(dev);
            assert_eq!(c.to_string().parse::<TrustedComment>().unwrap(), c);
        }
        for commit in [
            SourceCommit::Unknown,
            SourceCommit::Modified(COMMIT.into()),
            SourceCommit::Exact("a".repeat(64)),
        ] {
            let s = commit.to_string();
            assert_eq!(s.parse::<SourceCommit>().unwrap(), commit, "{s}");
        }
        assert_eq!(
            SourceCommit::Modified(COMMIT.into()).exact(),
            None,
            "a modified tree names no commit to rebuild"
        );
        // Any field order is read; the writer's order is canonical.
        let shuffled = format!("timb commit:{COMMIT} sha256:{SHA} target:linux-x86_64 version:0.1.0 file:timb-0.1.0-linux-x86_64.tar.xz");
        assert_eq!(shuffled.parse::<TrustedComment>().unwrap(), sample(false));
    }

    #[test]
    fn rejections_say_why() {
        let good = sample(false).to_string();
        let cases: Vec<(String, &str)> = vec![
            ("timestamp:123 file:x".into(), "not a timb comment"),
            ("timestamp:123\tfile:x".into(), "malformed"),
            (good.replace("timb ", "timbx "), "not a timb comment"),
            (format!("{good} file:b"), "appears twice"),
            (format!("{good} extra:1"), "unknown field"),
            (format!("{good} nocolon"), "malformed field"),
            (format!("{good}  "), "malformed field"),
            (format!("{good}\nfile:x"), "malformed"),
            (good.replace(" commit:", " kommit:"), "unknown field"),
            (
                good.replace(&format!(" commit:{COMMIT}"), ""),
                "no commit field",
            ),
            (good.replace(SHA, "AB"), "sha256"),
            (good.replace("linux-x86_64 ", "plan9 "), "unknown target"),
            (good.replace("version:0.1.0", "version:v1"), "not a version"),
            (good.replace(COMMIT, "HEAD"), "neither a git commit"),
            (format!("{good} key:RELEASE"), "the only key mark"),
            (
                good.replace("file:timb-0.1.0-linux-x86_64.tar.xz", "file:../x"),
                "cannot be signed",
            ),
            (
                good.replace("file:timb-0.1.0-linux-x86_64.tar.xz", "file:"),
                "cannot be signed",
            ),
            ("timb".into(), "no file field"),
            ("".into(), "not a timb comment"),
        ];
        for (c, want) in cases {
            let e = c.parse::<TrustedComment>().unwrap_err().to_string();
            assert!(e.contains(want), "{c:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u32;
        let alphabet: Vec<char> = "timb fle:vrsoa6_4xé\u{0}0123456789abcdef-. "
            .chars()
            .collect();
        for _ in 0..5000 {
            let len = (seed % 90) as usize;
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    alphabet[seed as usize % alphabet.len()]
                })
                .collect();
            let _ = format!("timb {s}").parse::<TrustedComment>();
            let _ = s.parse::<TrustedComment>();
        }
    }

    #[test]
    fn the_writer_refuses_names_that_would_break_the_line() {
        for bad in ["a b", "a\nb", "dir/x", "", "..", "x\u{7f}"] {
            let r = TrustedComment::new(
                bad,
                "1".parse().unwrap(),
                Target::LinuxX86_64,
                SHA.parse().unwrap(),
                SourceCommit::Unknown,
                false,
            );
            assert!(r.is_err(), "{bad:?}");
        }
    }
}
