//! Signature checking in the "unverified → checked" style of arti's `tor-checkable`: a parsed
//! signature is an [`Unverified<T>`] whose claims (`T`) cannot be read; the only way to a `T`
//! is [`Unverified::check`], which verifies the signature with a trusted key, applies the
//! [`Policy`] and checks the claims against the file, and returns a [`Checked<T>`].

use crate::comment::{CommentError, TrustedComment};
use crate::keys::{blob, KeyError, KeyId, Keyring};
use crate::policy::{Policy, Role};
use crate::sha::Sha256;
use crate::sums::SUMS_FILE;
use crate::target::Target;
use std::fmt;

/// The file a signature is checked against: its name (not a path) and its bytes.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// What a signature can carry as its trusted comment.
pub trait SignedBody: Sized {
    fn parse(comment: &str) -> Result<Self, CommentError>;
    /// Whether the body says it was signed by a development key.
    fn is_development(&self) -> bool;
    /// Checks the claims against the file, once the signature is known to be good.
    fn check_subject(&self, subject: &Subject<'_>) -> Result<(), CheckError>;
}

impl SignedBody for TrustedComment {
    fn parse(comment: &str) -> Result<TrustedComment, CommentError> {
        comment.parse()
    }

    fn is_development(&self) -> bool {
        TrustedComment::is_development(self)
    }

    /// The signed file name is the file's; an archive's name is the one the signed version
    /// and target give (the two sums files have fixed names); the signed sha256 is the file's.
    fn check_subject(&self, s: &Subject<'_>) -> Result<(), CheckError> {
        if self.file() != s.name {
            return Err(CheckError::Renamed {
                signed: self.file().to_string(),
                actual: s.name.to_string(),
            });
        }
        let sums = s.name == SUMS_FILE || s.name == crate::builders::PUBLISHED_SUMS_FILE;
        if !sums && self.target().archive_name(self.version()) != s.name {
            return Err(CheckError::WrongName {
                name: s.name.to_string(),
                version: self.version().to_string(),
                target: self.target(),
            });
        }
        let actual = Sha256::of(s.data);
        if *self.sha256() != actual {
            return Err(CheckError::Sha256 {
                signed: *self.sha256(),
                actual,
            });
        }
        Ok(())
    }
}

/// How far a good signature may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// By a key the policy lists for the role.
    Release,
    /// Marked as made with a development key: good for testing the pipeline, never a release.
    Development,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Format(#[from] KeyError),
    #[error("the signed comment is not one timb writes: {0}")]
    Comment(#[from] CommentError),
    #[error("signed by key {key}, which is not a trusted key (trusted: {trusted})")]
    UnknownKey { key: KeyId, trusted: String },
    #[error(
        "BAD SIGNATURE by key {key}: the file was changed or the signature belongs to another file"
    )]
    BadSignature { key: KeyId },
    #[error("a release signature by key {key}, which signing/policy.toml does not list for [{role}] (listed: {listed}); refused")]
    NotInPolicy {
        key: KeyId,
        role: Role,
        listed: String,
    },
    #[error("[{role}] needs {threshold} signatures by distinct listed keys; one signature cannot meet it")]
    Threshold { role: Role, threshold: u32 },
    #[error("the signature is for {signed}, not for {actual}: the file was renamed")]
    Renamed { signed: String, actual: String },
    #[error("{name} does not carry the signed version {version} for {target}")]
    WrongName {
        name: String,
        version: String,
        target: Target,
    },
    #[error("the signed sha256 {signed} differs from the file's {actual}")]
    Sha256 { signed: Sha256, actual: Sha256 },
}

/// A minisign signature and the claims it carries, none of them trusted yet.
pub struct Unverified<T> {
    signature: minisign_verify::Signature,
    key: KeyId,
    /// The body is parsed only after the signature over it checks out: nothing an attacker
    /// wrote reaches a parser before that, and an unknown key is reported as such.
    _body: std::marker::PhantomData<T>,
}

impl<T> fmt::Debug for Unverified<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unverified(signed by {}, not checked)", self.key)
    }
}

