//! What the window shows, as plain data, and [`apply`]: the one place an event
//! from the backend changes it.
//!
//! `apply` is a pure function of the model and the event: it touches no window
//! and sends no request, and returns [`Changes`] saying what the view must
//! redraw. So every privacy transition can be tested without a display, and
//! the window cannot show a state the model does not hold.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use timb_core::{AccountError, AccountId, ConnectionState, Event, MessageKind, Presence, Target};

use crate::accounts::{self, Account};
use crate::backend::{KeyGen, OtrNote, SmpEvent, TorFailureKind, TorStatus, UiEvent};
use crate::state::{self, Conversation, Message, Privacy, Status};
use crate::{ConnState, TorState};

/// Pending subscription requests kept per account; more are ignored, not queued.
pub const MAX_REQUESTS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub online: bool,
}

/// One account and everything known about it this session.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: AccountId,
    pub account: Account,
    pub state: ConnState,
    /// Why the account last failed, until it connects or the user retries.
    pub error: Option<AccountError>,
    pub roster: BTreeMap<String, Contact>,
    pub requests: Vec<String>,
    /// Our nick in each joined group.
    pub groups: BTreeMap<String, String>,
    pub conversations: HashMap<Target, Conversation>,
    /// IRC nicks we talk to outside the roster that quit (or renamed), until
    /// they are seen again: IRC has no presence, so this is all there is.
    pub gone: BTreeSet<String>,
    /// A trust-on-first-use server's key (SHA-256 of its public key, hex),
    /// while connected, for the user to compare out of band.
    pub server_key: Option<String>,
    pub my_fingerprint: Option<String>,
    /// The account was created on the server at this connection.
    pub created: bool,
}

impl Entry {
    pub fn new(id: AccountId, account: Account) -> Entry {
        Entry {
            id,
            account,
            state: ConnState::Disconnected,
            error: None,
            roster: BTreeMap::new(),
            requests: Vec::new(),
            groups: BTreeMap::new(),
            conversations: HashMap::new(),
            gone: BTreeSet::new(),
            server_key: None,
            my_fingerprint: None,
            created: false,
        }
    }

    pub fn is_irc(&self) -> bool {
        self.account.settings.protocol == accounts::SavedProtocol::Irc
    }

    /// Conversations are keyed by bare JID (any resource) or IRC nick.
    pub fn key(&self, t: &Target) -> Target {
        match t {
            Target::Direct(n) if !self.is_irc() => {
                Target::Direct(n.split('/').next().unwrap_or(n).to_owned())
            }
            other => other.clone(),
        }
    }

    pub fn my_name(&self) -> String {
        let id = &self.account.settings.identity;
        id.split('@').next().unwrap_or(id).to_owned()
    }

    pub fn conversation(&mut self, t: &Target) -> &mut Conversation {
        let k = self.key(t);
        self.conversations
            .entry(k.clone())
            .or_insert_with(|| Conversation::new(k))
    }
}

/// Tor as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TorView {
    pub state: TorState,
    pub progress: f32,
    pub phase: timb_tor::TorPhase,
    pub failure: Option<(TorFailureKind, String)>,
    /// How many bridges the start under way (or the last one) goes through.
    pub route_bridges: usize,
}

/// Everything the window shows, without the window.
#[derive(Debug, Clone)]
pub struct Model {
    pub entries: Vec<Entry>,
    next_id: u32,
    /// The open conversation.
    pub current: Option<(AccountId, Target)>,
    pub tor: TorView,
    pub keygen: Option<KeyGen>,
    /// The update check, once one ran this session.
    pub update: Option<crate::backend::UpdateStatus>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            entries: Vec::new(),
            next_id: 1,
            current: None,
            tor: TorView {
                state: TorState::Idle,
                progress: 0.0,
                phase: timb_tor::TorPhase::default(),
                failure: None,
                route_bridges: 0,
            },
            keygen: None,
            update: None,
        }
    }
}

