//! The one place that connects the window to everything else: UI callbacks
//! become [`Request`]s, [`UiEvent`]s update the Rust models, and the models
//! are copied into the window's properties. No protocol logic lives here.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};
use timb_core::{AccountId, Command, ConnectionState, Event, MessageKind, Presence, Target};

use crate::accounts::{self, Account, FieldError, FormInput, PasswordMode, Remembered};
use crate::backend::{
    Backend, KeyGen, OtrNote, Request, SmpEvent, TorFailureKind, TorStatus, UiEvent,
};
use crate::state::{self, Conversation, Message, Privacy, Status};
use crate::{i18n, slint_generatedMainWindow as ui};
use ui::{
    AccountForm, AccountRow, ConnState, ContactRow, FormError, KeyGenState, Locale, MainWindow,
    MessageRow, MsgStatus, OtrState, RequestRow, SmpState, TorFailure, TorState,
};

/// Pending subscription requests kept per account; more are ignored, not queued.
const MAX_REQUESTS: usize = 100;

struct Contact {
    name: Option<String>,
    online: bool,
}

struct Entry {
    id: AccountId,
    account: Account,
    state: ConnState,
    error: String,
    roster: BTreeMap<String, Contact>,
    requests: Vec<String>,
    /// Our nick in each joined group.
    groups: BTreeMap<String, String>,
    conversations: HashMap<Target, Conversation>,
    my_fingerprint: Option<String>,
}

impl Entry {
    fn is_irc(&self) -> bool {
        self.account.settings.protocol == accounts::SavedProtocol::Irc
    }

    /// Conversations are keyed by bare JID (any resource) or IRC nick.
    fn key(&self, t: &Target) -> Target {
        match t {
            Target::Direct(n) if !self.is_irc() => {
                Target::Direct(n.split('/').next().unwrap_or(n).to_owned())
            }
            other => other.clone(),
        }
    }

    fn my_name(&self) -> String {
        let id = &self.account.settings.identity;
        id.split('@').next().unwrap_or(id).to_owned()
    }

    fn conversation(&mut self, t: &Target) -> &mut Conversation {
        let k = self.key(t);
        self.conversations
            .entry(k.clone())
            .or_insert_with(|| Conversation::new(k))
    }
}

pub struct App {
    window: slint::Weak<MainWindow>,
    backend: Box<dyn Backend>,
    profile_root: Option<PathBuf>,
    language: String,
    entries: Vec<Entry>,
    next_id: u32,
    editing: Option<AccountId>,
    password_for: Option<AccountId>,
    current: Option<(AccountId, Target)>,
    tor: TorState,
    accounts_model: Rc<VecModel<AccountRow>>,
    contacts_model: Rc<VecModel<ContactRow>>,
    requests_model: Rc<VecModel<RequestRow>>,
    messages_model: Rc<VecModel<MessageRow>>,
    members_model: Rc<VecModel<SharedString>>,
}

/// Shared handle the window's callbacks hold.
pub type Shared = Rc<RefCell<App>>;

impl App {
    /// Builds the controller, wires every callback, shows remembered accounts.
    pub fn attach(
        window: &MainWindow,
        backend: Box<dyn Backend>,
        profile_root: Option<PathBuf>,
        remembered: Remembered,
    ) -> Shared {
        let app = App {
            window: window.as_weak(),
            backend,
            profile_root,
            language: String::new(),
            entries: Vec::new(),
            next_id: 1,
            editing: None,
            password_for: None,
            current: None,
            tor: TorState::Idle,
            accounts_model: Rc::new(VecModel::default()),
            contacts_model: Rc::new(VecModel::default()),
            requests_model: Rc::new(VecModel::default()),
            messages_model: Rc::new(VecModel::default()),
            members_model: Rc::new(VecModel::default()),
        };
        window.set_accounts(app.accounts_model.clone().into());
        window.set_contacts(app.contacts_model.clone().into());
        window.set_requests(app.requests_model.clone().into());
        window.set_messages(app.messages_model.clone().into());
        window.set_members(app.members_model.clone().into());
        let shared = Rc::new(RefCell::new(app));
        {
            let mut a = shared.borrow_mut();
            for settings in remembered.accounts {
                a.add_entry(Account {
                    settings,
                    password: None,
                    remember: true,
                });
            }
            a.language = remembered.language;
            a.apply_language();
            a.refresh_accounts();
            a.refresh_contacts();
        }
        bind(window, &shared);
        shared
    }

    fn win(&self) -> Option<MainWindow> {
        self.window.upgrade()
    }

