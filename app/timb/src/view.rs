//! The window as a view of the [`Model`](crate::model::Model): copies what a
//! [`Changes`] says changed into the window's properties and row models, and
//! decides nothing.

use slint::{Model as _, ModelRc, SharedString, VecModel};
use timb_core::Target;

use crate::backend::{KeyGen, SmpEvent, TorFailureKind};
use crate::controller::App;
use crate::model::{Changes, Entry};
use crate::slint_generatedMainWindow as ui;
use crate::state::{self, Conversation, Message, Privacy, Status};
use ui::{
    AccountRow, ConnState, ContactRow, KeyGenState, MessageRow, MsgStatus, OtrState, RequestRow,
    SmpState, TorFailure,
};

impl App {
    /// Shows what changed: the only way model changes reach the window.
    pub(crate) fn render(&mut self, ch: Changes) {
        let w = self.win();
        if ch.tor {
            self.show_tor();
        }
        if ch.update {
            self.show_update();
        }
        if let (true, Some(w), Some(k)) = (ch.keygen, &w, self.model.keygen) {
            w.set_keygen(match k {
                KeyGen::Working => KeyGenState::Working,
                KeyGen::Done => KeyGenState::Done,
                KeyGen::Failed => KeyGenState::Failed,
            });
        }
        if ch.closed {
            if let Some(w) = &w {
                w.set_conv_open(false);
                w.set_otr_open(false);
            }
            self.messages_model.set_vec(Vec::new());
            self.members_model.set_vec(Vec::new());
        }
        if ch.accounts {
            self.refresh_accounts();
        }
        if ch.conversation {
            self.refresh_conversation();
        } else if ch.conversation_state {
            self.refresh_conversation_state();
        }
        if !ch.appended.is_empty() {
            for m in &ch.appended {
                self.messages_model.push(message_row(m));
            }
            for _ in 0..ch.dropped.min(self.messages_model.row_count()) {
                self.messages_model.remove(0);
            }
        }
        if ch.contacts {
            self.refresh_contacts();
        }
        if let Some(w) = &w {
            if ch.opened {
                w.invoke_focus_message();
            }
            if ch.show_verify {
                w.set_otr_open(true);
            }
        }
    }

    fn show_update(&self) {
        use crate::backend::{UpdateProblem as P, UpdateStatus as S};
        use timb_update::Problem as C;
        let Some(w) = self.win() else { return };
        let Some(u) = &self.model.update else { return };
        let (state, version) = match u {
            S::Checking => (ui::UpdateState::Checking, String::new()),
            S::UpToDate => (ui::UpdateState::UpToDate, crate::VERSION.to_string()),
            S::Downloading {
                version,
                done,
                total,
            } => {
                w.set_update_size(megabytes(*total).into());
                w.set_update_progress(if *total == 0 {
                    0.0
                } else {
                    (*done as f64 / *total as f64).clamp(0.0, 1.0) as f32
                });
                (ui::UpdateState::Downloading, version.clone())
            }
            S::Ready { version } => (ui::UpdateState::Ready, version.clone()),
            S::Failed(P::RestartByHand(version)) => {
                w.set_update_problem(ui::UpdateProblem::RestartByHand);
                (ui::UpdateState::Failed, version.clone())
            }
            S::Failed(p) => {
                w.set_update_problem(match p {
                    P::NotConfigured => ui::UpdateProblem::NotConfigured,
                    P::NotInPlace => ui::UpdateProblem::NotInPlace,
                    // Handled above, with its version.
                    P::RestartByHand(_) => ui::UpdateProblem::Other,
                    P::Check(C::Unreachable) => ui::UpdateProblem::Unreachable,
                    P::Check(C::HeldBack) => ui::UpdateProblem::HeldBack,
                    P::Check(C::Rollback) => ui::UpdateProblem::Rollback,
                    P::Check(C::Tampered) => ui::UpdateProblem::Tampered,
                    P::Check(C::Size) => ui::UpdateProblem::Size,
                    P::Check(C::DiskFull) => ui::UpdateProblem::DiskFull,
                    P::Check(C::Disk) => ui::UpdateProblem::Disk,
                    P::Check(C::Refused) => ui::UpdateProblem::Refused,
                    P::Check(C::Other) => ui::UpdateProblem::Other,
                });
                (ui::UpdateState::Failed, String::new())
            }
        };
        w.set_update_version(version.into());
        w.set_update_state(state);
    }

