//! Stream negotiation: TLS (direct or STARTTLS), SASL, resource binding,
//! XEP-0198 enable/resume.
//!
//! The server address never comes from DNS: it is the account's host/port,
//! a `.onion` from [`KNOWN_ONIONS`], or the JID's domain on port 5222, and the
//! name is resolved by the Tor exit. SRV lookups would need a resolver that
//! goes through Tor (arti resolves A/AAAA/PTR only), so there are none.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{AuthError, XmppError};
use crate::scram::{ChannelBinding, ScramClient, ScramHash};
use crate::stream::{Frame, XmlStream};
use crate::xml::*;
use crate::{BoxStream, TlsInfo, TlsMode, TlsUpgrade, XmppConfig, RESOURCE};

/// Known XMPP servers' onion services, used instead of the clearnet address
/// when the account names no host. Deliberately empty: we could not verify
/// any entry from here, and a wrong entry would send passwords to a stranger
/// (TLS pinning still applies, but a clear error is better than a silent
/// redirect). Add `(domain, onion, port)` entries only from the operator's
/// own signed announcement.
pub const KNOWN_ONIONS: &[(&str, &str, u16)] = &[];

/// Where to connect for `domain` when the account gives no host.
pub fn default_server(domain: &str) -> (String, u16) {
    for (d, onion, port) in KNOWN_ONIONS {
        if d.eq_ignore_ascii_case(domain) {
            return ((*onion).to_owned(), *port);
        }
    }
    (domain.to_owned(), 5222)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmOutcome {
    /// The server has no XEP-0198.
    Unsupported,
    /// Fresh session with stream management; `id` is set when resumable.
    Enabled { id: Option<String> },
    /// The old session was resumed; `h` is how many of our stanzas the
    /// server had handled.
    Resumed { h: u32 },
}

pub struct Established {
    pub xs: XmlStream<BoxStream>,
    pub tls: TlsInfo,
    /// Our full JID as bound by the server.
    pub jid: String,
    pub sm: SmOutcome,
    /// Stanzas that arrived while we were waiting for `<enabled/>`.
    pub pending: Vec<Element>,
    /// The resumption attempt was refused and a fresh session bound instead.
    pub resume_failed: bool,
}

/// A stream we want to resume: its id and how many stanzas we handled.
#[derive(Debug, Clone)]
pub struct ResumeToken {
    pub id: String,
    pub h: u32,
}

/// Runs the whole negotiation on an already-connected transport.
pub async fn establish(
    stream: BoxStream,
    cfg: &XmppConfig,
    tls: &dyn TlsUpgrade,
    resume: Option<&ResumeToken>,
) -> Result<Established, XmppError> {
    let t = cfg.timeout;
    let domain = cfg.domain().to_owned();
    let (mut xs, features, info) = match cfg.tls_mode() {
        TlsMode::Direct => {
            let (s, info) = tls.upgrade(stream, domain.clone()).await?;
            let mut xs = XmlStream::new(s, cfg.max_stanza);
            let f = open_stream(&mut xs, &domain, t).await?;
            (xs, f, info)
        }
        TlsMode::StartTls => {
            let mut xs = XmlStream::new(stream, cfg.max_stanza);
            let f = open_stream(&mut xs, &domain, t).await?;
            if !f.has_child("starttls", NS_TLS) {
                return Err(XmppError::NoTls);
            }
            xs.send(&Element::new("starttls", NS_TLS)).await?;
            let answer = read_stanza(&mut xs, t).await?;
            if !answer.is("proceed", NS_TLS) {
                return Err(XmppError::Tls(format!(
                    "the server answered STARTTLS with <{}>",
                    answer.name
                )));
            }
            let raw = xs.into_inner()?;
            let (s, info) = tls.upgrade(raw, domain.clone()).await?;
            let mut xs = XmlStream::new(s, cfg.max_stanza);
            let f = open_stream(&mut xs, &domain, t).await?;
            (xs, f, info)
        }
    };

    if cfg.register && resume.is_none() {
        crate::register::create(&mut xs, &features, cfg, t).await?;
    }
    authenticate(&mut xs, &features, cfg, &info).await?;
    let mut xs = xs.restart();
    let features = open_stream(&mut xs, &domain, t).await?;
    let sm_offered = features.has_child("sm", NS_SM) && cfg.stream_management;

    let mut resume_failed = false;
    if let (Some(tok), true) = (resume, sm_offered) {
        xs.send(
            &Element::new("resume", NS_SM)
                .with_attr("previd", tok.id.clone())
                .with_attr("h", tok.h.to_string()),
        )
        .await?;
        let a = read_stanza(&mut xs, t).await?;
        if a.is("resumed", NS_SM) {
            let h = parse_h(&a)?;
            return Ok(Established {
                xs,
                tls: info,
                jid: String::new(),
                sm: SmOutcome::Resumed { h },
                pending: Vec::new(),
                resume_failed: false,
            });
        } else if a.is("failed", NS_SM) {
            resume_failed = true;
        } else {
            return Err(XmppError::Protocol(format!(
                "unexpected <{}> in answer to <resume/>",
                a.name
            )));
        }
    } else if resume.is_some() {
        resume_failed = true;
    }

    if !features.has_child("bind", NS_BIND) {
        return Err(XmppError::Protocol(
            "the server offers no resource binding".into(),
        ));
    }
    let id = crate::random_id();
    xs.send(
        &Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone())
            .with_child(
                Element::new("bind", NS_BIND)
                    .with_child(Element::new("resource", NS_BIND).with_text(RESOURCE)),
            ),
    )
    .await?;
    let r = read_stanza(&mut xs, t).await?;
    if !r.is("iq", NS_CLIENT) || r.attr("id") != Some(&id) || r.attr("type") != Some("result") {
        return Err(XmppError::Protocol(format!(
            "resource binding refused: {}",
            stanza_error_text(&r)
        )));
    }
    let jid = r
        .child("bind", NS_BIND)
        .and_then(|b| b.child("jid", NS_BIND))
        .map(|j| j.text())
        .ok_or_else(|| XmppError::Protocol("bind result without a JID".into()))?;

    // RFC 3921 sessions: only if the server still insists.
    if let Some(s) = features.child("session", "urn:ietf:params:xml:ns:xmpp-session") {
        if !s.has_child("optional", "urn:ietf:params:xml:ns:xmpp-session") {
            let id = crate::random_id();
            xs.send(
                &Element::new("iq", NS_CLIENT)
                    .with_attr("type", "set")
                    .with_attr("id", id.clone())
                    .with_child(Element::new(
                        "session",
                        "urn:ietf:params:xml:ns:xmpp-session",
                    )),
            )
            .await?;
            let r = read_stanza(&mut xs, t).await?;
            if r.attr("type") != Some("result") {
                return Err(XmppError::Protocol("session establishment refused".into()));
            }
        }
    }

    let mut pending = Vec::new();
    let sm = if sm_offered {
        xs.send(&Element::new("enable", NS_SM).with_attr("resume", "true"))
            .await?;
        loop {
            let a = read_stanza(&mut xs, t).await?;
            if a.is("enabled", NS_SM) {
                let resumable = matches!(a.attr("resume"), Some("true") | Some("1"));
                break SmOutcome::Enabled {
                    id: a.attr("id").filter(|_| resumable).map(str::to_owned),
                };
            } else if a.is("failed", NS_SM) {
                break SmOutcome::Unsupported;
            } else if pending.len() < 64 {
                pending.push(a);
            } else {
                return Err(XmppError::Protocol("no answer to <enable/>".into()));
            }
        }
    } else {
        SmOutcome::Unsupported
    };

    Ok(Established {
        xs,
        tls: info,
        jid,
        sm,
        pending,
        resume_failed,
    })
}