impl<T: SignedBody> Unverified<T> {
    /// Parses a `.minisig` file's text. Nothing in it is trusted until [`check`](Self::check).
    pub fn parse(minisig: &str) -> Result<Unverified<T>, CheckError> {
        let (key, _) = blob(minisig.lines().nth(1), 74).ok_or_else(|| {
            KeyError::Signature("the second line is not a base64 signature".into())
        })?;
        let signature = minisign_verify::Signature::decode(minisig)
            .map_err(|e| KeyError::Signature(e.to_string()))?;
        Ok(Unverified {
            signature,
            key,
            _body: std::marker::PhantomData,
        })
    }

    /// The key the signature claims to be made with (not yet checked).
    pub fn claimed_key(&self) -> KeyId {
        self.key
    }

    /// Verifies the signature over `subject` with the key of `keys` it names, then: a
    /// signature marked as a development one is [`SignatureKind::Development`]; any other is a
    /// release signature and must be by a key the policy lists for `role` (whose threshold
    /// a single signature must meet); then the signed claims must match the file.
    pub fn check(
        self,
        keys: &Keyring,
        policy: &Policy,
        role: Role,
        subject: &Subject<'_>,
    ) -> Result<Checked<T>, CheckError> {
        self.check_as(keys, policy, role, subject, true)
    }

    /// As [`check`](Self::check), but one of several: the role's threshold is the caller's
    /// to count (crate::builders counts distinct keys).
    pub fn check_one_of_many(
        self,
        keys: &Keyring,
        policy: &Policy,
        role: Role,
        subject: &Subject<'_>,
    ) -> Result<Checked<T>, CheckError> {
        self.check_as(keys, policy, role, subject, false)
    }

    fn check_as(
        self,
        keys: &Keyring,
        policy: &Policy,
        role: Role,
        subject: &Subject<'_>,
        alone: bool,
    ) -> Result<Checked<T>, CheckError> {
        let key = keys.get(self.key).ok_or_else(|| CheckError::UnknownKey {
            key: self.key,
            trusted: keys.describe(),
        })?;
        // Prehashed signatures only, as the pipeline and current minisign make them.
        key.inner()
            .verify(subject.data, &self.signature, false)
            .map_err(|_| CheckError::BadSignature { key: self.key })?;
        let body = T::parse(self.signature.trusted_comment())?;
        let kind = if body.is_development() {
            SignatureKind::Development
        } else {
            let r = policy.role(role);
            if !r.allows(self.key) {
                let listed = r.keys().iter().map(ToString::to_string).collect::<Vec<_>>();
                return Err(CheckError::NotInPolicy {
                    key: self.key,
                    role,
                    listed: if listed.is_empty() {
                        "none".into()
                    } else {
                        listed.join(", ")
                    },
                });
            }
            if alone && r.threshold() > 1 {
                return Err(CheckError::Threshold {
                    role,
                    threshold: r.threshold(),
                });
            }
            SignatureKind::Release
        };
        body.check_subject(subject)?;
        Ok(Checked {
            body,
            signer: self.key,
            kind,
        })
    }
}

/// What a good signature says, with who made it and how far it is trusted.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    body: T,
    signer: KeyId,
    kind: SignatureKind,
}

impl<T> Checked<T> {
    pub fn body(&self) -> &T {
        &self.body
    }

    pub fn into_body(self) -> T {
        self.body
    }

    pub fn signer(&self) -> KeyId {
        self.signer
    }

    pub fn kind(&self) -> SignatureKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::SourceCommit;
    use crate::keys::PublicKey;

    struct TestKey {
        sk: minisign::SecretKey,
        pk: minisign::PublicKey,
    }

    fn key() -> TestKey {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        TestKey {
            sk: kp.sk,
            pk: kp.pk,
        }
    }