    fn entry(&mut self, id: AccountId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    fn add_entry(&mut self, account: Account) -> AccountId {
        let id = AccountId(self.next_id);
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            account,
            state: ConnState::Disconnected,
            error: String::new(),
            roster: BTreeMap::new(),
            requests: Vec::new(),
            groups: BTreeMap::new(),
            conversations: HashMap::new(),
            my_fingerprint: None,
        });
        id
    }

    fn selected(&self) -> Option<AccountId> {
        let w = self.win()?;
        let i = usize::try_from(w.get_selected_account()).ok()?;
        self.entries.get(i).map(|e| e.id)
    }

    // ---- language -------------------------------------------------------

    fn apply_language(&mut self) {
        let lang = i18n::effective(&self.language);
        // "en" is the source text; selecting it restores the untranslated strings.
        let _ = slint::select_bundled_translation(lang);
        if let Some(w) = self.win() {
            w.global::<Locale>().set_rtl(i18n::is_rtl(lang));
            w.set_language_index(i18n::index_for_code(&self.language));
        }
    }

    pub fn set_language(&mut self, code: &str) {
        self.language = code.to_owned();
        self.apply_language();
        self.save_remembered();
    }

    fn save_remembered(&self) {
        let Some(root) = &self.profile_root else {
            return;
        };
        let r = Remembered {
            accounts: self
                .entries
                .iter()
                .filter(|e| e.account.remember)
                .map(|e| e.account.settings.clone())
                .collect(),
            language: self.language.clone(),
        };
        if let Err(e) = accounts::save(root, &r) {
            // The path is the user's own profile folder; no conversation content.
            eprintln!("timb: could not save settings: {e}");
        }
    }

    // ---- accounts -------------------------------------------------------

    fn open_account_form(&mut self, id: Option<AccountId>) {
        self.editing = id;
        let form = match id.and_then(|id| self.entries.iter().find(|e| e.id == id)) {
            Some(e) => {
                let s = &e.account.settings;
                AccountForm {
                    editing: true,
                    irc: e.is_irc(),
                    server: s.server.clone().into(),
                    port: s.port.to_string().into(),
                    tls: match s.tls {
                        accounts::TlsMode::Pinned => 0,
                        accounts::TlsMode::Tofu => 1,
                        accounts::TlsMode::WebPki => 2,
                    },
                    pin: s.pin.clone().unwrap_or_default().into(),
                    identity: s.identity.clone().into(),
                    password_mode: (s.password_mode == PasswordMode::KeepForSession) as i32,
                    password: e.account.password.clone().unwrap_or_default().into(),
                    remember: e.account.remember,
                }
            }
            None => AccountForm {
                tls: 2,
                ..Default::default()
            },
        };
        if let Some(w) = self.win() {
            w.set_account_form(form);
            w.set_form_error(FormError::None);
            w.set_account_dialog_open(true);
        }
    }

    /// Validates the form; on success adds or updates the account and closes.
    pub fn save_account(&mut self) -> Result<AccountId, FieldError> {
        let Some(w) = self.win() else {
            return Err(FieldError::ServerEmpty);
        };
        let f = w.get_account_form();
        let input = FormInput {
            irc: f.irc,
            server: f.server.to_string(),
            port: f.port.to_string(),
            tls: f.tls,
            pin: f.pin.to_string(),
            identity: f.identity.to_string(),
            password_mode: f.password_mode,
            password: f.password.to_string(),
            remember: f.remember,
        };
        let account = match accounts::validate(&input) {
            Ok(a) => a,
            Err(e) => {
                w.set_form_error(form_error(e));
                return Err(e);
            }
        };
        let id = match self.editing.take() {
            Some(id) => {
                if let Some(e) = self.entry(id) {
                    e.account = account;
                }
                id
            }
            None => {
                let id = self.add_entry(account);
                w.set_selected_account(self.entries.len() as i32 - 1);
                id
            }
        };
        // Clear the password from the form's copy right away.
        w.set_account_form(AccountForm::default());
        w.set_form_error(FormError::None);
        w.set_account_dialog_open(false);
        self.save_remembered();
        self.refresh_accounts();
        Ok(id)
    }

    fn remove_account(&mut self, id: AccountId) {
        self.backend.request(Request::Forget { id });
        self.entries.retain(|e| e.id != id);
        if self.current.as_ref().is_some_and(|(a, _)| *a == id) {
            self.close_conversation();
        }
        if let Some(w) = self.win() {
            w.set_selected_account(if self.entries.is_empty() { -1 } else { 0 });
        }
        self.save_remembered();
        self.refresh_accounts();
        self.refresh_contacts();
    }

    fn connect(&mut self, id: AccountId) {
        let Some(e) = self.entries.iter().find(|e| e.id == id) else {
            return;
        };
        match (&e.account.settings.password_mode, &e.account.password) {
            (PasswordMode::KeepForSession, Some(pw)) => {
                let pw = pw.clone();
                self.start_connect(id, Some(pw));
            }
            _ => {
                self.password_for = Some(id);
                let label = e.account.label();
                if let Some(w) = self.win() {
                    w.set_password_account(label.into());
                    w.set_password_input("".into());
                    w.set_password_open(true);
                }
            }
        }
    }

    fn password_submit(&mut self) {
        let Some(w) = self.win() else { return };
        let pw = w.get_password_input().to_string();
        w.set_password_input("".into());
        w.set_password_open(false);
        if let Some(id) = self.password_for.take() {
            self.start_connect(id, Some(pw));
        }
    }

    fn start_connect(&mut self, id: AccountId, password: Option<String>) {
        let Some(e) = self.entry(id) else { return };
        e.state = ConnState::Connecting;
        e.error.clear();
        let account = e.account.clone();
        if self.tor != TorState::Ready {
            self.set_tor(TorStatus::Starting {
                fraction: 0.0,
                phase: String::new(),
            });
        }
        self.refresh_accounts();
        self.backend.request(Request::Connect {
            id,
            account,
            password,
        });
    }

    // ---- conversations ----------------------------------------------------

    pub fn open_conversation(&mut self, id: AccountId, target: Target) {
        let Some(e) = self.entry(id) else { return };
        let key = e.key(&target);
        e.conversation(&key).unread = 0;
        self.current = Some((id, key));
        self.refresh_conversation();
        self.refresh_contacts();
        if let Some(w) = self.win() {
            w.invoke_focus_message();
        }
    }

    fn close_conversation(&mut self) {
        self.current = None;
        if let Some(w) = self.win() {
            w.set_conv_open(false);
            w.set_otr_open(false);
        }
        self.messages_model.set_vec(Vec::new());
        self.members_model.set_vec(Vec::new());
    }

    /// What the user typed, sent to the open conversation.
    pub fn send(&mut self, text: &str) {
        let body = state::sanitize(text.trim_end());
        if body.trim().is_empty() {
            return;
        }
        let Some((id, target)) = self.current.clone() else {
            return;
        };
        let Some(e) = self.entry(id) else { return };
        let (kind, body) = match body.strip_prefix("/me ") {
            Some(rest) => (MessageKind::Action, rest.to_owned()),
            None => (MessageKind::Normal, body),
        };
        let status;
        let request;
        let sender;
        match &target {
            Target::Group(room) => {
                sender = e.groups.get(room).cloned().unwrap_or_else(|| e.my_name());
                status = Status::Sent;
                request = Request::Command {
                    id,
                    command: Command::Send {
                        to: target.clone(),
                        body: body.clone(),
                        kind,
                    },
                };
            }
            Target::Direct(peer) => {
                let conv = e.conversation(&target);
                // Not private (not yet, or ended): OTR holds it until a private
                // conversation starts; after an end only the user starts one.
                status = if matches!(conv.privacy, Privacy::NotPrivate | Privacy::Ended) {
                    Status::Waiting
                } else {
                    Status::Sent
                };
                sender = e.my_name();
                let wire = if kind == MessageKind::Action {
                    format!("/me {body}")
                } else {
                    body.clone()
                };
                request = Request::SendPrivate {
                    id,
                    peer: peer.clone(),
                    body: wire,
                };
            }
        }
        let shown = if kind == MessageKind::Action {
            format!("* {sender} {body}")
        } else {
            body
        };
        self.append(
            id,
            &target,
            Message {
                sender,
                received_at: timb_core::unix_now(),
                body: shown,
                status,
                outgoing: true,
            },
        );
        if let Some(w) = self.win() {
            w.set_draft("".into());
        }
        self.backend.request(request);
    }

    /// Adds a message to a conversation, and to the visible list if it is open.
    fn append(&mut self, id: AccountId, target: &Target, m: Message) {
        let is_current;
        let row = message_row(&m);
        let dropped;
        {
            let current = self.current.clone();
            let Some(e) = self.entry(id) else { return };
            let key = e.key(target);
            is_current = current.as_ref() == Some(&(id, key.clone()));
            let conv = e.conversation(&key);
            if !is_current && !m.outgoing && m.status != Status::Notice {
                conv.unread = conv.unread.saturating_add(1);
            }
            dropped = conv.push(m);
        }
        if is_current {
            self.messages_model.push(row);
            for _ in 0..dropped.min(self.messages_model.row_count()) {
                self.messages_model.remove(0);
            }
        } else {
            self.refresh_contacts();
        }
    }

    fn with_conv<R>(
        &mut self,
        id: AccountId,
        peer: &str,
        f: impl FnOnce(&mut Conversation) -> R,
    ) -> Option<R> {
        let e = self.entry(id)?;
        let t = Target::Direct(peer.to_owned());
        Some(f(e.conversation(&t)))
    }

    fn is_current(&self, id: AccountId, peer: &str) -> bool {
        match (&self.current, self.entries.iter().find(|e| e.id == id)) {
            (Some((a, t)), Some(e)) => *a == id && *t == e.key(&Target::Direct(peer.to_owned())),
            _ => false,
        }
    }

    // ---- events -----------------------------------------------------------

    pub fn handle(&mut self, ev: UiEvent) {
        match ev {
            UiEvent::Tor(s) => self.set_tor(s),
            UiEvent::Account(id, e) => self.account_event(id, e),
            UiEvent::Otr(n) => self.otr_note(n),
        }
    }

    fn set_tor(&mut self, s: TorStatus) {
        let Some(w) = self.win() else { return };
        match s {
            TorStatus::Starting { fraction, phase } => {
                self.tor = TorState::Starting;
                w.set_tor_progress(fraction.clamp(0.0, 1.0));
                w.set_tor_phase(phase.into());
            }
            TorStatus::Ready => {
                self.tor = TorState::Ready;
                w.set_tor_progress(1.0);
            }
            TorStatus::Failed { kind, detail } => {
                self.tor = TorState::Failed;
                w.set_tor_failure(match kind {
                    TorFailureKind::NoNetwork => TorFailure::NoNetwork,
                    TorFailureKind::ClockSkew => TorFailure::ClockSkew,
                    TorFailureKind::Blocked => TorFailure::Blocked,
                    TorFailureKind::Other => TorFailure::Other,
                });
                w.set_tor_detail(detail.into());
            }
        }
        w.set_tor_state(self.tor);
    }

    fn account_event(&mut self, id: AccountId, ev: Event) {
        let Some(e) = self.entry(id) else { return };
        match ev {
            Event::State(s) => {
                e.state = match s {
                    ConnectionState::Disconnected if e.state == ConnState::Failed => {
                        ConnState::Failed
                    }
                    ConnectionState::Disconnected => ConnState::Disconnected,
                    ConnectionState::Connecting => ConnState::Connecting,
                    ConnectionState::Connected { .. } => ConnState::Connected,
                    ConnectionState::Reconnecting => ConnState::Reconnecting,
                };
                if e.state == ConnState::Connected {
                    e.error.clear();
                    self.set_tor(TorStatus::Ready);
                }
                if e_state_offline(self.entry(id)) {
                    if let Some(e) = self.entry(id) {
                        for c in e.roster.values_mut() {
                            c.online = false;
                        }
                    }
                    self.refresh_contacts();
                }
                self.refresh_accounts();
            }
            Event::Error(err) => {
                // A refused request (a group that cannot be joined, ...) leaves a connected
                // account connected; the error is shown under it either way.
                if !(e.state == ConnState::Connected
                    && matches!(err, timb_core::AccountError::Refused(_)))
                {
                    e.state = ConnState::Failed;
                }
                e.error = err.to_string();
                self.refresh_accounts();
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
                        e.roster.get(&k).and_then(|c| c.name.clone()).unwrap_or(k)
                    }
                };
                let body = state::sanitize(&body);
                let (body, status) = match kind {
                    MessageKind::Action => (format!("* {who} {body}"), Status::Received),
                    MessageKind::Notice if who.is_empty() => (body, Status::Notice),
                    _ => (body, Status::Received),
                };
                self.append(
                    id,
                    &from,
                    Message {
                        sender: who,
                        received_at,
                        body,
                        status,
                        outgoing: false,
                    },
                );
            }
            Event::Presence { contact, presence } => {
                let bare = e.key(&Target::Direct(contact)).name().to_owned();
                if let Some(c) = e.roster.get_mut(&bare) {
                    c.online = presence == Presence::Available;
                    self.refresh_contacts();
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
                self.refresh_contacts();
            }
            Event::RosterRemoved(jid) => {
                e.roster.remove(&jid);
                self.refresh_contacts();
            }
            Event::SubscriptionRequest { from } => {
                if e.requests.len() < MAX_REQUESTS && !e.requests.contains(&from) {
                    e.requests.push(state::sanitize(&from));
                }
                self.refresh_contacts();
            }
            Event::GroupJoined { room, nick } => {
                e.groups.insert(room.clone(), nick);
                e.conversation(&Target::Group(room.clone()));
                if self.current.is_none() {
                    self.open_conversation(id, Target::Group(room));
                } else {
                    self.refresh_contacts();
                }
            }
            Event::GroupLeft { room } => {
                e.groups.remove(&room);
                let t = Target::Group(room);
                e.conversations.remove(&t);
                if self.current == Some((id, t)) {
                    self.close_conversation();
                }
                self.refresh_contacts();
            }
            Event::GroupMembers { room, members } => {
                e.conversation(&Target::Group(room.clone()))
                    .set_members(members.iter().map(|m| state::sanitize(m)).collect());
                self.refresh_members(id, &room);
            }
            Event::MemberJoined { room, nick } => {
                e.conversation(&Target::Group(room.clone()))
                    .add_member(&state::sanitize(&nick));
                self.refresh_members(id, &room);
            }
            Event::MemberLeft { room, nick } => {
                e.conversation(&Target::Group(room.clone()))
                    .remove_member(&nick);
                self.refresh_members(id, &room);
            }
            Event::Topic { room, topic } => {
                let t = Target::Group(room);
                self.append(
                    id,
                    &t,
                    Message {
                        sender: String::new(),
                        received_at: timb_core::unix_now(),
                        body: state::sanitize(&topic),
                        status: Status::Notice,
                        outgoing: false,
                    },
                );
            }
        }
    }

    fn otr_note(&mut self, n: OtrNote) {
        match n {
            OtrNote::KeyGen { state, .. } => {
                if let Some(w) = self.win() {
                    w.set_keygen(match state {
                        KeyGen::Working => KeyGenState::Working,
                        KeyGen::Done => KeyGenState::Done,
                        KeyGen::Failed => KeyGenState::Failed,
                    });
                }
            }
            OtrNote::OurFingerprint {
                account,
                fingerprint,
            } => {
                if let Some(e) = self.entry(account) {
                    e.my_fingerprint = Some(state::human_fingerprint(&fingerprint));
                }
                self.refresh_conversation_state();
            }
            // Held: the state does not change (an ended conversation stays ended).
            OtrNote::Waiting { account, peer, .. } => {
                self.conv_changed(account, &peer, false);
            }
            OtrNote::Secure {
                account,
                peer,
                fingerprint,
                verified,
            } => {
                self.with_conv(account, &peer, |c| {
                    c.privacy = if verified {
                        Privacy::PrivateVerified
                    } else {
                        Privacy::PrivateUnverified
                    };
                    c.their_fingerprint = Some(state::human_fingerprint(&fingerprint));
                    c.release_waiting();
                });
                self.conv_changed(account, &peer, true);
            }
            OtrNote::Insecure { account, peer } => {
                self.with_conv(account, &peer, |c| {
                    if c.privacy != Privacy::Ended {
                        c.privacy = Privacy::NotPrivate;
                    }
                });
                self.conv_changed(account, &peer, false);
            }
            OtrNote::Ended { account, peer } => {
                self.with_conv(account, &peer, |c| c.privacy = Privacy::Ended);
                self.conv_changed(account, &peer, false);
            }
            OtrNote::Smp {
                account,
                peer,
                event,
            } => {
                self.with_conv(account, &peer, |c| {
                    c.smp = Some(match event {
                        SmpEvent::AskedQuestion(q) => SmpEvent::AskedQuestion(state::sanitize(&q)),
                        SmpEvent::InProgress(p) => SmpEvent::InProgress(p.min(100)),
                        SmpEvent::Succeeded => {
                            if c.privacy == Privacy::PrivateUnverified {
                                c.privacy = Privacy::PrivateVerified;
                            }
                            SmpEvent::Succeeded
                        }
                        other => other,
                    });
                });
                let asked = self
                    .with_conv(account, &peer, |c| {
                        matches!(
                            c.smp,
                            Some(SmpEvent::AskedQuestion(_) | SmpEvent::AskedSecret)
                        )
                    })
                    .unwrap_or(false);
                // A question from the peer needs an answer: bring the dialog up.
                if asked && self.is_current(account, &peer) {
                    if let Some(w) = self.win() {
                        w.set_otr_open(true);
                    }
                }
                self.conv_changed(account, &peer, false);
            }
            OtrNote::Undelivered {
                account,
                peer,
                count,
            } => {
                self.with_conv(account, &peer, |c| c.mark_undelivered(count));
                self.conv_changed(account, &peer, true);
            }
            OtrNote::Unencrypted {
                account,
                peer,
                body,
            } => {
                let t = Target::Direct(peer.clone());
                let sender = self
                    .entry(account)
                    .map(|e| e.key(&t).name().to_owned())
                    .unwrap_or(peer);
                self.append(
                    account,
                    &t,
                    Message {
                        sender,
                        received_at: timb_core::unix_now(),
                        body: state::sanitize(&body),
                        status: Status::Unencrypted,
                        outgoing: false,
                    },
                );
            }
            OtrNote::Problem {
                account,
                peer,
                text,
            } => {
                self.append(
                    account,
                    &Target::Direct(peer),
                    Message {
                        sender: String::new(),
                        received_at: timb_core::unix_now(),
                        body: text,
                        status: Status::Notice,
                        outgoing: false,
                    },
                );
            }
        }
    }

    /// After an OTR change: redraw the open conversation if it is this one.
    fn conv_changed(&mut self, id: AccountId, peer: &str, rows_changed: bool) {
        if self.is_current(id, peer) {
            if rows_changed {
                self.refresh_conversation();
            } else {
                self.refresh_conversation_state();
            }
        }
    }

    // ---- copying models into the window -------------------------------------

    fn refresh_accounts(&self) {
        let rows: Vec<AccountRow> = self
            .entries
            .iter()
            .map(|e| AccountRow {
                id: e.id.0 as i32,
                irc: e.is_irc(),
                label: e.account.label().into(),
                state: e.state,
                error: e.error.clone().into(),
            })
            .collect();
        self.accounts_model.set_vec(rows);
        if let Some(w) = self.win() {
            let sel = w.get_selected_account();
            if sel >= self.entries.len() as i32 || (sel < 0 && !self.entries.is_empty()) {
                w.set_selected_account(if self.entries.is_empty() { -1 } else { 0 });
            }
            let irc = usize::try_from(w.get_selected_account())
                .ok()
                .and_then(|i| self.entries.get(i))
                .is_some_and(|e| e.is_irc());
            w.set_selected_is_irc(irc);
        }
    }

    fn refresh_contacts(&self) {
        let mut rows = Vec::new();
        let mut requests = Vec::new();
        for e in &self.entries {
            let acc = e.id.0 as i32;
            let unread = |t: &Target| e.conversations.get(t).map(|c| c.unread as i32).unwrap_or(0);
            for room in e.groups.keys() {
                let t = Target::Group(room.clone());
                rows.push(ContactRow {
                    account: acc,
                    id: room.into(),
                    name: room.into(),
                    online: true,
                    is_group: true,
                    unread: unread(&t),
                    rtl: false,
                });
            }
            for (jid, c) in &e.roster {
                let name = c.name.clone().unwrap_or_else(|| jid.clone());
                rows.push(ContactRow {
                    account: acc,
                    id: jid.into(),
                    rtl: state::is_rtl_text(&name),
                    name: name.into(),
                    online: c.online && e.state == ConnState::Connected,
                    is_group: false,
                    unread: unread(&Target::Direct(jid.clone())),
                });
            }
            // One-to-one conversations with people not in the roster (IRC queries).
            for (t, c) in &e.conversations {
                if let Target::Direct(n) = t {
                    if !e.roster.contains_key(n) {
                        rows.push(ContactRow {
                            account: acc,
                            id: n.into(),
                            name: n.into(),
                            online: e.state == ConnState::Connected,
                            is_group: false,
                            unread: c.unread as i32,
                            rtl: state::is_rtl_text(n),
                        });
                    }
                }
            }
            for r in &e.requests {
                requests.push(RequestRow {
                    account: acc,
                    from: r.into(),
                });
            }
        }
        self.contacts_model.set_vec(rows);
        self.requests_model.set_vec(requests);
    }

    fn refresh_members(&self, id: AccountId, room: &str) {
        if self.current == Some((id, Target::Group(room.to_owned()))) {
            self.refresh_conversation();
        }
    }

    fn current_conv(&self) -> Option<(&Entry, &Conversation)> {
        let (id, t) = self.current.as_ref()?;
        let e = self.entries.iter().find(|e| e.id == *id)?;
        Some((e, e.conversations.get(t)?))
    }

    fn refresh_conversation(&self) {
        let Some((_, c)) = self.current_conv() else {
            self.messages_model.set_vec(Vec::new());
            return;
        };
        self.messages_model
            .set_vec(c.messages.iter().map(message_row).collect::<Vec<_>>());
        self.members_model
            .set_vec(c.members.iter().map(SharedString::from).collect::<Vec<_>>());
        self.refresh_conversation_state();
    }

    fn refresh_conversation_state(&self) {
        let Some(w) = self.win() else { return };
        let Some((e, c)) = self.current_conv() else {
            w.set_conv_open(false);
            return;
        };
        w.set_conv_open(true);
        w.set_conv_account(e.id.0 as i32);
        w.set_conv_id(c.target.name().into());
        let title = match &c.target {
            Target::Direct(n) => e
                .roster
                .get(n)
                .and_then(|r| r.name.clone())
                .unwrap_or_else(|| n.clone()),
            Target::Group(r) => r.clone(),
        };
        w.set_conv_title(title.into());
        w.set_conv_account_label(e.account.label().into());
        w.set_conv_is_group(c.target.is_group());
        w.set_otr_state(match c.privacy {
            Privacy::NotPrivate => OtrState::NotPrivate,
            Privacy::PrivateUnverified => OtrState::PrivateUnverified,
            Privacy::PrivateVerified => OtrState::PrivateVerified,
            Privacy::Ended => OtrState::Ended,
        });
        w.set_my_fingerprint(e.my_fingerprint.clone().unwrap_or_default().into());
        w.set_their_fingerprint(c.their_fingerprint.clone().unwrap_or_default().into());
        w.set_their_verified(c.privacy == Privacy::PrivateVerified);
        let (smp, q, p) = match &c.smp {
            None => (SmpState::Idle, "", 0),
            Some(SmpEvent::AskedQuestion(q)) => (SmpState::AskedQuestion, q.as_str(), 0),
            Some(SmpEvent::AskedSecret) => (SmpState::AskedSecret, "", 0),
            Some(SmpEvent::InProgress(p)) => (SmpState::InProgress, "", *p),
            Some(SmpEvent::Succeeded) => (SmpState::Succeeded, "", 100),
            Some(SmpEvent::Failed) => (SmpState::Failed, "", 0),
            Some(SmpEvent::Aborted) => (SmpState::Aborted, "", 0),
        };
        w.set_smp_state(smp);
        w.set_smp_question(q.into());
        w.set_smp_progress(f32::from(p) / 100.0);
    }

    // ---- OTR requests from the verification dialog ---------------------------

    fn current_peer(&self) -> Option<(AccountId, String)> {
        match &self.current {
            Some((id, Target::Direct(p))) => Some((*id, p.clone())),
            _ => None,
        }
    }

    fn otr_request(&mut self, make: impl FnOnce(AccountId, String) -> Request) {
        if let Some((id, peer)) = self.current_peer() {
            let r = make(id, peer);
            self.backend.request(r);
        }
    }

    fn set_verified(&mut self, verified: bool) {
        let Some((id, peer)) = self.current_peer() else {
            return;
        };
        let Some(fp) = self
            .with_conv(id, &peer, |c| {
                if matches!(
                    c.privacy,
                    Privacy::PrivateUnverified | Privacy::PrivateVerified
                ) {
                    c.privacy = if verified {
                        Privacy::PrivateVerified
                    } else {
                        Privacy::PrivateUnverified
                    };
                }
                c.their_fingerprint.clone()
            })
            .flatten()
        else {
            return;
        };
        self.backend.request(Request::SetVerified {
            id,
            peer,
            fingerprint: fp.replace(' ', "").to_ascii_lowercase(),
            verified,
        });
        self.refresh_conversation_state();
    }

    fn set_current_privacy(&mut self, f: impl FnOnce(Privacy) -> Privacy) {
        if let Some((id, peer)) = self.current_peer() {
            self.with_conv(id, &peer, |c| c.privacy = f(c.privacy));
            self.refresh_conversation_state();
        }
    }

    fn set_smp(&mut self, smp: SmpEvent) {
        if let Some((id, peer)) = self.current_peer() {
            self.with_conv(id, &peer, |c| c.smp = Some(smp));
        }
        if let Some(w) = self.win() {
            w.set_smp_secret_input("".into());
        }
        self.refresh_conversation_state();
    }
}

