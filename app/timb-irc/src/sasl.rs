//! SASL payloads for `AUTHENTICATE` (IRCv3 sasl-3.1): base64 in 400-byte
//! pieces, with a lone `+` after a piece of exactly 400 bytes.

/// Largest `AUTHENTICATE` argument the spec allows.
pub const CHUNK: usize = 400;

/// The `AUTHENTICATE` arguments carrying `payload`, in order.
pub fn authenticate_chunks(payload: &[u8]) -> Vec<String> {
    if payload.is_empty() {
        return vec!["+".to_owned()];
    }
    let encoded = base64(payload);
    let mut out: Vec<String> = encoded
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if encoded.len().is_multiple_of(CHUNK) {
        out.push("+".to_owned());
    }
    out
}

/// PLAIN (RFC 4616): authzid empty, so the server derives it from authcid.
pub fn plain_payload(account: &str, password: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(account.len() + password.len() + 2);
    p.push(0);
    p.extend_from_slice(account.as_bytes());
    p.push(0);
    p.extend_from_slice(password.as_bytes());
    p
}

/// Standard base64 with padding; small enough that a dependency is not worth it.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn plain_payload_layout() {
        assert_eq!(
            authenticate_chunks(&plain_payload("jilles", "sesame")),
            vec!["AGppbGxlcwBzZXNhbWU="]
        );
    }

    #[test]
    fn chunks_of_400_and_trailing_plus() {
        // 300 bytes encode to exactly 400 characters: one piece plus "+".
        let c = authenticate_chunks(&[7u8; 300]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].len(), 400);
        assert_eq!(c[1], "+");
        let c = authenticate_chunks(&[7u8; 301]);
        assert_eq!(c.iter().map(String::len).collect::<Vec<_>>(), vec![400, 4]);
        assert_eq!(authenticate_chunks(b""), vec!["+"]);
    }
}