    fn show_tor(&self) {
        let Some(w) = self.win() else { return };
        let t = &self.model.tor;
        w.set_tor_progress(t.progress);
        w.set_tor_route_bridges(i32::try_from(t.route_bridges).unwrap_or(i32::MAX));
        w.set_tor_phase(match t.phase {
            timb_tor::TorPhase::Reaching => ui::TorPhase::Reaching,
            timb_tor::TorPhase::Directory => ui::TorPhase::Directory,
            timb_tor::TorPhase::Finishing => ui::TorPhase::Finishing,
        });
        if let Some((kind, detail)) = &t.failure {
            w.set_tor_failure(match kind {
                TorFailureKind::NoNetwork => TorFailure::NoNetwork,
                TorFailureKind::ClockSkew => TorFailure::ClockSkew,
                TorFailureKind::Blocked => TorFailure::Blocked,
                TorFailureKind::Other => TorFailure::Other,
            });
            w.set_tor_detail(detail.clone().into());
        }
        w.set_tor_state(t.state);
    }

    pub(crate) fn refresh_accounts(&self) {
        let rows: Vec<AccountRow> = self
            .model
            .entries
            .iter()
            .map(|e| {
                let (problem, detail, new_key) = problem(e.error.as_ref());
                AccountRow {
                    id: e.id.0 as i32,
                    irc: e.is_irc(),
                    label: e.account.label().into(),
                    state: e.state,
                    problem,
                    detail: state::sanitize(&detail).into(),
                    new_key: state::sanitize(&new_key).into(),
                    server_key: e.server_key.clone().unwrap_or_default().into(),
                    created: e.created,
                }
            })
            .collect();
        update_rows(&self.accounts_model, rows, |r| r.id);
        if let Some(w) = self.win() {
            let sel = w.get_selected_account();
            if sel >= self.model.entries.len() as i32 || (sel < 0 && !self.model.entries.is_empty())
            {
                w.set_selected_account(if self.model.entries.is_empty() { -1 } else { 0 });
            }
            let irc = usize::try_from(w.get_selected_account())
                .ok()
                .and_then(|i| self.model.entries.get(i))
                .is_some_and(|e| e.is_irc());
            w.set_selected_is_irc(irc);
        }
    }

    pub(crate) fn refresh_contacts(&self) {
        let mut rows = Vec::new();
        let mut requests = Vec::new();
        for e in &self.model.entries {
            let acc = e.id.0 as i32;
            let unread = |t: &Target| e.conversations.get(t).map(|c| c.unread as i32).unwrap_or(0);
            for room in e.groups.keys() {
                let t = Target::Group(room.clone());
                rows.push(ContactRow {
                    account: acc,
                    id: room.into(),
                    name: room.into(),
                    mark: group_mark(room).into(),
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
                    mark: SharedString::new(),
                    unread: unread(&Target::Direct(jid.clone())),
                });
            }
            // One-to-one conversations with people not in the roster (IRC queries), by
            // name: the map's own order changes from one refresh to the next.
            let mut queries: Vec<_> = e
                .conversations
                .iter()
                .filter_map(|(t, c)| match t {
                    Target::Direct(n) if !e.roster.contains_key(n) => Some((n, c)),
                    _ => None,
                })
                .collect();
            queries.sort_by(|a, b| a.0.cmp(b.0));
            for (n, c) in queries {
                rows.push(ContactRow {
                    account: acc,
                    id: n.into(),
                    name: n.into(),
                    online: e.state == ConnState::Connected && !e.gone.contains(n),
                    is_group: false,
                    mark: SharedString::new(),
                    unread: c.unread as i32,
                    rtl: state::is_rtl_text(n),
                });
            }
            for r in &e.requests {
                requests.push(RequestRow {
                    account: acc,
                    from: r.into(),
                });
            }
        }
        // Keyed: a group and a person of one name are two rows.
        update_rows(&self.contacts_model, rows, |r| {
            (r.account, r.is_group, r.id.clone())
        });
        update_rows(&self.requests_model, requests, |r| {
            (r.account, r.from.clone())
        });
    }

    pub(crate) fn refresh_conversation(&self) {
        let Some((_, c)) = self.current_conv() else {
            self.messages_model.set_vec(Vec::new());
            return;
        };
        self.messages_model
            .set_vec(c.messages.iter().map(message_row).collect::<Vec<_>>());
        update_rows(
            &self.members_model,
            c.members.iter().map(SharedString::from).collect(),
            SharedString::clone,
        );
        self.refresh_conversation_state();
    }