/// Sends our stream header and reads the server's header and features.
/// No `from` and no `xml:lang`: before TLS the header is visible to the Tor
/// exit, and the language would hint at the user's locale.
async fn open_stream(
    xs: &mut XmlStream<BoxStream>,
    domain: &str,
    t: Duration,
) -> Result<Element, XmppError> {
    xs.send_raw(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
        escape(domain)
    ))
    .await?;
    match with_timeout(t, xs.next()).await? {
        Frame::StreamStart(h) => {
            if h.attr("version").is_none_or(|v| !v.starts_with('1')) {
                return Err(XmppError::Protocol(
                    "the server does not speak XMPP 1.0".into(),
                ));
            }
        }
        Frame::Stanza(e) => return Err(stream_error_or(e, "expected a stream header")),
        Frame::StreamEnd => return Err(XmppError::Closed),
    }
    let f = read_stanza(xs, t).await?;
    if !f.is("features", NS_STREAM) {
        return Err(XmppError::Protocol(format!(
            "expected stream features, got <{}>",
            f.name
        )));
    }
    Ok(f)
}

pub(crate) async fn with_timeout<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, XmppError>>,
) -> Result<T, XmppError> {
    tokio::time::timeout(t, f)
        .await
        .map_err(|_| XmppError::Timeout(t.as_secs()))?
}

