//! Connects the window to everything else: UI callbacks become [`Request`]s
//! to the backend, and backend events go through [`model::apply`] (pure) and
//! then to the view (`view.rs`), which only copies the model into the window.
//! The account form lives in `form.rs`. No protocol logic lives here.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use slint::{ComponentHandle, SharedString, VecModel};
use timb_core::{AccountId, Command, MessageKind, Target};

use crate::accounts::{self, Account, PasswordMode, Remembered};
use crate::backend::{Backend, Request, SmpEvent, UiEvent};
use crate::model::{self, Model};
use crate::state::{self, Message, Privacy, Status};
use crate::{i18n, slint_generatedMainWindow as ui};
use ui::{AccountRow, ConnState, ContactRow, Locale, MainWindow, MessageRow, RequestRow, TorState};

pub struct App {
    pub(crate) window: slint::Weak<MainWindow>,
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) profile_root: Option<PathBuf>,
    pub(crate) language: String,
    pub(crate) check_updates: bool,
    /// The Bridges setting (bridges.rs).
    pub(crate) bridges: crate::bridges::Setting,
    /// The bundle "Restart to update" starts (the running program's, unless set).
    pub(crate) bundle: Option<timb_launcher::Layout>,
    /// What the window shows; changed by [`model::apply`] and the user's actions.
    pub(crate) model: Model,
    pub(crate) editing: Option<AccountId>,
    pub(crate) password_for: Option<AccountId>,
    pub(crate) accounts_model: Rc<VecModel<AccountRow>>,
    pub(crate) contacts_model: Rc<VecModel<ContactRow>>,
    pub(crate) requests_model: Rc<VecModel<RequestRow>>,
    pub(crate) messages_model: Rc<VecModel<MessageRow>>,
    pub(crate) members_model: Rc<VecModel<SharedString>>,
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
            check_updates: remembered.check_updates,
            bridges: crate::bridges::Setting::default(),
            bundle: std::env::current_exe()
                .ok()
                .and_then(|e| timb_launcher::Layout::of_exe(&e)),
            model: Model::default(),
            editing: None,
            password_for: None,
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
        window.set_check_updates(app.check_updates);
        let shared = Rc::new(RefCell::new(app));
        {
            let mut a = shared.borrow_mut();
            for settings in remembered.accounts {
                a.model.add_entry(Account {
                    settings,
                    password: None,
                    remember: true,
                    create: false,
                });
            }
            a.language = remembered.language;
            a.apply_language();
            a.restore_bridges();
            a.refresh_accounts();
            a.refresh_contacts();
        }
        bind(window, &shared);
        shared
    }

    pub(crate) fn win(&self) -> Option<MainWindow> {
        self.window.upgrade()
    }

    pub(crate) fn entry(&mut self, id: AccountId) -> Option<&mut model::Entry> {
        self.model.entry_mut(id)
    }

    fn selected(&self) -> Option<AccountId> {
        let w = self.win()?;
        let i = usize::try_from(w.get_selected_account()).ok()?;
        self.model.entries.get(i).map(|e| e.id)
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

    pub(crate) fn save_remembered(&self) {
        let Some(root) = &self.profile_root else {
            return;
        };
        let r = Remembered {
            accounts: self
                .model
                .entries
                .iter()
                .filter(|e| e.account.remember)
                .map(|e| e.account.settings.clone())
                .collect(),
            language: self.language.clone(),
            check_updates: self.check_updates,
        };
        if let Err(e) = accounts::save(root, &r) {
            // The path is the user's own profile folder; no conversation content.
            eprintln!("timb: could not save settings: {e}");
        }
    }

    fn remove_account(&mut self, id: AccountId) {
        self.backend.request(Request::Forget { id });
        self.model.entries.retain(|e| e.id != id);
        if self.model.current.as_ref().is_some_and(|(a, _)| *a == id) {
            self.close_conversation();
        }
        if let Some(w) = self.win() {
            w.set_selected_account(if self.model.entries.is_empty() { -1 } else { 0 });
        }
        self.save_remembered();
        self.refresh_accounts();
        self.refresh_contacts();
    }

    fn connect(&mut self, id: AccountId) {
        let Some(e) = self.model.entries.iter().find(|e| e.id == id) else {
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
        e.error = None;
        let account = e.account.clone();
        if self.model.tor.state != TorState::Ready {
            self.show_tor_starting();
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
        let ch = self.model.open_conversation(id, &target);
        self.render(ch);
    }

    fn close_conversation(&mut self) {
        let ch = self.model.close_conversation();
        self.render(ch);
    }

    /// What the user typed, sent to the open conversation.
    pub fn send(&mut self, text: &str) {
        let body = state::sanitize(text.trim_end());
        if body.trim().is_empty() {
            return;
        }
        let Some((id, target)) = self.model.current.clone() else {
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
    /// Adds a message to a conversation, and to the visible list if it is open.
    fn append(&mut self, id: AccountId, target: &Target, m: Message) {
        let ch = self.model.append(id, target, m);
        self.render(ch);
    }

    /// A backend event: applied to the model, then shown.
    pub fn handle(&mut self, ev: UiEvent) {
        let ch = model::apply(&mut self.model, ev);
        self.render(ch);
    }

    /// Events that waited together (`ui_sink`): each applied and shown as [`App::handle`]
    /// shows it, except the contact list, the one view rebuilt whole, which is rebuilt once
    /// at the end.
    pub fn handle_batch(&mut self, events: impl IntoIterator<Item = UiEvent>) {
        let mut contacts = false;
        for ev in events {
            let mut ch = model::apply(&mut self.model, ev);
            contacts |= std::mem::take(&mut ch.contacts);
            self.render(ch);
        }
        if contacts {
            self.refresh_contacts();
        }
    }

    /// "Check now": the backend starts Tor if it must (its panel shows the progress).
    fn check_update_now(&mut self) {
        self.handle(UiEvent::Update(crate::backend::UpdateStatus::Checking));
        self.backend.request(Request::CheckUpdate);
    }

    /// Has the bundle's launcher start the installed update and closes this window; the
    /// new one opens no connection until the user asks.
    fn restart_to_update(&mut self) {
        use crate::backend::{UpdateProblem, UpdateStatus};
        let Some(bundle) = self.bundle.clone() else {
            self.handle(UiEvent::Update(UpdateStatus::Failed(
                UpdateProblem::NotInPlace,
            )));
            return;
        };
        match crate::update::restart(&bundle) {
            Ok(()) => {
                let _ = slint::quit_event_loop();
            }
            Err(_) => {
                // Installed all the same: the next start runs it.
                let version = match &self.model.update {
                    Some(UpdateStatus::Ready { version }) => version.clone(),
                    _ => String::new(),
                };
                self.handle(UiEvent::Update(UpdateStatus::Failed(
                    UpdateProblem::RestartByHand(version),
                )))
            }
        }
    }

    // ---- bridges ---------------------------------------------------------

    /// Remembered bridges come back as they were left (lines that no longer check are
    /// left out, said on stderr without them); the backend learns them now, but Tor
    /// starts only when the user connects.
    fn restore_bridges(&mut self) {
        if let Some(root) = &self.profile_root {
            let (setting, note) = crate::bridges::load(root);
            if let Some(note) = note {
                eprintln!("timb: {note}");
            }
            self.bridges = setting;
        }
        if let Some(w) = self.win() {
            w.set_bridges_bundled(i32::try_from(crate::bridges::bundled().len()).unwrap_or(0));
        }
        // The backend starts with none chosen.
        if self.bridges.mode != crate::bridges::Mode::None {
            self.apply_bridges();
        }
    }

    /// Tells the backend and the Tor panel which bridges the next start takes.
    fn apply_bridges(&mut self) {
        let choice = self.bridges.choice();
        if let Some(w) = self.win() {
            w.set_bridges_in_use(i32::try_from(choice.bridges.len()).unwrap_or(i32::MAX));
        }
        self.backend.request(Request::SetBridges(choice));
    }

    fn open_bridges(&mut self) {
        let Some(w) = self.win() else { return };
        let text = self.bridges.pasted.join("\n");
        w.set_bridges_mode(self.bridges.mode.index());
        w.set_bridges_lines(text.as_str().into());
        w.set_bridges_remember(self.bridges.remember);
        show_bridge_check(&w, &text);
        w.set_bridges_open(true);
    }

    /// "Use these settings": refused (the dialog stays) while pasted lines do not check.
    fn use_bridges(&mut self) {
        let Some(w) = self.win() else { return };
        let mode = crate::bridges::Mode::from_index(w.get_bridges_mode());
        let text = w.get_bridges_lines();
        let checked = crate::bridges::check(&text);
        let pasted = match (&checked, mode) {
            (Ok(b), _) if !b.is_empty() || mode != crate::bridges::Mode::Pasted => {
                b.iter().map(|b| b.line().to_owned()).collect()
            }
            (_, crate::bridges::Mode::Pasted) => {
                show_bridge_check(&w, &text);
                return;
            }
            // Another choice: pasted lines that do not check are left as they were.
            _ => self.bridges.pasted.clone(),
        };
        self.bridges = crate::bridges::Setting {
            mode,
            pasted,
            remember: w.get_bridges_remember(),
        };
        self.apply_bridges();
        if let Some(root) = &self.profile_root {
            if let Err(e) = crate::bridges::save(root, &self.bridges) {
                // The path is the user's own profile folder; no bridge.
                eprintln!("timb: could not save the bridges setting: {e}");
            }
        }
        w.set_bridges_open(false);
    }

    fn show_tor_starting(&mut self) {
        let ch = model::starting_tor(&mut self.model);
        self.render(ch);
    }

    // ---- OTR requests from the verification dialog ---------------------------

    fn current_peer(&self) -> Option<(AccountId, String)> {
        self.model.current_peer()
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
            .model
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
            self.model
                .with_conv(id, &peer, |c| c.privacy = f(c.privacy));
            self.refresh_conversation_state();
        }
    }

    fn set_smp(&mut self, smp: SmpEvent) {
        if let Some((id, peer)) = self.current_peer() {
            self.model.with_conv(id, &peer, |c| c.smp = Some(smp));
        }
        if let Some(w) = self.win() {
            w.set_smp_secret_input("".into());
        }
        self.refresh_conversation_state();
    }
}

/// Shows what the pasted text is: how many bridges, or the first line refused and why.
fn show_bridge_check(w: &MainWindow, text: &str) {
    use crate::slint_generatedMainWindow::BridgeProblem;
    let (problem, line, count) = match crate::bridges::check(text) {
        Ok(b) => (BridgeProblem::None, 0, b.len()),
        Err((line, p)) => (p, line, 0),
    };
    w.set_bridges_problem(problem);
    w.set_bridges_problem_line(i32::try_from(line).unwrap_or(i32::MAX));
    w.set_bridges_count(i32::try_from(count).unwrap_or(i32::MAX));
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
    on!(on_check_now, |a| { a.check_update_now() });
    on!(on_check_updates_changed, |a, on| {
        a.check_updates = on;
        a.save_remembered();
        a.backend.request(Request::AutoUpdateCheck(on));
    });
    on!(on_restart_to_update, |a| { a.restart_to_update() });
    on!(on_tor_retry, |a| {
        a.show_tor_starting();
        a.backend.request(Request::RetryTor);
    });
    on!(on_open_bridges, |a| { a.open_bridges() });
    {
        let weak = w.as_weak();
        w.on_bridges_edited(move |text| {
            if let Some(w) = weak.upgrade() {
                show_bridge_check(&w, &text);
            }
        });
        let weak = w.as_weak();
        w.on_bridges_mode_changed(move |_| {
            if let Some(w) = weak.upgrade() {
                show_bridge_check(&w, &w.get_bridges_lines());
            }
        });
    }
    on!(on_bridges_use, |a| { a.use_bridges() });
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
            let irc = a.model.entry(id).is_some_and(|e| e.is_irc());
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
        if let Some((id, Target::Group(room))) = a.model.current.clone() {
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
