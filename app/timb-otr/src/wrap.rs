//! Puts OTR between the GUI and a protocol account.
//!
//! [`wrap`] takes a protocol's [`AccountHandle`] and returns another one that looks the same
//! to the GUI: every one-to-one `Command::Send` goes through libotr (held until the AKE
//! completes, then emitted only as `?OTR` data, one protocol message per fragment), group
//! traffic passes untouched, and incoming direct messages come out decrypted. What only OTR
//! knows (secure/insecure, fingerprints, SMP, held and undelivered messages, refusals) arrives
//! on [`OtrControl::events`], which the GUI must keep reading.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use timb_core::{AccountHandle, AccountId, Command, Event, MessageKind, Protocol, Target};
use tokio::sync::mpsc;

use crate::actor::{OtrActor, OtrHandle};
use crate::{
    AccountConfig, ConversationState, OtrError, OtrEvent, OtrSession, Output, PeerFingerprint,
};

/// Capacity of every channel this layer creates (commands, events, control events).
const CHANNEL: usize = 64;

/// What the OTR layer tells the GUI besides protocol events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    Otr(OtrEvent),
    /// A one-to-one message the GUI asked to send was refused (nothing was sent).
    SendRefused {
        peer: String,
        error: OtrError,
    },
    /// A received message libotr could not take (too large, NUL, ...); it was dropped.
    ReceiveRefused {
        peer: String,
        error: OtrError,
    },
    /// Account-level failure (key generation could not start, OTR thread gone).
    Failed(OtrError),
}

/// The GUI's handle on OTR for one wrapped account.
pub struct OtrControl {
    pub account: AccountId,
    pub protocol: Protocol,
    pub events: mpsc::Receiver<ControlEvent>,
    link: Link,
    /// Owns the OTR thread; in a Mutex only so the control is `Sync` (never locked).
    _actor: std::sync::Mutex<OtrActor>,
}

/// Everything a task needs to talk to libotr and to the protocol.
#[derive(Clone)]
struct Link {
    otr: OtrHandle,
    /// The protocol's own command channel: only OTR data and group traffic go here.
    wire: mpsc::Sender<Command>,
    control: mpsc::Sender<ControlEvent>,
}

impl Link {
    /// Runs `f` on the OTR thread without blocking the async runtime.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut OtrSession) -> R + Send + 'static,
    ) -> Result<R, OtrError> {
        let otr = self.otr.clone();
        tokio::task::spawn_blocking(move || otr.call(f))
            .await
            .map_err(|_| OtrError::Internal)?
    }

    /// Sends each outgoing OTR message as its own protocol message, then reports events.
    async fn deliver(&self, out: Output) {
        for o in out.outgoing {
            debug_assert!(o.body.starts_with("?OTR"));
            if self.wire.send(o.to_command()).await.is_err() {
                return;
            }
        }
        for e in out.events {
            let _ = self.control.send(ControlEvent::Otr(e)).await;
        }
    }

    async fn run(
        &self,
        f: impl FnOnce(&mut OtrSession) -> Result<Output, OtrError> + Send + 'static,
    ) -> Result<(), OtrError> {
        let out = self.call(f).await??;
        self.deliver(out).await;
        Ok(())
    }
}

/// Wraps `account` so its one-to-one messages are OTR-encrypted (policy ALWAYS).
///
/// `store_dir` holds this account's OTR keys, instance tags and verified fingerprints
/// (created owner-only); give each account its own folder, e.g.
/// `Profile::subdir("otr")/<account id>`, because each wrapped account owns a libotr userstate
/// that rewrites the key file. `name` is the identity keys are filed under (the bare JID, or
/// `nick@network` for IRC) and must stay the same across runs. A missing private key starts
/// generating at once in the background; its progress is reported on the control channel.
///
/// Must be called inside a tokio runtime.
pub fn wrap(
    account: AccountHandle,
    store_dir: &Path,
    name: &str,
) -> Result<(AccountHandle, OtrControl), OtrError> {
    wrap_with(account, store_dir, name, None)
}

/// Fragment size for an IRC account named `nick@network`: what fits one relayed
/// `:nick!user@host PRIVMSG target :body` line of 512 bytes, so the IRC layer never has to cut
/// a fragment in two (a cut fragment is unreadable). Like timb-irc's own budget it assumes a
/// 12-byte user and a 72-byte host; nicks are assumed to be at most 32 bytes (ours: its real
/// length if longer), which covers NICKLEN 30 plus collision suffixes.
pub fn irc_fragment_size(name: &str) -> usize {
    let nick = name.split('@').next().unwrap_or(name).len().max(32);
    let target = 32;
    let overhead = 1 + nick + 1 + 12 + 1 + 72 + 1 + "PRIVMSG".len() + 1 + target + 2 + 2;
    512usize
        .saturating_sub(overhead)
        .clamp(64, crate::IRC_MAX_MESSAGE_SIZE)
}

