//! [`TlsUpgrade`] through timb-tls: rustls only, TLS 1.2+, the account's
//! pinned / trust-on-first-use / WebPKI policy.

use timb_tls::{ConnectOptions, TlsPolicy};

use crate::{BoxFuture, BoxStream, TlsInfo, TlsUpgrade, XmppError};

pub struct PolicyTls {
    policy: TlsPolicy,
    /// Port of the server, the trust-on-first-use key together with the name.
    port: Option<u16>,
    /// XEP-0368 asks for ALPN "xmpp-client" on direct TLS.
    direct: bool,
}

impl PolicyTls {
    pub fn new(policy: TlsPolicy, port: Option<u16>, direct: bool) -> PolicyTls {
        PolicyTls {
            policy,
            port,
            direct,
        }
    }
}

impl TlsUpgrade for PolicyTls {
    fn upgrade(
        &self,
        stream: BoxStream,
        server_name: String,
    ) -> BoxFuture<Result<(BoxStream, TlsInfo), XmppError>> {
        let policy = self.policy.clone();
        let options = ConnectOptions {
            port: self.port,
            client_identity: None,
            alpn: if self.direct {
                vec![b"xmpp-client".to_vec()]
            } else {
                Vec::new()
            },
        };
        Box::pin(async move {
            let tls = timb_tls::connect_with(stream, &server_name, &policy, &options)
                .await
                .map_err(|e| match e {
                    // The stream died under the handshake: worth a retry.
                    timb_tls::TlsError::Io(io) => XmppError::Io(io.to_string()),
                    e => match timb_tor::certificate_problem(&e) {
                        Some(p) => XmppError::Certificate(p),
                        None => XmppError::Tls(e.to_string()),
                    },
                })?;
            // RFC 9266 defines tls-exporter for TLS 1.3 only; on 1.2 we use
            // SCRAM without -PLUS.
            let exporter = if timb_tls::is_tls13(&tls) {
                timb_tls::tls_exporter(&tls).ok().map(|x| x.to_vec())
            } else {
                None
            };
            let info = TlsInfo {
                exporter,
                spki_sha256: timb_tls::peer_spki_sha256(&tls),
            };
            Ok((Box::new(tls) as BoxStream, info))
        })
    }
}