    pub(crate) fn refresh_conversation_state(&self) {
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
            Target::Group(r) => format!("{}{r}", group_mark(r)),
        };
        w.set_conv_title(title.into());
        w.set_conv_account_label(e.account.label().into());
        w.set_conv_is_group(c.target.is_group());
        w.set_conv_unanswered(c.unanswered);
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

    fn current_conv(&self) -> Option<(&Entry, &Conversation)> {
        self.model.current_conv()
    }
}

/// Brings `model` to `rows`, keeping the window's item of every row whose key stays:
/// a row that changed is set in place, a row that went is removed, a new one inserted.
/// A screen reader on a contact keeps its place when another contact changes, and a
/// button that has focus never comes to act on another row: after the first of two
/// requests is answered its row goes, and the focused Accept button with it, rather than
/// the next person's request sliding under it (`set_vec` remade every row, and moved
/// the focus to whatever row took the index). When the rows that stay change order
/// (a renamed contact sorts elsewhere), the list is made anew: rare, and simpler than
/// moving items. Linear in the rows, plus the model's own cost per insert and removal.
fn update_rows<T, K>(model: &VecModel<T>, rows: Vec<T>, key: impl Fn(&T) -> K)
where
    T: Clone + PartialEq + 'static,
    K: Eq + std::hash::Hash,
{
    let keys: Vec<K> = rows.iter().map(&key).collect();
    let wanted: std::collections::HashSet<&K> = keys.iter().collect();
    if wanted.len() != keys.len() {
        // A key twice: no row can be told from another.
        model.set_vec(rows);
        return;
    }
    // Rows whose key went, from the end so the indices stay right.
    for i in (0..model.row_count()).rev() {
        if model
            .row_data(i)
            .is_some_and(|old| !wanted.contains(&key(&old)))
        {
            model.remove(i);
        }
    }
    // The rows left must come in the new order; new ones go in between.
    let left: Vec<K> = model.iter().map(|r| key(&r)).collect();
    let mut in_new = keys.iter().filter(|k| left.contains(k));
    let same_order = left.len() <= keys.len() && left.iter().all(|k| in_new.next() == Some(k));
    if !same_order {
        model.set_vec(rows);
        return;
    }
    for (i, row) in rows.into_iter().enumerate() {
        match model.row_data(i) {
            Some(old) if key(&old) == keys[i] => {
                if old != row {
                    model.set_row_data(i, row);
                }
            }
            _ => model.insert(i, row),
        }
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

/// The mark shown before a group's name: IRC channel names carry their own
/// (`#`, `&`, `+`, `!`), so "# " is added only to names without one (XMPP rooms).
fn group_mark(room: &str) -> &'static str {
    if room.starts_with(['#', '&', '+', '!']) {
        ""
    } else {
        "# "
    }
}

/// What the window says about an account's failure: the sentence's kind (the
/// window words it from the catalogue), then what it quotes: the server's own
/// words, or the server's keys for a user to compare out of band.
fn problem(err: Option<&timb_core::AccountError>) -> (ui::AccountProblem, String, String) {
    use timb_core::{AccountError as E, CertProblem as C, ConnectError as K};
    use ui::AccountProblem as P;
    let Some(err) = err else {
        return (P::None, String::new(), String::new());
    };
    let kind = match err {
        E::Connect(k) => match k {
            K::Timeout => P::Timeout,
            K::Circuit => P::Circuit,
            K::NoNetwork => P::NoNetwork,
            K::Refused => P::Refused,
            K::OnionUnreachable => P::OnionUnreachable,
            K::HostNotFound => P::HostNotFound,
            K::Forbidden => P::Forbidden,
            K::BadAddress => P::BadAddress,
            K::OnionAuth => P::OnionAuth,
            K::ClockSkew => P::ClockSkew,
            K::NoTor => P::NoTor,
            K::Other => P::Unreachable,
        },
        E::Transport(_) => P::Lost,
        E::Certificate(c) => match c {
            C::PinMismatch { got } => return (P::PinMismatch, got.clone(), String::new()),
            C::KeyChanged { old, new } => return (P::KeyChanged, old.clone(), new.clone()),
            C::Expired => P::Expired,
            C::NotYetValid => P::NotYetValid,
            C::WrongName => P::WrongName,
            C::UntrustedIssuer => P::Untrusted,
            C::Unusable => P::BadCertificate,
        },
        E::Auth(_) => P::Auth,
        E::Protocol(_) => P::Protocol,
        E::Closed(why) => return (P::Closed, why.clone(), String::new()),
        E::Refused(why) => return (P::ServerRefused, why.clone(), String::new()),
        E::Local(why) => return (P::Local, why.clone(), String::new()),
        E::Registration(r) => {
            use timb_core::RegistrationProblem as R;
            match r {
                R::NotOffered => P::RegistrationNotOffered,
                R::Taken => P::RegistrationTaken,
                R::NeedsMore {
                    instructions,
                    fields,
                    captcha,
                } => {
                    let kind = if *captcha {
                        P::RegistrationCaptcha
                    } else {
                        P::RegistrationNeedsMore
                    };
                    return (kind, instructions.clone(), fields.clone());
                }
                R::Refused(why) => return (P::RegistrationRefused, why.clone(), String::new()),
            }
        }
        E::Notice(n) => {
            use timb_core::Notice as N;
            match n {
                N::NotConnected => P::NotConnected,
                N::TooManyWaiting => P::TooManyWaiting,
                N::MaybeUndelivered(k) => {
                    return (P::MaybeUndelivered, k.to_string(), String::new())
                }
                N::NotSent(k) => return (P::NotSent, k.to_string(), String::new()),
                N::Backlog => P::Backlog,
                N::NotInGroup => P::NotInGroup,
                N::InvalidTarget => P::InvalidTarget,
                N::InvalidChannel => P::InvalidChannel,
                N::NotAGroupAddress => P::NotAGroupAddress,
                N::OwnAddress => P::OwnAddress,
                N::ContactAddress => P::ContactAddress,
                N::NickUnavailable => P::NickUnavailable,
                N::InvalidNick => P::InvalidNick,
                N::NoTls => P::NoTls,
            }
        }
        E::GroupRefused { room, why } => return (P::GroupRefused, room.clone(), why.clone()),
        E::NotDelivered { to, why } => return (P::NotDelivered, to.clone(), why.clone()),
    };
    (kind, String::new(), String::new())
}

/// "12.3 MB" (decimal megabytes, as download sizes are usually given).
/// What the window says about the sandbox: "partial" whenever any part is missing, "no
/// Landlock" when nothing keeps the user's files out of reach.
pub(crate) fn sandbox_state(s: &timb_sandbox::Status) -> ui::SandboxState {
    use timb_sandbox::{Files, Status};
    match s {
        Status::Confined => ui::SandboxState::Confined,
        Status::Partial {
            files: Files::None, ..
        } => ui::SandboxState::NoLandlock,
        Status::Partial { .. } => ui::SandboxState::Partial,
        Status::Disabled => ui::SandboxState::Disabled,
        Status::Unsupported => ui::SandboxState::Unsupported,
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[cfg(test)]
mod update_rows_tests {
    use super::*;

    /// Whatever the old and new rows (reordered, changed, keys repeated), the model ends
    /// equal to the new rows. (Which items are kept is the window tests' part.)
    #[test]
    fn the_model_ends_as_the_rows_whatever_they_were() {
        type Rows = &'static [(u8, u8)];
        let cases: &[(Rows, Rows)] = &[
            (&[], &[(1, 0), (2, 0)]),
            (&[(1, 0), (2, 0)], &[]),
            (&[(1, 0), (2, 0), (3, 0)], &[(2, 0), (3, 1)]),
            (&[(1, 0), (2, 0), (3, 0)], &[(3, 0), (1, 0), (2, 5)]),
            (&[(1, 0), (1, 1), (2, 0)], &[(2, 0), (1, 2)]),
            (&[(2, 0)], &[(1, 0), (1, 1), (2, 0), (2, 1)]),
            (&[(5, 0), (4, 0), (3, 0)], &[(3, 0), (4, 0), (5, 0), (6, 0)]),
        ];
        for (old, new) in cases {
            let model = VecModel::from(old.to_vec());
            update_rows(&model, new.to_vec(), |r| r.0);
            let got: Vec<(u8, u8)> = model.iter().collect();
            assert_eq!(got, new.to_vec(), "from {old:?}");
        }
    }
}