/// What an [`apply`] changed, for the view to redraw; nothing else needs to be.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub accounts: bool,
    pub contacts: bool,
    /// The open conversation's rows (and members) must be rebuilt.
    pub conversation: bool,
    /// Only the open conversation's header: privacy, fingerprints, SMP.
    pub conversation_state: bool,
    /// Messages added to the open conversation, and how many old ones the
    /// scrollback dropped, so the view can update rows instead of rebuilding.
    pub appended: Vec<Message>,
    pub dropped: usize,
    pub tor: bool,
    pub keygen: bool,
    pub update: bool,
    /// A conversation was opened (the view focuses the message field).
    pub opened: bool,
    /// The open conversation was closed.
    pub closed: bool,
    /// The peer asked an SMP question in the open conversation: show the dialog.
    pub show_verify: bool,
}

impl Changes {
    fn merge(&mut self, o: Changes) {
        self.accounts |= o.accounts;
        self.contacts |= o.contacts;
        self.conversation |= o.conversation;
        self.conversation_state |= o.conversation_state;
        self.appended.extend(o.appended);
        self.dropped += o.dropped;
        self.tor |= o.tor;
        self.keygen |= o.keygen;
        self.opened |= o.opened;
        self.closed |= o.closed;
        self.show_verify |= o.show_verify;
    }
}

