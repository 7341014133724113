//! SCRAM (RFC 5802 / RFC 7677) client, with tls-exporter channel binding
//! (RFC 9266) for the -PLUS variants.
//!
//! User names are escaped per RFC 5802 (`,` and `=`); full SASLprep is not
//! applied, which only matters for non-ASCII passwords that have several
//! Unicode normal forms.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::AuthError;

/// Refuse server-chosen iteration counts outside this range: too low is a
/// downgrade, too high lets a server burn our CPU for minutes.
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    pub fn mechanism(self, plus: bool) -> &'static str {
        match (self, plus) {
            (ScramHash::Sha1, false) => "SCRAM-SHA-1",
            (ScramHash::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (ScramHash::Sha256, false) => "SCRAM-SHA-256",
            (ScramHash::Sha256, true) => "SCRAM-SHA-256-PLUS",
        }
    }

    #[allow(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length: new_from_slice cannot fail"
    )]
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut m = <Hmac<Sha1>>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], i: u32) -> Zeroizing<Vec<u8>> {
        match self {
            ScramHash::Sha1 => {
                let mut out = Zeroizing::new(vec![0u8; 20]);
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, i, &mut out);
                out
            }
            ScramHash::Sha256 => {
                let mut out = Zeroizing::new(vec![0u8; 32]);
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, i, &mut out);
                out
            }
        }
    }
}

/// Channel binding state we announce in the GS2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// "n": we do not support channel binding.
    None,
    /// "y": we support it but the server did not offer -PLUS (lets a server
    /// detect a man in the middle that stripped the -PLUS mechanisms).
    SupportedNotUsed,
    /// "p=tls-exporter" with the exporter keying material.
    TlsExporter(Vec<u8>),
}

pub struct ScramClient {
    hash: ScramHash,
    password: Zeroizing<String>,
    gs2_header: String,
    cbind_data: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(
        hash: ScramHash,
        username: &str,
        password: &str,
        cb: ChannelBinding,
        nonce: String,
    ) -> ScramClient {
        let (gs2_header, cbind_data) = match cb {
            ChannelBinding::None => ("n,,".to_owned(), Vec::new()),
            ChannelBinding::SupportedNotUsed => ("y,,".to_owned(), Vec::new()),
            ChannelBinding::TlsExporter(d) => ("p=tls-exporter,,".to_owned(), d),
        };
        let user = username.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={user},r={nonce}");
        ScramClient {
            hash,
            password: Zeroizing::new(password.to_owned()),
            gs2_header,
            cbind_data,
            client_first_bare,
            nonce,
            server_signature: None,
        }
    }

    /// A fresh random client nonce.
    pub fn random_nonce() -> String {
        let mut b = [0u8; 24];
        crate::random_bytes(&mut b);
        B64.encode(b)
    }

    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header, self.client_first_bare)
    }

    pub fn handle_server_first(&mut self, server_first: &str) -> Result<String, AuthError> {
        let bad = |m: &str| AuthError::BadScram(m.to_owned());
        let mut nonce = None;
        let mut salt = None;
        let mut iters = None;
        for part in server_first.split(',') {
            if let Some(v) = part.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = part.strip_prefix("s=") {
                salt = Some(v);
            } else if let Some(v) = part.strip_prefix("i=") {
                iters = Some(v);
            } else if part.starts_with("m=") {
                return Err(bad("server requires an unknown extension"));
            }
        }
        let nonce = nonce.ok_or_else(|| bad("missing nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err(bad("server nonce does not extend ours"));
        }
        let salt = B64
            .decode(salt.ok_or_else(|| bad("missing salt"))?)
            .map_err(|_| bad("salt is not base64"))?;
        let iters: u32 = iters
            .ok_or_else(|| bad("missing iteration count"))?
            .parse()
            .map_err(|_| bad("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iters) {
            return Err(bad(&format!(
                "iteration count {iters} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iters);
        let client_key = Zeroizing::new(h.hmac(&salted, b"Client Key"));
        let stored_key = h.hash(&client_key);
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.cbind_data);
        let without_proof = format!("c={},r={nonce}", B64.encode(&cbind));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_sig = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_sig.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.server_signature = Some(h.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    pub fn verify_server_final(&self, server_final: &str) -> Result<(), AuthError> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(AuthError::Failure(e.to_owned()));
        }
        let v = server_final
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or_else(|| AuthError::BadScram("missing server signature".into()))?;
        let v = B64
            .decode(v)
            .map_err(|_| AuthError::BadScram("server signature is not base64".into()))?;
        let expected = self
            .server_signature
            .as_ref()
            .ok_or_else(|| AuthError::BadScram("server-final before server-first".into()))?;
        if constant_time_eq(&v, expected) {
            Ok(())
        } else {
            Err(AuthError::ServerSignature)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 section 5.
    #[test]
    fn rfc5802_sha1_vector() {
        let mut c = ScramClient::new(
            ScramHash::Sha1,
            "user",
            "pencil",
            ChannelBinding::None,
            "fyko+d2lbbFgONRv9qkxdawL".into(),
        );
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .handle_server_first(
                "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            )
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
        assert_eq!(
            c.verify_server_final("v=AAAApqV8S7suAoZWja4dJRkFsKQ="),
            Err(AuthError::ServerSignature)
        );
    }

    /// RFC 7677 section 3.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c = ScramClient::new(
            ScramHash::Sha256,
            "user",
            "pencil",
            ChannelBinding::None,
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = c
            .handle_server_first(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn hostile_server_first_is_rejected() {
        let mk = || {
            ScramClient::new(
                ScramHash::Sha256,
                "u",
                "p",
                ChannelBinding::None,
                "abc".into(),
            )
        };
        for bad in [
            "r=xyz,s=QSXCR+Q6sek8bf92,i=4096",        // nonce not ours
            "r=abc,s=QSXCR+Q6sek8bf92,i=4096",        // not extended
            "r=abcd,s=!!!,i=4096",                    // bad salt
            "r=abcd,s=QSXCR+Q6sek8bf92,i=1",          // too few iterations
            "r=abcd,s=QSXCR+Q6sek8bf92,i=4000000000", // CPU burn
            "r=abcd,s=QSXCR+Q6sek8bf92",              // missing i
            "m=ext,r=abcd,s=QSXCR+Q6sek8bf92,i=4096",
            "",
        ] {
            assert!(
                matches!(mk().handle_server_first(bad), Err(AuthError::BadScram(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn channel_binding_goes_into_the_proof() {
        let mut c = ScramClient::new(
            ScramHash::Sha256,
            "a,b=c",
            "p",
            ChannelBinding::TlsExporter(vec![1, 2, 3]),
            "abc".into(),
        );
        assert_eq!(c.client_first(), "p=tls-exporter,,n=a=2Cb=3Dc,r=abc");
        let fin = c
            .handle_server_first("r=abcd,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        let c_attr = fin.split(',').next().unwrap().strip_prefix("c=").unwrap();
        assert_eq!(B64.decode(c_attr).unwrap(), b"p=tls-exporter,,\x01\x02\x03");
        let y = ScramClient::new(
            ScramHash::Sha1,
            "u",
            "p",
            ChannelBinding::SupportedNotUsed,
            "n".into(),
        );
        assert!(y.client_first().starts_with("y,,"));
    }
}