    impl TestKey {
        fn public(&self) -> PublicKey {
            PublicKey::parse(&self.pk.to_box().unwrap().to_string()).unwrap()
        }
        fn sign(&self, data: &[u8], comment: &str) -> String {
            minisign::sign(Some(&self.pk), &self.sk, data, Some(comment), None)
                .unwrap()
                .to_string()
        }
    }

    const NAME: &str = "timb-0.1.0-linux-x86_64.tar.xz";
    const DATA: &[u8] = b"the bundle";

    fn comment(name: &str, data: &[u8], dev: bool) -> String {
        TrustedComment::new(
            name,
            "0.1.0".parse().unwrap(),
            Target::LinuxX86_64,
            Sha256::of(data),
            SourceCommit::Unknown,
            dev,
        )
        .unwrap()
        .to_string()
    }

    fn policy(bundle: &[KeyId]) -> Policy {
        let keys: Vec<String> = bundle.iter().map(|k| format!("\"{k}\"")).collect();
        Policy::parse(&format!(
            "[bundle]\nkeys = [{}]\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n",
            keys.join(",")
        ))
        .unwrap()
    }

    fn check(
        sig: &str,
        keys: &Keyring,
        policy: &Policy,
        name: &str,
        data: &[u8],
    ) -> Result<Checked<TrustedComment>, CheckError> {
        Unverified::<TrustedComment>::parse(sig)?.check(
            keys,
            policy,
            Role::Bundle,
            &Subject { name, data },
        )
    }

    #[test]
    fn a_release_key_in_the_policy_passes() {
        let k = key();
        let mut ring = Keyring::new();
        ring.add(k.public(), "release");
        let sig = k.sign(DATA, &comment(NAME, DATA, false));
        let c = check(&sig, &ring, &policy(&[k.public().id()]), NAME, DATA).unwrap();
        assert_eq!(c.kind(), SignatureKind::Release);
        assert_eq!(c.signer(), k.public().id());
        assert_eq!(c.body().version().as_str(), "0.1.0");
    }

    #[test]
    fn a_release_signature_by_a_key_outside_the_policy_is_refused() {
        let (k, other) = (key(), key());
        let mut ring = Keyring::new();
        ring.add(k.public(), "a key given by hand");
        let sig = k.sign(DATA, &comment(NAME, DATA, false));
        for p in [policy(&[]), policy(&[other.public().id()])] {
            let e = check(&sig, &ring, &p, NAME, DATA).unwrap_err();
            assert!(matches!(e, CheckError::NotInPolicy { .. }), "{e}");
            assert!(e.to_string().contains("does not list"), "{e}");
        }
    }

    #[test]
    fn a_marked_development_signature_passes_as_development_only() {
        let dev = key();
        let mut ring = Keyring::new();
        ring.add(dev.public(), "development");
        let sig = dev.sign(DATA, &comment(NAME, DATA, true));
        let c = check(&sig, &ring, &policy(&[]), NAME, DATA).unwrap();
        assert_eq!(c.kind(), SignatureKind::Development);
    }

    #[test]
    fn a_threshold_above_one_is_not_met_by_one_signature() {
        let k = key();
        let mut ring = Keyring::new();
        ring.add(k.public(), "k");
        let sig = k.sign(DATA, &comment(NAME, DATA, false));
        let p = Policy::parse(&format!(
            "[bundle]\nkeys = [\"{}\", \"0123456789ABCDEF\"]\nthreshold = 2\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n",
            k.public().id()
        ))
        .unwrap();
        let e = check(&sig, &ring, &p, NAME, DATA).unwrap_err();
        assert!(matches!(e, CheckError::Threshold { .. }), "{e}");
    }