/// Reads the next top-level element, turning `<stream:error/>` and the end
/// of the stream into errors.
pub(crate) async fn read_stanza(
    xs: &mut XmlStream<BoxStream>,
    t: Duration,
) -> Result<Element, XmppError> {
    match with_timeout(t, xs.next()).await? {
        Frame::Stanza(e) if e.is("error", NS_STREAM) => Err(stream_error(&e)),
        Frame::Stanza(e) => Ok(e),
        Frame::StreamStart(_) => Err(XmppError::Protocol("unexpected stream restart".into())),
        Frame::StreamEnd => Err(XmppError::Closed),
    }
}

fn stream_error_or(e: Element, what: &str) -> XmppError {
    if e.is("error", NS_STREAM) {
        stream_error(&e)
    } else {
        XmppError::Protocol(what.into())
    }
}

pub(crate) fn stream_error(e: &Element) -> XmppError {
    let condition = e
        .elements()
        .find(|c| c.ns == NS_STREAMS_ERR && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "undefined-condition".into());
    let text = e
        .child("text", NS_STREAMS_ERR)
        .map(|t| truncate(&t.text(), 200));
    XmppError::Stream { condition, text }
}

/// The condition and text of a stanza `<error/>`, for messages.
pub(crate) fn stanza_error_text(e: &Element) -> String {
    let Some(err) = e.child("error", &e.ns) else {
        return format!("unexpected <{}>", e.name);
    };
    let cond = err
        .elements()
        .find(|c| c.ns == NS_STANZAS && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "undefined-condition".into());
    match err.child("text", NS_STANZAS) {
        Some(t) => format!("{cond} ({})", truncate(&t.text(), 200)),
        None => cond,
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

pub(crate) fn parse_h(e: &Element) -> Result<u32, XmppError> {
    e.attr("h")
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| XmppError::Protocol(format!("<{}> without a valid h", e.name)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mech {
    Scram(ScramHash, bool),
    Plain,
}

/// Picks the strongest mechanism we accept among those offered.
fn choose_mechanism(
    offered: &[String],
    have_exporter: bool,
    cb_types: Option<&[String]>,
    allow_plain: bool,
) -> Option<Mech> {
    let has = |m: &str| offered.iter().any(|o| o == m);
    let exporter_ok =
        have_exporter && cb_types.is_none_or(|t| t.iter().any(|x| x == "tls-exporter"));
    let mut prefs = Vec::new();
    if exporter_ok {
        prefs.push(Mech::Scram(ScramHash::Sha256, true));
        prefs.push(Mech::Scram(ScramHash::Sha1, true));
    }
    prefs.push(Mech::Scram(ScramHash::Sha256, false));
    prefs.push(Mech::Scram(ScramHash::Sha1, false));
    if allow_plain {
        prefs.push(Mech::Plain);
    }
    prefs.into_iter().find(|m| match m {
        Mech::Scram(h, plus) => has(h.mechanism(*plus)),
        Mech::Plain => has("PLAIN"),
    })
}

async fn authenticate(
    xs: &mut XmlStream<BoxStream>,
    features: &Element,
    cfg: &XmppConfig,
    info: &TlsInfo,
) -> Result<(), XmppError> {
    let t = cfg.timeout;
    let offered: Vec<String> = features
        .child("mechanisms", NS_SASL)
        .map(|m| {
            m.elements()
                .filter(|e| e.is("mechanism", NS_SASL))
                .map(|e| e.text().trim().to_owned())
                .take(64)
                .collect()
        })
        .unwrap_or_default();
    let cb_types: Option<Vec<String>> = features.child("sasl-channel-binding", NS_CB).map(|c| {
        c.elements()
            .filter_map(|e| e.attr("type").map(str::to_owned))
            .take(16)
            .collect()
    });
    let mech = choose_mechanism(
        &offered,
        info.exporter.is_some(),
        cb_types.as_deref(),
        cfg.allow_plain,
    )
    .ok_or_else(|| XmppError::Auth(AuthError::NoMechanism(truncate(&offered.join(" "), 200))))?;
    let user = cfg.localpart();
    let mut scram = None;
    let (name, initial) = match mech {
        Mech::Plain => {
            let mut s = Zeroizing::new(Vec::new());
            s.push(0);
            s.extend_from_slice(user.as_bytes());
            s.push(0);
            s.extend_from_slice(cfg.password.as_bytes());
            ("PLAIN", Zeroizing::new(B64.encode(&*s)))
        }
        Mech::Scram(h, plus) => {
            let cb = match (&info.exporter, plus) {
                (Some(x), true) => ChannelBinding::TlsExporter(x.clone()),
                (Some(_), false) => {
                    // Only claim "supported but not offered" when the
                    // server really offered no -PLUS at all.
                    if offered.iter().any(|m| m.ends_with("-PLUS")) {
                        ChannelBinding::None
                    } else {
                        ChannelBinding::SupportedNotUsed
                    }
                }
                (None, _) => ChannelBinding::None,
            };
            let c = ScramClient::new(h, user, &cfg.password, cb, ScramClient::random_nonce());
            let first = Zeroizing::new(B64.encode(c.client_first()));
            scram = Some(c);
            (h.mechanism(plus), first)
        }
    };
    xs.send_raw(
        &Element::new("auth", NS_SASL)
            .with_attr("mechanism", name)
            .with_text(initial.as_str())
            .to_xml(),
    )
    .await?;
    let mut verified = false;
    let mut step = 0;
    loop {
        step += 1;
        if step > 4 {
            return Err(XmppError::Auth(AuthError::BadScram(
                "too many challenges".into(),
            )));
        }
        let e = read_stanza(xs, t).await?;
        if e.ns != NS_SASL {
            return Err(XmppError::Protocol(format!(
                "unexpected <{}> during SASL",
                e.name
            )));
        }
        let data = || -> Result<String, XmppError> {
            let txt = e.text();
            let txt = txt.trim();
            if txt.is_empty() || txt == "=" {
                return Ok(String::new());
            }
            let raw = B64.decode(txt).map_err(|_| {
                XmppError::Auth(AuthError::BadScram("payload is not base64".into()))
            })?;
            String::from_utf8(raw).map_err(|_| XmppError::InvalidUtf8)
        };
        match e.name.as_str() {
            "challenge" => {
                let Some(c) = scram.as_mut() else {
                    return Err(XmppError::Protocol(
                        "unexpected SASL challenge for PLAIN".into(),
                    ));
                };
                let d = data()?;
                let resp = if step == 1 {
                    c.handle_server_first(&d).map_err(XmppError::Auth)?
                } else {
                    c.verify_server_final(&d).map_err(XmppError::Auth)?;
                    verified = true;
                    String::new()
                };
                xs.send(&Element::new("response", NS_SASL).with_text(B64.encode(resp)))
                    .await?;
            }
            "success" => {
                if let Some(c) = &scram {
                    if !verified {
                        let d = data()?;
                        c.verify_server_final(&d).map_err(XmppError::Auth)?;
                    }
                }
                return Ok(());
            }
            "failure" => {
                let cond = e
                    .elements()
                    .find(|c| c.name != "text")
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "unknown".into());
                let text = e
                    .child("text", NS_SASL)
                    .map(|t| format!(": {}", truncate(&t.text(), 200)))
                    .unwrap_or_default();
                return Err(XmppError::Auth(match cond.as_str() {
                    "not-authorized" | "credentials-expired" | "account-disabled" => {
                        AuthError::NotAuthorized
                    }
                    "aborted" => AuthError::Aborted(format!("{cond}{text}")),
                    _ => AuthError::Failure(format!("{cond}{text}")),
                }));
            }
            other => {
                return Err(XmppError::Protocol(format!(
                    "unexpected <{other}> during SASL"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn mechanism_preference() {
        let all = v(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256"]);
        assert_eq!(
            choose_mechanism(&all, true, None, true),
            Some(Mech::Scram(ScramHash::Sha1, true))
        );
        assert_eq!(
            choose_mechanism(&all, false, None, true),
            Some(Mech::Scram(ScramHash::Sha256, false))
        );
        // The server says it only binds tls-unique: no -PLUS.
        assert_eq!(
            choose_mechanism(&all, true, Some(&v(&["tls-unique"])), true),
            Some(Mech::Scram(ScramHash::Sha256, false))
        );
        assert_eq!(choose_mechanism(&v(&["PLAIN"]), true, None, false), None);
        assert_eq!(
            choose_mechanism(&v(&["PLAIN"]), true, None, true),
            Some(Mech::Plain)
        );
        assert_eq!(
            choose_mechanism(&v(&["DIGEST-MD5"]), true, None, true),
            None
        );
    }

    #[test]
    fn no_dns_default_server() {
        assert_eq!(default_server("example.org"), ("example.org".into(), 5222));
    }
}
