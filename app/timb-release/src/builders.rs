//! The builder quorum: no single machine can make a release the updater installs.
//!
//! Independent builders rebuild a release (`cargo xtask rebuild`) and, only when every
//! archive matched, sign its sums files with their own minisign key, the trusted comment
//!
//! `timb-builder builder:<name> version:<v> commit:<40 or 64 hex> file:<sums file> sha256:<hex>`
//!
//! Two sums files are signed: [`SUMS_FILE`] (the unsigned build every rebuilder reproduces,
//! what rebuilders compare) and [`PUBLISHED_SUMS_FILE`] (the archives as published, which the
//! builder checked reduce to its build: for Windows, its exes' Authenticode signatures
//! removed). The updater and `release add` check the second: the downloaded archive's own
//! sha256 must be listed there, by at least the policy's `[builders]` threshold of distinct
//! listed keys ([`check_quorum`]).

use crate::check::{CheckError, SignedBody, Subject, Unverified};
use crate::comment::{CommentError, SourceCommit};
use crate::keys::{KeyId, Keyring};
use crate::policy::{Policy, Role};
use crate::sha::{clip, Sha256};
use crate::sums::{Sums, SumsError, SUMS_FILE};
use crate::target::Version;
use std::fmt;
use std::str::FromStr;

/// The sums of the archives as published (signed), beside [`SUMS_FILE`] in a release.
pub const PUBLISHED_SUMS_FILE: &str = "sha256sums.txt";

/// A builder name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a dot (it is part of
/// a signature's file name, [`signature_file`]).
pub fn is_builder_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where builder `builder`'s signature over the sums file `file` sits in a release folder.
pub fn signature_file(file: &str, builder: &str) -> String {
    format!("{file}.builder-{builder}.minisig")
}

/// What a builder's signature says: who, which release and commit, and which sums file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderComment {
    builder: String,
    version: Version,
    commit: String,
    file: String,
    sha256: Sha256,
}

impl BuilderComment {
    /// A builder vouches only for a clean commit (one anyone can check out) and for one of the
    /// two sums files.
    pub fn new(
        builder: &str,
        version: Version,
        commit: &SourceCommit,
        file: &str,
        sha256: Sha256,
    ) -> Result<BuilderComment, CommentError> {
        if !is_builder_name(builder) {
            return Err(CommentError::Malformed(format!(
                "builder:{}",
                clip(builder)
            )));
        }
        let Some(commit) = commit.exact() else {
            return Err(CommentError::Commit(commit.to_string()));
        };
        if file != SUMS_FILE && file != PUBLISHED_SUMS_FILE {
            return Err(CommentError::FileName(clip(file)));
        }
        Ok(BuilderComment {
            builder: builder.to_string(),
            version,
            commit: commit.to_string(),
            file: file.to_string(),
            sha256,
        })
    }

    pub fn builder(&self) -> &str {
        &self.builder
    }
    pub fn version(&self) -> &Version {
        &self.version
    }
    pub fn commit(&self) -> &str {
        &self.commit
    }
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl FromStr for BuilderComment {
    type Err = CommentError;

    fn from_str(c: &str) -> Result<BuilderComment, CommentError> {
        let [builder, version, commit, file, sha256] = crate::comment::fields(
            c,
            "timb-builder",
            ["builder", "version", "commit", "file", "sha256"],
        )?;
        let builder = builder.ok_or(CommentError::Missing("builder"))?;
        let version = version.ok_or(CommentError::Missing("version"))?.parse()?;
        let commit: SourceCommit = commit.ok_or(CommentError::Missing("commit"))?.parse()?;
        let file = file.ok_or(CommentError::Missing("file"))?;
        let sha256 = sha256.ok_or(CommentError::Missing("sha256"))?.parse()?;
        BuilderComment::new(builder, version, &commit, file, sha256)
    }
}

impl fmt::Display for BuilderComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timb-builder builder:{} version:{} commit:{} file:{} sha256:{}",
            self.builder, self.version, self.commit, self.file, self.sha256
        )
    }
}

impl SignedBody for BuilderComment {
    fn parse(comment: &str) -> Result<BuilderComment, CommentError> {
        comment.parse()
    }

    /// A builder's key is its own; there is no development builder signature.
    fn is_development(&self) -> bool {
        false
    }

    fn check_subject(&self, s: &Subject<'_>) -> Result<(), CheckError> {
        if self.file != s.name {
            return Err(CheckError::Renamed {
                signed: self.file.clone(),
                actual: s.name.to_string(),
            });
        }
        let actual = Sha256::of(s.data);
        if self.sha256 != actual {
            return Err(CheckError::Sha256 {
                signed: self.sha256,
                actual,
            });
        }
        Ok(())
    }
}