    #[test]
    fn tampering_is_refused() {
        let k = key();
        let mut ring = Keyring::new();
        ring.add(k.public(), "release");
        let p = policy(&[k.public().id()]);
        let sig = k.sign(DATA, &comment(NAME, DATA, false));

        let e = check(&sig, &ring, &p, NAME, b"the bundlE").unwrap_err();
        assert!(e.to_string().contains("BAD SIGNATURE"), "{e}");

        let e = check(&sig, &Keyring::new(), &p, NAME, DATA).unwrap_err();
        assert!(e.to_string().contains("not a trusted key"), "{e}");

        let other = "timb-9.0.0-linux-x86_64.tar.xz";
        let e = check(&sig, &ring, &p, other, DATA).unwrap_err();
        assert!(e.to_string().contains("renamed"), "{e}");

        // A signature whose comment names another version than the file name gives.
        let sig = k.sign(
            DATA,
            &comment("timb-0.2.0-linux-x86_64.tar.xz", DATA, false),
        );
        let e = check(&sig, &ring, &p, "timb-0.2.0-linux-x86_64.tar.xz", DATA).unwrap_err();
        assert!(matches!(e, CheckError::WrongName { .. }), "{e}");

        // A good signature over other bytes than the comment's sha256 claims.
        let sig = k.sign(DATA, &comment(NAME, b"other bytes", false));
        let e = check(&sig, &ring, &p, NAME, DATA).unwrap_err();
        assert!(matches!(e, CheckError::Sha256 { .. }), "{e}");

        // A changed trusted comment breaks the global signature.
        let good = k.sign(DATA, &comment(NAME, DATA, false));
        let forged = good.replace("commit:unknown", &format!("commit:{}", "a".repeat(40)));
        assert_ne!(forged, good);
        let e = check(&forged, &ring, &p, NAME, DATA).unwrap_err();
        assert!(e.to_string().contains("BAD SIGNATURE"), "{e}");

        // Stripping the development mark from a development signature.
        let dev = k.sign(DATA, &comment(NAME, DATA, true));
        let stripped = dev.replace(" key:DEVELOPMENT-KEY-NOT-FOR-RELEASE", "");
        let e = check(&stripped, &ring, &p, NAME, DATA).unwrap_err();
        assert!(e.to_string().contains("BAD SIGNATURE"), "{e}");
    }

    #[test]
    fn the_sums_file_is_checked_by_its_fixed_name() {
        let k = key();
        let mut ring = Keyring::new();
        ring.add(k.public(), "release");
        let sums = b"abc  x\n";
        let sig = k.sign(sums, &comment(SUMS_FILE, sums, false));
        check(&sig, &ring, &policy(&[k.public().id()]), SUMS_FILE, sums).unwrap();
    }

    #[test]
    fn garbage_signatures_are_errors_not_panics() {
        let k = key();
        let good = k.sign(DATA, &comment(NAME, DATA, false));
        let lines: Vec<&str> = good.lines().collect();
        let mut cases = vec![
            String::new(),
            "untrusted comment: x\n".into(),
            lines[..2].join("\n"),
            lines[..3].join("\n"),
            good.replace("trusted comment: ", "trusted: "),
            good.replace(lines[1], "AAAA"),
            good.replace(lines[3], "é"),
            good.replace("timb file:", "file:"),
        ];
        // Every truncation short of the whole last line.
        for cut in 0..good.trim_end().len() {
            if good.is_char_boundary(cut) {
                cases.push(good[..cut].to_string());
            }
        }
        let mut ring = Keyring::new();
        ring.add(k.public(), "release");
        let p = policy(&[k.public().id()]);
        for c in cases {
            // Refused when parsed, or at the latest when checked: the comment itself is
            // parsed only after its signature holds.
            assert!(check(&c, &ring, &p, NAME, DATA).is_err(), "{c:?}");
        }
    }

    /// An untrusted key is reported as such whatever its comment says (stock minisign writes
    /// `timestamp:… file:… hashed`, which is not timb's format): the comment is not parsed
    /// before the signature is checked.
    #[test]
    fn an_unknown_key_is_reported_before_its_comment_is_read() {
        let k = key();
        let other = key();
        let mut ring = Keyring::new();
        ring.add(k.public(), "release");
        let sig = other.sign(DATA, "timestamp:1\tfile:x\thashed");
        let e = check(&sig, &ring, &policy(&[k.public().id()]), NAME, DATA).unwrap_err();
        assert!(e.to_string().contains("not a trusted key"), "{e}");
    }
}