fn e_state_offline(e: Option<&mut Entry>) -> bool {
    e.is_some_and(|e| matches!(e.state, ConnState::Disconnected | ConnState::Failed))
}

fn form_error(e: FieldError) -> FormError {
    match e {
        FieldError::ServerEmpty => FormError::ServerEmpty,
        FieldError::ServerInvalid => FormError::ServerInvalid,
        FieldError::PortInvalid => FormError::PortInvalid,
        FieldError::IdentityEmpty => FormError::IdentityEmpty,
        FieldError::JidInvalid => FormError::JidInvalid,
        FieldError::NickInvalid => FormError::NickInvalid,
        FieldError::PinInvalid => FormError::PinInvalid,
        FieldError::PasswordEmpty => FormError::PasswordEmpty,
    }
}

fn message_row(m: &Message) -> MessageRow {
    let links: Vec<SharedString> = state::find_links(&m.body)
        .into_iter()
        .map(SharedString::from)
        .collect();
    MessageRow {
        sender: m.sender.clone().into(),
        time: state::format_time(m.received_at).into(),
        body: m.body.clone().into(),
        rtl: state::is_rtl_text(&m.body),
        status: match m.status {
            Status::Received => MsgStatus::Received,
            Status::Sent => MsgStatus::Sent,
            Status::Waiting => MsgStatus::Waiting,
            Status::Undelivered => MsgStatus::Undelivered,
            Status::Notice => MsgStatus::Notice,
            Status::Unencrypted => MsgStatus::Unencrypted,
        },
        outgoing: m.outgoing,
        links: ModelRc::new(VecModel::from(links)),
    }
}

