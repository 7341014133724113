//! Typed errors. Messages name the failure, never a message body or contact.

use timb_core::{AccountError, ConnectError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmppError {
    /// The connector could not open the stream; the kind decides retrying.
    #[error("could not reach the server: {0}")]
    Connect(ConnectError),
    #[error("connection failed: {0}")]
    Io(String),
    #[error("the server did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the server closed the connection")]
    Closed,
    #[error("malformed XML from the server: {0}")]
    Xml(String),
    #[error("the server sent text that is not valid UTF-8")]
    InvalidUtf8,
    #[error("the server sent a stanza larger than the {0}-byte limit")]
    StanzaTooLarge(usize),
    #[error("the server took more than {0} seconds to send one stanza")]
    StanzaTooSlow(u64),
    #[error("the server ended the stream with an error: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Stream {
        condition: String,
        text: Option<String>,
    },
    #[error("the server does not offer TLS; refusing to continue in plaintext")]
    NoTls,
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("the server's certificate was refused: {0}")]
    Certificate(timb_core::CertProblem),
    #[error("authentication failed: {0}")]
    Auth(AuthError),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("the account could not be created: {0}")]
    Registration(timb_core::RegistrationProblem),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("wrong user name or password")]
    NotAuthorized,
    #[error("no acceptable mechanism (server offers: {0})")]
    NoMechanism(String),
    #[error("the server aborted authentication: {0}")]
    Aborted(String),
    #[error("the server failed authentication: {0}")]
    Failure(String),
    #[error("the server could not prove it knows the password (SCRAM server signature mismatch)")]
    ServerSignature,
    #[error("invalid SCRAM message from the server: {0}")]
    BadScram(String),
}

impl XmppError {
    /// Whether retrying (e.g. XEP-0198 resumption) can help: a dropped or
    /// silent stream, or a connect failure of a transient kind.
    pub fn is_transient(&self) -> bool {
        match self {
            XmppError::Connect(e) => e.is_transient(),
            XmppError::Io(_) | XmppError::Timeout(_) | XmppError::Closed => true,
            _ => false,
        }
    }
}

impl From<XmppError> for AccountError {
    fn from(e: XmppError) -> AccountError {
        let msg = e.to_string();
        match e {
            XmppError::Connect(c) => AccountError::Connect(c),
            XmppError::Io(_) | XmppError::Timeout(_) => AccountError::Transport(msg),
            XmppError::Closed | XmppError::Stream { .. } => AccountError::Closed(msg),
            XmppError::Certificate(m) => AccountError::Certificate(m),
            XmppError::Auth(a) => AccountError::Auth(a.to_string()),
            XmppError::Registration(p) => AccountError::Registration(p),
            XmppError::NoTls => AccountError::Notice(timb_core::Notice::NoTls),
            XmppError::Tls(_) => AccountError::Refused(msg),
            XmppError::Xml(_)
            | XmppError::InvalidUtf8
            | XmppError::StanzaTooLarge(_)
            | XmppError::StanzaTooSlow(_)
            | XmppError::Protocol(_) => AccountError::Protocol(msg),
        }
    }
}