/// [`wrap`] with a fragment size override (`None`: [`irc_fragment_size`] for IRC, unlimited
/// for XMPP).
pub fn wrap_with(
    account: AccountHandle,
    store_dir: &Path,
    name: &str,
    max_message_size: Option<usize>,
) -> Result<(AccountHandle, OtrControl), OtrError> {
    wrap_store(account, Some(store_dir), name, max_message_size)
}

/// [`wrap`] for an account the user did not ask to remember: its OTR key, instance tag and
/// verified fingerprints live in memory only (a new key each session, nothing on disk).
pub fn wrap_in_memory(
    account: AccountHandle,
    name: &str,
) -> Result<(AccountHandle, OtrControl), OtrError> {
    wrap_store(account, None, name, None)
}

fn wrap_store(
    account: AccountHandle,
    store_dir: Option<&Path>,
    name: &str,
    max_message_size: Option<usize>,
) -> Result<(AccountHandle, OtrControl), OtrError> {
    let AccountHandle {
        id,
        protocol,
        commands: wire,
        events: mut wire_events,
    } = account;
    let actor = OtrActor::spawn_in(
        store_dir.map(Path::to_path_buf),
        vec![AccountConfig {
            id,
            protocol,
            name: name.to_string(),
            max_message_size: max_message_size.or(match protocol {
                Protocol::Irc => Some(irc_fragment_size(name)),
                Protocol::Xmpp => None,
            }),
        }],
    )?;
    let (gui_cmd_tx, mut gui_cmd_rx) = mpsc::channel::<Command>(CHANNEL);
    let (gui_ev_tx, gui_ev_rx) = mpsc::channel::<Event>(CHANNEL);
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlEvent>(CHANNEL);
    let link = Link {
        otr: actor.handle.clone(),
        wire,
        control: ctl_tx,
    };

    // Timer polls, key generation progress, re-sent queries: produced on the OTR thread. The
    // receiver is std's, so a plain thread forwards it (blocking sends are fine outside the
    // runtime). It holds no OtrHandle: the OTR thread ends once the tasks and control are gone.
    let mut actor = actor;
    let background = std::mem::replace(&mut actor.background, std_mpsc::channel().1);
    {
        let (wire, control) = (link.wire.clone(), link.control.clone());
        std::thread::Builder::new()
            .name("otr-background".into())
            .spawn(move || {
                while let Ok(out) = background.recv() {
                    for o in out.outgoing {
                        if wire.blocking_send(o.to_command()).is_err() {
                            return;
                        }
                    }
                    for e in out.events {
                        if control.blocking_send(ControlEvent::Otr(e)).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(|_| OtrError::Internal)?;
    }

    // Start the key now so the first message does not wait for it.
    {
        let link = link.clone();
        tokio::spawn(async move {
            if let Err(error) = link.run(move |s| s.generate_key(id)).await {
                let _ = link.control.send(ControlEvent::Failed(error)).await;
            }
        });
    }

    // GUI -> protocol.
    {
        let link = link.clone();
        tokio::spawn(async move {
            while let Some(cmd) = gui_cmd_rx.recv().await {
                match cmd {
                    Command::Send {
                        to: Target::Direct(peer),
                        body,
                        kind,
                    } => {
                        let text = match kind {
                            MessageKind::Action => format!("/me {body}"),
                            MessageKind::Normal | MessageKind::Notice => body,
                        };
                        let p = peer.clone();
                        let r = link
                            .run(move |s| s.send(id, &Target::Direct(p), &text))
                            .await;
                        if let Err(error) = r {
                            let _ = link
                                .control
                                .send(ControlEvent::SendRefused { peer, error })
                                .await;
                        }
                    }
                    other => {
                        if link.wire.send(other).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }

    // Protocol -> GUI.
    {
        let link = link.clone();
        tokio::spawn(async move {
            while let Some(ev) = wire_events.recv().await {
                let ev = match ev {
                    Event::Message {
                        from: Target::Direct(peer),
                        sender,
                        body,
                        kind: _,
                        received_at,
                    } => {
                        let p = peer.clone();
                        let r = link.call(move |s| s.receive(id, &p, &body)).await;
                        match r.and_then(|r| r) {
                            Err(error) => {
                                let _ = link
                                    .control
                                    .send(ControlEvent::ReceiveRefused { peer, error })
                                    .await;
                                continue;
                            }
                            Ok(r) => {
                                link.deliver(r.output).await;
                                let Some(text) = r.message else { continue };
                                let (body, kind) = match text.strip_prefix("/me ") {
                                    Some(rest) => (rest.to_string(), MessageKind::Action),
                                    None => (text, MessageKind::Normal),
                                };
                                Event::Message {
                                    from: Target::Direct(peer),
                                    sender,
                                    body,
                                    kind,
                                    received_at,
                                }
                            }
                        }
                    }
                    other => other,
                };
                if gui_ev_tx.send(ev).await.is_err() {
                    return;
                }
            }
        });
    }

    let actor = std::sync::Mutex::new(actor);
    Ok((
        AccountHandle {
            id,
            protocol,
            commands: gui_cmd_tx,
            events: gui_ev_rx,
        },
        OtrControl {
            account: id,
            protocol,
            events: ctl_rx,
            link,
            _actor: actor,
        },
    ))
}

impl OtrControl {
    /// Our fingerprint in libotr's human format, once the key exists.
    pub async fn fingerprint(&self) -> Option<String> {
        let id = self.account;
        self.link
            .call(move |s| s.fingerprint(id))
            .await
            .ok()
            .flatten()
    }

    pub async fn state(&self, peer: &str) -> ConversationState {
        let (id, p) = (self.account, peer.to_string());
        self.link
            .call(move |s| s.state(id, &p))
            .await
            .unwrap_or(ConversationState::Plaintext)
    }

    pub async fn held_count(&self, peer: &str) -> usize {
        let (id, p) = (self.account, peer.to_string());
        self.link
            .call(move |s| s.held_count(id, &p))
            .await
            .unwrap_or(0)
    }

    pub async fn peer_fingerprints(&self, peer: &str) -> Vec<PeerFingerprint> {
        let (id, p) = (self.account, peer.to_string());
        self.link
            .call(move |s| s.peer_fingerprints(id, &p))
            .await
            .unwrap_or_default()
    }

    /// Starts (or restarts, after the peer ended it) the private conversation.
    pub async fn start(&self, peer: &str) -> Result<(), OtrError> {
        let (id, p) = (self.account, peer.to_string());
        self.link.run(move |s| s.start(id, &p)).await
    }

    /// Ends the private conversation and tells the peer; held messages are dropped.
    pub async fn end(&self, peer: &str) -> Result<(), OtrError> {
        let (id, p) = (self.account, peer.to_string());
        self.link.run(move |s| s.end(id, &p)).await
    }

    pub async fn set_verified(
        &self,
        peer: &str,
        fingerprint: &str,
        verified: bool,
    ) -> Result<(), OtrError> {
        let (id, p, f) = (self.account, peer.to_string(), fingerprint.to_string());
        self.link
            .call(move |s| s.set_verified(id, &p, &f, verified))
            .await?
    }

    pub async fn smp_start(
        &self,
        peer: &str,
        question: Option<&str>,
        secret: &str,
    ) -> Result<(), OtrError> {
        let id = self.account;
        let (p, q) = (peer.to_string(), question.map(str::to_string));
        let secret = zeroizing(secret);
        self.link
            .run(move |s| s.smp_start(id, &p, q.as_deref(), &secret.0))
            .await
    }

    pub async fn smp_respond(&self, peer: &str, secret: &str) -> Result<(), OtrError> {
        let (id, p) = (self.account, peer.to_string());
        let secret = zeroizing(secret);
        self.link
            .run(move |s| s.smp_respond(id, &p, &secret.0))
            .await
    }

    pub async fn smp_abort(&self, peer: &str) -> Result<(), OtrError> {
        let (id, p) = (self.account, peer.to_string());
        self.link.run(move |s| s.smp_abort(id, &p)).await
    }

    /// How long held messages wait for the AKE before being dropped unsent (default 120 s).
    pub async fn set_hold_timeout(&self, d: Duration) -> Result<(), OtrError> {
        self.link.call(move |s| s.set_hold_timeout(d)).await
    }
}

/// An SMP secret copy that is wiped when dropped.
struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        let mut b = std::mem::take(&mut self.0).into_bytes();
        b.fill(0);
        std::hint::black_box(&b);
    }
}

fn zeroizing(s: &str) -> Secret {
    Secret(s.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn irc_fragments_fit_a_relayed_line() {
        // 512 - (":" 32 "!" 12 "@" 72 " PRIVMSG " 32 " :" CRLF) = 348.
        assert_eq!(super::irc_fragment_size("ircA@irc.test"), 348);
        assert_eq!(
            super::irc_fragment_size(&format!("{}@n", "x".repeat(40))),
            340
        );
        assert_eq!(
            super::irc_fragment_size(&format!("{}@n", "x".repeat(400))),
            64
        );
    }

    #[test]
    fn control_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::OtrControl>();
        send_sync::<super::ControlEvent>();
    }
}