/// Wires every window callback to the controller. Callbacks hold a weak
/// reference so the window does not keep the controller alive in a cycle.
fn bind(w: &MainWindow, app: &Shared) {
    macro_rules! on {
        ($setter:ident, |$a:ident $(, $arg:ident)*| $body:block) => {{
            let weak = Rc::downgrade(app);
            w.$setter(move |$($arg),*| {
                if let Some(rc) = weak.upgrade() {
                    let mut guard = rc.borrow_mut();
                    let $a: &mut App = &mut guard;
                    $body
                }
            });
        }};
    }
    on!(on_language_changed, |a, i| {
        a.set_language(i18n::code_for_index(i))
    });
    on!(on_tor_retry, |a| {
        a.set_tor(TorStatus::Starting {
            fraction: 0.0,
            phase: String::new(),
        });
        a.backend.request(Request::RetryTor);
    });
    on!(on_add_account, |a| { a.open_account_form(None) });
    on!(on_save_account, |a| {
        let _ = a.save_account();
    });
    on!(on_edit_account, |a, id| {
        a.open_account_form(Some(AccountId(id as u32)))
    });
    on!(on_remove_account, |a, id| {
        a.remove_account(AccountId(id as u32))
    });
    on!(on_connect_account, |a, id| {
        a.connect(AccountId(id as u32))
    });
    on!(on_disconnect_account, |a, id| {
        let id = AccountId(id as u32);
        a.backend.request(Request::Command {
            id,
            command: Command::Disconnect,
        });
    });
    on!(on_password_submit, |a| { a.password_submit() });
    on!(on_password_cancel, |a| {
        a.password_for = None;
        if let Some(w) = a.win() {
            w.set_password_input("".into());
            w.set_password_open(false);
        }
    });
    on!(on_open_conversation, |a, acc, id, group| {
        let t = if group {
            Target::Group(id.to_string())
        } else {
            Target::Direct(id.to_string())
        };
        a.open_conversation(AccountId(acc as u32), t);
    });
    on!(on_add_contact, |a, text| {
        let who = text.trim().to_owned();
        if let (Some(id), false) = (a.selected(), who.is_empty()) {
            let irc = a.entry(id).is_some_and(|e| e.is_irc());
            if !irc {
                a.backend.request(Request::Command {
                    id,
                    command: Command::AddContact { id: who.clone() },
                });
            }
            a.open_conversation(id, Target::Direct(who));
        }
    });
    on!(on_join_group, |a, text| {
        let room = text.trim().to_owned();
        if let (Some(id), false) = (a.selected(), room.is_empty()) {
            a.backend.request(Request::Command {
                id,
                command: Command::JoinGroup { room, nick: None },
            });
        }
    });
    on!(on_answer_request, |a, acc, from, ok| {
        let id = AccountId(acc as u32);
        if let Some(e) = a.entry(id) {
            e.requests.retain(|r| r.as_str() != from.as_str());
        }
        a.backend.request(Request::Command {
            id,
            command: Command::AnswerSubscription {
                from: from.to_string(),
                approve: ok,
            },
        });
        a.refresh_contacts();
    });
    on!(on_send, |a, text| { a.send(&text) });
    on!(on_start_private, |a| {
        // Asked for, not there yet: "not private (waiting)" until OTR says secure.
        a.set_current_privacy(|p| {
            if p == Privacy::Ended {
                Privacy::NotPrivate
            } else {
                p
            }
        });
        a.otr_request(|id, peer| Request::StartPrivate { id, peer })
    });
    on!(on_end_private, |a| {
        // Shown at once: from now on nothing is private, whatever comes back.
        a.set_current_privacy(|_| Privacy::Ended);
        a.otr_request(|id, peer| Request::EndPrivate { id, peer })
    });
    on!(on_leave_group, |a| {
        if let Some((id, Target::Group(room))) = a.current.clone() {
            a.backend.request(Request::Command {
                id,
                command: Command::LeaveGroup { room },
            });
        }
    });
    on!(on_close_conversation, |a| { a.close_conversation() });
    on!(on_open_verify, |a| {
        a.refresh_conversation_state();
        if let Some(w) = a.win() {
            w.set_otr_open(true);
        }
    });
    on!(on_set_verified, |a, v| { a.set_verified(v) });
    on!(on_start_smp, |a, q, s| {
        let question = Some(q.trim().to_owned()).filter(|q| !q.is_empty());
        let secret = s.to_string();
        a.otr_request(|id, peer| Request::StartSmp {
            id,
            peer,
            question,
            secret,
        });
        a.set_smp(SmpEvent::InProgress(0));
        if let Some(w) = a.win() {
            w.set_smp_question_input("".into());
        }
    });
    on!(on_respond_smp, |a, s| {
        let secret = s.to_string();
        a.otr_request(|id, peer| Request::RespondSmp { id, peer, secret });
        a.set_smp(SmpEvent::InProgress(0));
    });
    on!(on_abort_smp, |a| {
        a.otr_request(|id, peer| Request::AbortSmp { id, peer });
        a.set_smp(SmpEvent::Aborted);
    });
}
