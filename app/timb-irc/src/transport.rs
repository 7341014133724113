//! Whether a connection may skip TLS.

/// How the byte stream to the server must be protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Tls,
    /// No TLS: only to an onion service, whose address already authenticates
    /// the server and whose circuit is end-to-end encrypted.
    PlainOnion,
}

/// Plain text only when the account explicitly allows it *and* the host is an
/// onion service; asking for plain text to any other host is an error rather
/// than a silent upgrade, so a misconfiguration is noticed.
pub fn choose_security(host: &str, allow_plaintext: bool) -> Result<Security, String> {
    if !allow_plaintext {
        return Ok(Security::Tls);
    }
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h.ends_with(".onion") && h.len() > ".onion".len() {
        Ok(Security::PlainOnion)
    } else {
        Err(format!(
            "plain-text IRC is only allowed to .onion servers, not {host}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_only_to_onions_when_allowed() {
        assert_eq!(choose_security("irc.oftc.net", false), Ok(Security::Tls));
        assert_eq!(choose_security("abc.onion", false), Ok(Security::Tls));
        assert!(choose_security("irc.oftc.net", true).is_err());
        assert!(choose_security("onion", true).is_err());
        assert!(choose_security("evil.onion.example.com", true).is_err());
        assert_eq!(
            choose_security("abc.ONION.", true),
            Ok(Security::PlainOnion)
        );
    }
}