impl Model {
    pub fn entry(&self, id: AccountId) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn entry_mut(&mut self, id: AccountId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    pub fn add_entry(&mut self, account: Account) -> AccountId {
        let id = AccountId(self.next_id);
        self.next_id += 1;
        self.entries.push(Entry::new(id, account));
        id
    }

    /// The open conversation and its account.
    pub fn current_conv(&self) -> Option<(&Entry, &Conversation)> {
        let (id, t) = self.current.as_ref()?;
        let e = self.entry(*id)?;
        Some((e, e.conversations.get(t)?))
    }

    pub fn current_peer(&self) -> Option<(AccountId, String)> {
        match &self.current {
            Some((id, Target::Direct(p))) => Some((*id, p.clone())),
            _ => None,
        }
    }

    pub fn is_current(&self, id: AccountId, peer: &str) -> bool {
        match (&self.current, self.entry(id)) {
            (Some((a, t)), Some(e)) => *a == id && *t == e.key(&Target::Direct(peer.to_owned())),
            _ => false,
        }
    }

    pub fn with_conv<R>(
        &mut self,
        id: AccountId,
        peer: &str,
        f: impl FnOnce(&mut Conversation) -> R,
    ) -> Option<R> {
        let e = self.entry_mut(id)?;
        let t = Target::Direct(peer.to_owned());
        Some(f(e.conversation(&t)))
    }

    /// Makes `target` the open conversation, read.
    pub fn open_conversation(&mut self, id: AccountId, target: &Target) -> Changes {
        let Some(e) = self.entry_mut(id) else {
            return Changes::default();
        };
        let key = e.key(target);
        e.conversation(&key).unread = 0;
        self.current = Some((id, key));
        Changes {
            conversation: true,
            contacts: true,
            opened: true,
            ..Changes::default()
        }
    }

    pub fn close_conversation(&mut self) -> Changes {
        self.current = None;
        Changes {
            closed: true,
            ..Changes::default()
        }
    }

    /// Adds a message to a conversation; counts it unread unless it is open.
    pub fn append(&mut self, id: AccountId, target: &Target, m: Message) -> Changes {
        let current = self.current.clone();
        let Some(e) = self.entry_mut(id) else {
            return Changes::default();
        };
        let key = e.key(target);
        let is_current = current.as_ref() == Some(&(id, key.clone()));
        let conv = e.conversation(&key);
        if !is_current && !m.outgoing && m.status != Status::Notice {
            conv.unread = conv.unread.saturating_add(1);
        }
        let shown = m.clone();
        let dropped = conv.push(m);
        if is_current {
            Changes {
                appended: vec![shown],
                dropped,
                ..Changes::default()
            }
        } else {
            Changes {
                contacts: true,
                ..Changes::default()
            }
        }
    }

    /// After a change to `peer`'s conversation: what of the view it touches.
    fn conv_changed(&self, id: AccountId, peer: &str, rows: bool) -> Changes {
        let open = self.is_current(id, peer);
        Changes {
            conversation: open && rows,
            conversation_state: open && !rows,
            ..Changes::default()
        }
    }

    fn set_tor(&mut self, s: TorStatus) -> Changes {
        let t = &mut self.tor;
        match s {
            TorStatus::Starting { fraction, phase } => {
                t.state = TorState::Starting;
                t.progress = fraction.clamp(0.0, 1.0);
                t.phase = phase;
            }
            TorStatus::Ready => {
                t.state = TorState::Ready;
                t.progress = 1.0;
            }
            TorStatus::Failed { kind, detail } => {
                t.state = TorState::Failed;
                t.failure = Some((kind, detail));
            }
            TorStatus::Route { bridges } => t.route_bridges = bridges,
        }
        Changes {
            tor: true,
            ..Changes::default()
        }
    }
}

/// Applies one backend event to the model: the whole of what an event means
/// to the window, with no window in sight.
pub fn apply(m: &mut Model, ev: UiEvent) -> Changes {
    match ev {
        UiEvent::Tor(s) => m.set_tor(s),
        UiEvent::Update(s) => {
            m.update = Some(s);
            Changes {
                update: true,
                ..Changes::default()
            }
        }
        UiEvent::Account(id, e) => account_event(m, id, e),
        UiEvent::Otr(n) => otr_note(m, n),
    }
}

/// What the user's own actions that do not wait for the backend do to the
/// model, applied the same way (Tor shown as starting when asked to connect).
pub fn starting_tor(m: &mut Model) -> Changes {
    m.set_tor(TorStatus::Starting {
        fraction: 0.0,
        phase: timb_tor::TorPhase::default(),
    })
}

fn account_event(m: &mut Model, id: AccountId, ev: Event) -> Changes {
    let mut ch = Changes::default();
    let Some(e) = m.entry_mut(id) else {
        return ch;
    };
    match ev {
        Event::State(s) => {
            // A trust-on-first-use server's key, as this connection met it
            // (the TLS layer refused it had it differed from the first).
            e.server_key = match &s {
                ConnectionState::Connected { spki_sha256 }
                    if e.account.settings.tls == accounts::TlsMode::Tofu =>
                {
                    spki_sha256.clone()
                }
                ConnectionState::Reconnecting => e.server_key.take(),
                _ => None,
            };
            e.state = match s {
                ConnectionState::Disconnected if e.state == ConnState::Failed => ConnState::Failed,
                ConnectionState::Disconnected => ConnState::Disconnected,
                ConnectionState::Connecting => ConnState::Connecting,
                ConnectionState::Connected { .. } => ConnState::Connected,
                ConnectionState::Reconnecting => ConnState::Reconnecting,
            };
            let connected = e.state == ConnState::Connected;
            if connected {
                e.error = None;
            }
            if e.state == ConnState::Connecting {
                e.created = false;
            }
            if matches!(e.state, ConnState::Disconnected | ConnState::Failed) {
                for c in e.roster.values_mut() {
                    c.online = false;
                }
                e.gone.clear();
                ch.contacts = true;
            }
            ch.accounts = true;
            if connected {
                ch.merge(m.set_tor(TorStatus::Ready));
            }
        }
        Event::AccountCreated => {
            // Created once; from now on connecting only logs in.
            e.account.create = false;
            e.created = true;
            ch.accounts = true;
        }
        Event::Error(err) => {
            // A refused request (a group that cannot be joined, ...) leaves a connected
            // account connected; the error is shown under it either way.
            if !(e.state == ConnState::Connected
                && matches!(
                    err,
                    AccountError::Refused(_)
                        | AccountError::Notice(_)
                        | AccountError::GroupRefused { .. }
                        | AccountError::NotDelivered { .. }
                ))
            {
                e.state = ConnState::Failed;
            }
            e.error = Some(err);
            ch.accounts = true;
        }
        Event::Message {
            from,
            sender,
            body,
            kind,
            received_at,
        } => {
            let who = match (&from, sender) {
                (Target::Group(_), Some(s)) => state::sanitize(&s),
                (Target::Group(_), None) => String::new(),
                (Target::Direct(_), _) => {
                    let k = e.key(&from).name().to_owned();
                    // Someone who speaks is there.
                    ch.contacts |= e.gone.remove(&k);
                    e.roster.get(&k).and_then(|c| c.name.clone()).unwrap_or(k)
                }
            };
            let body = state::sanitize(&body);
            let (body, status) = match kind {
                MessageKind::Action => (format!("* {who} {body}"), Status::Received),
                MessageKind::Notice if who.is_empty() => (body, Status::Notice),
                _ => (body, Status::Received),
            };
            let msg = Message {
                sender: who,
                received_at,
                body,
                status,
                outgoing: false,
            };
            ch.merge(m.append(id, &from, msg));
        }
        Event::Presence { contact, presence } => {
            let bare = e.key(&Target::Direct(contact)).name().to_owned();
            if let Some(c) = e.roster.get_mut(&bare) {
                c.online = presence == Presence::Available;
                ch.contacts = true;
            } else if presence == Presence::Available {
                ch.contacts |= e.gone.remove(&bare);
            } else if e.conversations.contains_key(&Target::Direct(bare.clone())) {
                // Only nicks with a conversation: a busy channel's quits
                // would otherwise grow this without bound.
                ch.contacts |= e.gone.insert(bare);
            }
        }
        Event::RosterSet(item) => {
            if e.roster.len() < state::MAX_CONTACTS || e.roster.contains_key(&item.id) {
                // A roster change (a request accepted, a rename) says nothing about
                // presence: keep what we know.
                let online = e.roster.get(&item.id).is_some_and(|c| c.online);
                e.roster.insert(
                    item.id.clone(),
                    Contact {
                        name: item.name.map(|n| state::sanitize(&n)),
                        online,
                    },
                );
            }
            ch.contacts = true;
        }
        Event::RosterRemoved(jid) => {
            e.roster.remove(&jid);
            ch.contacts = true;
        }
        Event::SubscriptionRequest { from } => {
            if e.requests.len() < MAX_REQUESTS && !e.requests.contains(&from) {
                e.requests.push(state::sanitize(&from));
            }
            ch.contacts = true;
        }
        Event::GroupJoined { room, nick } => {
            e.groups.insert(room.clone(), nick);
            let t = Target::Group(room);
            e.conversation(&t);
            if m.current.is_none() {
                ch.merge(m.open_conversation(id, &t));
            } else {
                ch.contacts = true;
            }
        }
        Event::GroupLeft { room } => {
            e.groups.remove(&room);
            let t = Target::Group(room);
            e.conversations.remove(&t);
            if m.current == Some((id, t)) {
                ch.merge(m.close_conversation());
            }
            ch.contacts = true;
        }
        Event::GroupMembers { room, members } => {
            let t = Target::Group(room);
            e.conversation(&t)
                .set_members(members.iter().map(|n| state::sanitize(n)).collect());
            ch.conversation = m.current == Some((id, t));
        }
        Event::MemberJoined { room, nick } => {
            let t = Target::Group(room);
            e.conversation(&t).add_member(&state::sanitize(&nick));
            ch.conversation = m.current == Some((id, t));
        }
        Event::MemberLeft { room, nick } => {
            let t = Target::Group(room);
            e.conversation(&t).remove_member(&nick);
            ch.conversation = m.current == Some((id, t));
        }
        Event::Topic { room, topic } => {
            let msg = notice(state::sanitize(&topic));
            ch.merge(m.append(id, &Target::Group(room), msg));
        }
    }
    ch
}

/// A local line in a conversation, from no one.
fn notice(body: String) -> Message {
    Message {
        sender: String::new(),
        received_at: timb_core::unix_now(),
        body,
        status: Status::Notice,
        outgoing: false,
    }
}

fn otr_note(m: &mut Model, n: OtrNote) -> Changes {
    match n {
        OtrNote::KeyGen { state, .. } => {
            m.keygen = Some(state);
            Changes {
                keygen: true,
                ..Changes::default()
            }
        }
        OtrNote::OurFingerprint {
            account,
            fingerprint,
        } => {
            if let Some(e) = m.entry_mut(account) {
                e.my_fingerprint = Some(state::human_fingerprint(&fingerprint));
            }
            Changes {
                conversation_state: true,
                ..Changes::default()
            }
        }
        // Held: the state does not change (an ended conversation stays ended).
        OtrNote::Waiting { account, peer, .. } => m.conv_changed(account, &peer, false),
        OtrNote::Secure {
            account,
            peer,
            fingerprint,
            verified,
        } => {
            m.with_conv(account, &peer, |c| {
                c.privacy = if verified {
                    Privacy::PrivateVerified
                } else {
                    Privacy::PrivateUnverified
                };
                c.their_fingerprint = Some(state::human_fingerprint(&fingerprint));
                c.release_waiting();
                c.unanswered = false;
            });
            m.conv_changed(account, &peer, true)
        }
        OtrNote::Insecure { account, peer } => {
            m.with_conv(account, &peer, |c| {
                if c.privacy != Privacy::Ended {
                    c.privacy = Privacy::NotPrivate;
                }
            });
            m.conv_changed(account, &peer, false)
        }
        OtrNote::Ended { account, peer } => {
            m.with_conv(account, &peer, |c| c.privacy = Privacy::Ended);
            m.conv_changed(account, &peer, false)
        }
        OtrNote::Smp {
            account,
            peer,
            event,
        } => {
            let asked = m
                .with_conv(account, &peer, |c| {
                    let step = match event {
                        SmpEvent::AskedQuestion(q) => SmpEvent::AskedQuestion(state::sanitize(&q)),
                        SmpEvent::InProgress(p) => SmpEvent::InProgress(p.min(100)),
                        SmpEvent::Succeeded => {
                            if c.privacy == Privacy::PrivateUnverified {
                                c.privacy = Privacy::PrivateVerified;
                            }
                            SmpEvent::Succeeded
                        }
                        other => other,
                    };
                    let asked = matches!(step, SmpEvent::AskedQuestion(_) | SmpEvent::AskedSecret);
                    c.smp = Some(step);
                    asked
                })
                .unwrap_or(false);
            let mut ch = m.conv_changed(account, &peer, false);
            // A question from the peer needs an answer: bring the dialog up.
            ch.show_verify = asked && m.is_current(account, &peer);
            ch
        }
        OtrNote::Undelivered {
            account,
            peer,
            count,
        } => {
            m.with_conv(account, &peer, |c| {
                c.mark_undelivered(count);
                c.unanswered = true;
            });
            m.conv_changed(account, &peer, true)
        }
        OtrNote::Unencrypted {
            account,
            peer,
            body,
        } => {
            let t = Target::Direct(peer.clone());
            let sender = m
                .entry(account)
                .map(|e| e.key(&t).name().to_owned())
                .unwrap_or(peer);
            let msg = Message {
                sender,
                received_at: timb_core::unix_now(),
                body: state::sanitize(&body),
                status: Status::Unencrypted,
                outgoing: false,
            };
            m.append(account, &t, msg)
        }
        OtrNote::Problem {
            account,
            peer,
            text,
        } => m.append(account, &Target::Direct(peer), notice(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{validate, FormInput};
    use timb_core::RosterItem;

    const A: AccountId = AccountId(1);
    const PEER: &str = "bob@example.org";

    fn model() -> Model {
        let mut m = Model::default();
        let account = validate(&FormInput {
            irc: false,
            server: "example.org".into(),
            port: String::new(),
            tls: 2,
            pin: String::new(),
            identity: "alice@example.org".into(),
            password_mode: 0,
            password: String::new(),
            remember: false,
            create: false,
        })
        .unwrap();
        assert_eq!(m.add_entry(account), A);
        m
    }

    fn otr(m: &mut Model, n: OtrNote) -> Changes {
        apply(m, UiEvent::Otr(n))
    }

    fn privacy(m: &Model) -> Privacy {
        m.entry(A).unwrap().conversations[&Target::Direct(PEER.into())].privacy
    }

    fn statuses(m: &Model) -> Vec<Status> {
        m.entry(A).unwrap().conversations[&Target::Direct(PEER.into())]
            .messages
            .iter()
            .map(|m| m.status)
            .collect()
    }

    fn held(m: &mut Model) {
        let msg = Message {
            sender: "alice".into(),
            received_at: 0,
            body: "hi".into(),
            status: Status::Waiting,
            outgoing: true,
        };
        m.append(A, &Target::Direct(PEER.into()), msg);
    }

    fn secure(verified: bool) -> OtrNote {
        OtrNote::Secure {
            account: A,
            peer: format!("{PEER}/phone"),
            fingerprint: "0123456789abcdef0123456789abcdef01234567".into(),
            verified,
        }
    }

    #[test]
    fn otr_start_releases_held_messages_and_says_private() {
        let mut m = model();
        m.open_conversation(A, &Target::Direct(PEER.into()));
        held(&mut m);
        assert_eq!(privacy(&m), Privacy::NotPrivate);
        let ch = otr(&mut m, secure(false));
        assert_eq!(privacy(&m), Privacy::PrivateUnverified);
        assert_eq!(statuses(&m), [Status::Sent]);
        // The open conversation's rows changed (the held one is now sent).
        assert!(ch.conversation);
        let conv = &m.entry(A).unwrap().conversations[&Target::Direct(PEER.into())];
        assert_eq!(
            conv.their_fingerprint.as_deref(),
            Some("01234567 89ABCDEF 01234567 89ABCDEF 01234567")
        );
    }

    #[test]
    fn verified_by_fingerprint_or_by_smp() {
        let mut m = model();
        otr(&mut m, secure(true));
        assert_eq!(privacy(&m), Privacy::PrivateVerified);

        let mut m = model();
        otr(&mut m, secure(false));
        otr(
            &mut m,
            OtrNote::Smp {
                account: A,
                peer: PEER.into(),
                event: SmpEvent::Failed,
            },
        );
        assert_eq!(privacy(&m), Privacy::PrivateUnverified);
        otr(
            &mut m,
            OtrNote::Smp {
                account: A,
                peer: PEER.into(),
                event: SmpEvent::Succeeded,
            },
        );
        assert_eq!(privacy(&m), Privacy::PrivateVerified);
    }

    #[test]
    fn smp_success_never_makes_a_conversation_private() {
        let mut m = model();
        otr(
            &mut m,
            OtrNote::Smp {
                account: A,
                peer: PEER.into(),
                event: SmpEvent::Succeeded,
            },
        );
        assert_eq!(privacy(&m), Privacy::NotPrivate);
    }

    #[test]
    fn a_question_opens_the_dialog_only_for_the_open_conversation() {
        let mut m = model();
        let ask = |q: &str| OtrNote::Smp {
            account: A,
            peer: PEER.into(),
            event: SmpEvent::AskedQuestion(format!("{q}\u{202E}")),
        };
        assert!(!otr(&mut m, ask("where?")).show_verify);
        m.open_conversation(A, &Target::Direct(PEER.into()));
        assert!(otr(&mut m, ask("where?")).show_verify);
        let conv = &m.entry(A).unwrap().conversations[&Target::Direct(PEER.into())];
        assert_eq!(conv.smp, Some(SmpEvent::AskedQuestion("where?".into())));
    }

    #[test]
    fn ended_and_finished_stay_ended_and_keep_holding() {
        let mut m = model();
        otr(&mut m, secure(true));
        // The peer ended it ("finished"): nothing is private any more.
        otr(
            &mut m,
            OtrNote::Ended {
                account: A,
                peer: PEER.into(),
            },
        );
        assert_eq!(privacy(&m), Privacy::Ended);
        // An insecure report afterwards does not make it look merely "not yet private".
        otr(
            &mut m,
            OtrNote::Insecure {
                account: A,
                peer: PEER.into(),
            },
        );
        assert_eq!(privacy(&m), Privacy::Ended);
        held(&mut m);
        otr(
            &mut m,
            OtrNote::Waiting {
                account: A,
                peer: PEER.into(),
                held: 1,
            },
        );
        assert_eq!(privacy(&m), Privacy::Ended);
        assert_eq!(statuses(&m), [Status::Waiting]);
        // Given up on: marked, still shown, never "sent".
        otr(
            &mut m,
            OtrNote::Undelivered {
                account: A,
                peer: PEER.into(),
                count: 1,
            },
        );
        assert_eq!(statuses(&m), [Status::Undelivered]);
    }

    #[test]
    fn insecure_after_private_is_not_private() {
        let mut m = model();
        otr(&mut m, secure(false));
        otr(
            &mut m,
            OtrNote::Insecure {
                account: A,
                peer: PEER.into(),
            },
        );
        assert_eq!(privacy(&m), Privacy::NotPrivate);
    }

    #[test]
    fn presence_survives_a_roster_push_and_goes_with_the_connection() {
        let mut m = model();
        let item = |name: Option<&str>| {
            Event::RosterSet(RosterItem {
                id: PEER.into(),
                name: name.map(str::to_owned),
                subscribed_to: true,
                subscribed_from: true,
            })
        };
        apply(&mut m, UiEvent::Account(A, item(None)));
        let ch = apply(
            &mut m,
            UiEvent::Account(
                A,
                Event::Presence {
                    contact: format!("{PEER}/laptop"),
                    presence: Presence::Available,
                },
            ),
        );
        assert!(ch.contacts);
        apply(&mut m, UiEvent::Account(A, item(Some("Bob"))));
        let c = &m.entry(A).unwrap().roster[PEER];
        assert_eq!((c.name.as_deref(), c.online), (Some("Bob"), true));
        apply(
            &mut m,
            UiEvent::Account(A, Event::State(ConnectionState::Disconnected)),
        );
        assert!(!m.entry(A).unwrap().roster[PEER].online);
    }

    #[test]
    fn an_irc_nick_that_quits_is_gone_until_seen_again() {
        let mut m = Model::default();
        let account = validate(&FormInput {
            irc: true,
            server: "irc.example.org".into(),
            port: String::new(),
            tls: 2,
            pin: String::new(),
            identity: "alice".into(),
            password_mode: 0,
            password: String::new(),
            remember: false,
            create: false,
        })
        .unwrap();
        let id = m.add_entry(account);
        let ev = |m: &mut Model, e: Event| apply(m, UiEvent::Account(id, e));
        let presence = |contact: &str, presence| Event::Presence {
            contact: contact.into(),
            presence,
        };
        ev(
            &mut m,
            Event::State(ConnectionState::Connected { spki_sha256: None }),
        );
        ev(
            &mut m,
            Event::Message {
                from: Target::Direct("bob".into()),
                sender: None,
                body: "hi".into(),
                kind: MessageKind::Normal,
                received_at: 0,
            },
        );
        // A quit of someone we never talked to is not kept.
        ev(&mut m, presence("carol", Presence::Offline));
        let ch = ev(&mut m, presence("bob", Presence::Offline));
        assert!(ch.contacts);
        let gone = |m: &Model| {
            m.entry(id)
                .unwrap()
                .gone
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(gone(&m), ["bob"]);
        ev(&mut m, presence("bob", Presence::Available));
        assert!(gone(&m).is_empty());
        ev(&mut m, presence("bob", Presence::Offline));
        ev(&mut m, Event::State(ConnectionState::Disconnected));
        assert!(gone(&m).is_empty(), "a new connection starts afresh");
    }

    #[test]
    fn connect_errors_are_shown_in_plain_words_and_fail_the_account() {
        let mut m = model();
        apply(
            &mut m,
            UiEvent::Account(A, Event::State(ConnectionState::Connecting)),
        );
        let err = AccountError::Connect(timb_core::ConnectError::HostNotFound);
        apply(&mut m, UiEvent::Account(A, Event::Error(err)));
        apply(
            &mut m,
            UiEvent::Account(A, Event::State(ConnectionState::Disconnected)),
        );
        let e = m.entry(A).unwrap();
        assert_eq!(e.state, ConnState::Failed);
        assert_eq!(
            e.error,
            Some(AccountError::Connect(timb_core::ConnectError::HostNotFound))
        );
    }

    #[test]
    fn messages_to_other_conversations_count_unread() {
        let mut m = model();
        let msg = |from: &str| {
            UiEvent::Account(
                A,
                Event::Message {
                    from: Target::Direct(from.into()),
                    sender: None,
                    body: "x".into(),
                    kind: MessageKind::Normal,
                    received_at: 0,
                },
            )
        };
        m.open_conversation(A, &Target::Direct(PEER.into()));
        let ch = apply(&mut m, msg(PEER));
        assert_eq!(ch.appended.len(), 1);
        let ch = apply(&mut m, msg("carol@example.org"));
        assert!(ch.appended.is_empty() && ch.contacts);
        let e = m.entry(A).unwrap();
        assert_eq!(
            e.conversations[&Target::Direct("carol@example.org".into())].unread,
            1
        );
        assert_eq!(e.conversations[&Target::Direct(PEER.into())].unread, 0);
    }
}