/// The signatures of a `.builders` file (several `.minisig` texts one after another), as
/// published beside an archive: each starts at an `untrusted comment:` line, so one damaged
/// signature does not shift the others.
pub fn split_signatures(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match out.last_mut() {
            Some(last) if !line.starts_with("untrusted comment:") => {
                last.push_str(line);
                last.push('\n');
            }
            _ => out.push(format!("{line}\n")),
        }
    }
    out
}

/// The inverse of [`split_signatures`].
pub fn join_signatures(signatures: &[String]) -> String {
    signatures
        .iter()
        .map(|s| format!("{}\n", s.trim_end()))
        .collect()
}

/// A sums file enough builders vouched for.
#[derive(Debug, Clone)]
pub struct Vouched {
    pub version: Version,
    pub commit: String,
    /// Each counted builder: its key and the name it signed with, in the signatures' order.
    pub builders: Vec<(KeyId, String)>,
}

impl Vouched {
    /// "alice (key …), bob (key …)".
    pub fn names(&self) -> String {
        self.builders
            .iter()
            .map(|(k, n)| format!("{n} (key {k})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("signing/policy.toml lists no [builders] keys: no release can be vouched for")]
    NoBuilders,
    #[error("{file} is vouched for by {count} distinct builder(s); signing/policy.toml's [builders] needs {threshold}{detail}")]
    TooFew {
        file: String,
        count: usize,
        threshold: u32,
        detail: String,
    },
    #[error("{count} builder signatures; the policy's keys could make {limit} at most")]
    TooMany { count: usize, limit: usize },
    #[error("the builders do not vouch for the same release: {a} and {b}")]
    Disagree { a: String, b: String },
    #[error("{file} does not list {name}: no builder vouched for it")]
    NotListed { file: String, name: String },
    #[error("{file} lists {name} with sha256 {listed}, but the file is {actual}: not the archive the builders rebuilt")]
    WrongSum {
        file: String,
        name: String,
        listed: Sha256,
        actual: Sha256,
    },
    #[error("{file}: {source}")]
    Sums { file: String, source: SumsError },
}

/// Checks `signatures` (builder `.minisig` texts) over the sums file `subject`: each must be
/// a good signature by a key `policy` lists under `[builders]` with a [`BuilderComment`]
/// for that file; at least the role's threshold of distinct keys must have signed (a key
/// that signed twice counts once), and all must name the same version and commit. A
/// signature that fails is not counted, and the error says why each one was not.
pub fn check_quorum(
    signatures: &[String],
    keys: &Keyring,
    policy: &Policy,
    subject: &Subject<'_>,
) -> Result<Vouched, QuorumError> {
    let role = policy.role(Role::Builders);
    if role.keys().is_empty() {
        return Err(QuorumError::NoBuilders);
    }
    // More signatures than the policy has keys, twice over, are not read: a hostile
    // `.builders` file cannot make the check, or its error, as long as it likes.
    let limit = 2 * role.keys().len();
    if signatures.len() > limit {
        return Err(QuorumError::TooMany {
            count: signatures.len(),
            limit,
        });
    }
    let mut counted: Vec<(KeyId, BuilderComment)> = Vec::new();
    let mut refused = Vec::new();
    for (i, sig) in signatures.iter().enumerate() {
        let checked = Unverified::<BuilderComment>::parse(sig)
            .and_then(|u| u.check_one_of_many(keys, policy, Role::Builders, subject));
        match checked {
            Ok(c) if counted.iter().any(|(k, _)| *k == c.signer()) => refused.push(format!(
                "signature {} by {} (key {}) is a second one by the same key, counted once",
                i + 1,
                c.body().builder(),
                c.signer()
            )),
            Ok(c) => {
                if let Some((_, first)) = counted.first() {
                    let b = c.body();
                    if b.version() != first.version() || b.commit() != first.commit() {
                        return Err(QuorumError::Disagree {
                            a: format!(
                                "{} says {} at {}",
                                first.builder(),
                                first.version(),
                                first.commit()
                            ),
                            b: format!("{} says {} at {}", b.builder(), b.version(), b.commit()),
                        });
                    }
                }
                counted.push((c.signer(), c.into_body()));
            }
            Err(e) => refused.push(format!("signature {} is not counted: {e}", i + 1)),
        }
    }
    let threshold = role.threshold();
    if counted.len() < threshold as usize || counted.is_empty() {
        let mut detail = String::new();
        if !counted.is_empty() {
            let names: Vec<String> = counted
                .iter()
                .map(|(k, c)| format!("{} (key {k})", c.builder()))
                .collect();
            detail += &format!("; counted: {}", names.join(", "));
        }
        if !refused.is_empty() {
            detail += &format!("; {}", refused.join("; "));
        }
        return Err(QuorumError::TooFew {
            file: subject.name.to_string(),
            count: counted.len(),
            threshold,
            detail,
        });
    }
    let (version, commit) = (
        counted[0].1.version().clone(),
        counted[0].1.commit().to_string(),
    );
    Ok(Vouched {
        version,
        commit,
        builders: counted.into_iter().map(|(k, c)| (k, c.builder)).collect(),
    })
}

/// The vouched sums file `sums` (named `file`) lists archive `name` with `actual`, its sha256.
pub fn check_listed(
    file: &str,
    sums: &[u8],
    name: &str,
    actual: &Sha256,
) -> Result<(), QuorumError> {
    let parsed: Sums = std::str::from_utf8(sums)
        .map_err(|_| QuorumError::Sums {
            file: file.to_string(),
            source: SumsError::Malformed {
                line: 0,
                text: "not UTF-8".into(),
            },
        })?
        .parse()
        .map_err(|source| QuorumError::Sums {
            file: file.to_string(),
            source,
        })?;
    match parsed.get(name) {
        None => Err(QuorumError::NotListed {
            file: file.to_string(),
            name: name.to_string(),
        }),
        Some(listed) if listed != actual => Err(QuorumError::WrongSum {
            file: file.to_string(),
            name: name.to_string(),
            listed: *listed,
            actual: *actual,
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;

    struct Builder {
        name: &'static str,
        sk: minisign::SecretKey,
        pk: minisign::PublicKey,
    }

    fn builder(name: &'static str) -> Builder {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        Builder {
            name,
            sk: kp.sk,
            pk: kp.pk,
        }
    }

    const COMMIT: &str = "80e1d2b0c0ffee0000000000000000000000beef";
    const SUMS: &[u8] =
        b"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  timb-0.1.0-linux-x86_64.tar.xz\n";

    impl Builder {
        fn public(&self) -> PublicKey {
            PublicKey::parse(&self.pk.to_box().unwrap().to_string()).unwrap()
        }
        fn comment(&self, version: &str, file: &str, data: &[u8]) -> String {
            BuilderComment::new(
                self.name,
                version.parse().unwrap(),
                &SourceCommit::Exact(COMMIT.into()),
                file,
                Sha256::of(data),
            )
            .unwrap()
            .to_string()
        }
        fn sign_with(&self, data: &[u8], comment: &str) -> String {
            minisign::sign(Some(&self.pk), &self.sk, data, Some(comment), None)
                .unwrap()
                .to_string()
        }
        fn sign(&self, data: &[u8]) -> String {
            self.sign_with(data, &self.comment("0.1.0", PUBLISHED_SUMS_FILE, data))
        }
    }

    /// Three builders, all in the keyring; the policy lists `listed` of them, threshold 2.
    fn trust(all: &[&Builder], listed: &[&Builder]) -> (Keyring, Policy) {
        let mut ring = Keyring::new();
        for b in all {
            ring.add(b.public(), b.name);
        }
        let ids: Vec<String> = listed
            .iter()
            .map(|b| format!("\"{}\"", b.public().id()))
            .collect();
        let policy = Policy::parse(&format!(
            "[bundle]\nkeys = []\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = [{}]\nthreshold = 2\n",
            ids.join(", ")
        ))
        .unwrap();
        (ring, policy)
    }

    fn subject(data: &[u8]) -> Subject<'_> {
        Subject {
            name: PUBLISHED_SUMS_FILE,
            data,
        }
    }

    #[test]
    fn the_comment_round_trips_and_refuses_what_a_builder_cannot_vouch_for() {
        let c = format!("timb-builder builder:alice version:0.1.0 commit:{COMMIT} file:sha256sums.txt sha256:{}", Sha256::of(b""));
        let parsed: BuilderComment = c.parse().unwrap();
        assert_eq!(parsed.to_string(), c);
        assert_eq!(parsed.builder(), "alice");
        for bad in [
            c.replace("builder:alice", "builder:../x"),
            c.replace(
                &format!("commit:{COMMIT}"),
                &format!("commit:{COMMIT}-modified"),
            ),
            c.replace(&format!("commit:{COMMIT}"), "commit:unknown"),
            c.replace("file:sha256sums.txt", "file:timb-0.1.0-linux-x86_64.tar.xz"),
            c.replace("timb-builder ", "timb "),
            c.replace(" builder:alice", ""),
            format!("{c} builder:bob"),
            format!("{c}\nx:y"),
        ] {
            assert!(bad.parse::<BuilderComment>().is_err(), "{bad}");
        }
        assert!(is_builder_name("rebuilder-2.example_org"));
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(!is_builder_name(bad), "{bad:?}");
        }
        assert_eq!(
            signature_file(SUMS_FILE, "alice"),
            "sha256sums-unsigned-build.txt.builder-alice.minisig"
        );
    }

    #[test]
    fn two_of_three_listed_builders_vouch_for_a_release() {
        let (a, b, c) = (builder("alice"), builder("bob"), builder("carol"));
        let (ring, policy) = trust(&[&a, &b, &c], &[&a, &b, &c]);
        let sigs = [a.sign(SUMS), c.sign(SUMS)];
        let v = check_quorum(&sigs, &ring, &policy, &subject(SUMS)).unwrap();
        assert_eq!(v.version.as_str(), "0.1.0");
        assert_eq!(v.commit, COMMIT);
        let names: Vec<&str> = v.builders.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["alice", "carol"]);
        // Through a published `.builders` file, also with a damaged signature before them.
        let file = join_signatures(&sigs);
        assert_eq!(split_signatures(&file), sigs);
        let damaged = format!("untrusted comment: cut short\nAAAA\n{file}");
        assert_eq!(split_signatures(&damaged).len(), 3);
        check_quorum(&split_signatures(&damaged), &ring, &policy, &subject(SUMS)).unwrap();
    }

    #[test]
    fn one_builder_or_the_same_builder_twice_is_refused_and_says_so() {
        let (a, b) = (builder("alice"), builder("bob"));
        let (ring, policy) = trust(&[&a, &b], &[&a, &b]);
        let e = check_quorum(&[a.sign(SUMS)], &ring, &policy, &subject(SUMS)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("vouched for by 1 distinct builder(s)")
                && text.contains("needs 2")
                && text.contains("counted: alice"),
            "{text}"
        );
        // The same key twice, even under two names.
        let again = a.sign_with(
            SUMS,
            &a.comment("0.1.0", PUBLISHED_SUMS_FILE, SUMS)
                .replace("alice", "alice2"),
        );
        let e = check_quorum(&[a.sign(SUMS), again], &ring, &policy, &subject(SUMS)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("by 1 distinct") && text.contains("same key, counted once"),
            "{text}"
        );
    }

    #[test]
    fn unlisted_keys_other_files_and_tampering_are_not_counted() {
        let (a, b, c) = (builder("alice"), builder("bob"), builder("mallory"));
        let (ring, policy) = trust(&[&a, &b, &c], &[&a, &b]);
        let other = b"0000000000000000000000000000000000000000000000000000000000000000  x\n";
        let cases = [
            (c.sign(SUMS), "does not list"),
            (b.sign(other), "sha256"),
            (
                b.sign_with(SUMS, &b.comment("0.1.0", SUMS_FILE, SUMS)),
                "renamed",
            ),
            (a.sign(SUMS).replace("alice", "alicf"), "BAD SIGNATURE"),
            ("garbage\n".to_string(), "not counted"),
        ];
        for (bad, why) in cases {
            let e = check_quorum(&[a.sign(SUMS), bad], &ring, &policy, &subject(SUMS))
                .unwrap_err()
                .to_string();
            assert!(e.contains("by 1 distinct") && e.contains(why), "{why}: {e}");
        }
        // A release whose builders disagree on what it is.
        let v2 = b.sign_with(SUMS, &b.comment("0.2.0", PUBLISHED_SUMS_FILE, SUMS));
        let e = check_quorum(&[a.sign(SUMS), v2], &ring, &policy, &subject(SUMS)).unwrap_err();
        assert!(matches!(e, QuorumError::Disagree { .. }), "{e}");
        // More signatures than the keys could make twice over: not read.
        let many: Vec<String> = (0..5).map(|_| a.sign(SUMS)).collect();
        let e = check_quorum(&many, &ring, &policy, &subject(SUMS)).unwrap_err();
        assert!(
            matches!(e, QuorumError::TooMany { count: 5, limit: 4 }),
            "{e}"
        );
        // No builder keys at all: nothing is ever vouched for.
        let (ring, policy) = trust(&[&a], &[]);
        let e = check_quorum(&[a.sign(SUMS)], &ring, &policy, &subject(SUMS)).unwrap_err();
        assert_eq!(e, QuorumError::NoBuilders);
    }

    #[test]
    fn the_archive_must_be_listed_with_its_own_sum() {
        let name = "timb-0.1.0-linux-x86_64.tar.xz";
        let listed: Sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            .parse()
            .unwrap();
        check_listed(PUBLISHED_SUMS_FILE, SUMS, name, &listed).unwrap();
        let e = check_listed(PUBLISHED_SUMS_FILE, SUMS, name, &Sha256::of(b"x")).unwrap_err();
        assert!(
            e.to_string()
                .contains("not the archive the builders rebuilt"),
            "{e}"
        );
        let e = check_listed(
            PUBLISHED_SUMS_FILE,
            SUMS,
            "timb-0.2.0-linux-x86_64.tar.xz",
            &listed,
        )
        .unwrap_err();
        assert!(matches!(e, QuorumError::NotListed { .. }), "{e}");
        assert!(check_listed(PUBLISHED_SUMS_FILE, b"\xff", name, &listed).is_err());
    }
}
