//! The seam between the window and the network stack.
//!
//! The window only speaks [`Request`] (what the user asked for) and
//! [`UiEvent`] (what happened). A backend carries requests out — Tor, TLS,
//! XMPP/IRC, and OTR for every one-to-one message — and reports back through
//! a [`Sink`]. The program uses [`crate::net::Net`]; the UI tests plug in a
//! recording backend and feed events by hand.

use timb_core::{AccountId, Command, Event};
pub use timb_otr::SmpEvent;

use crate::accounts::Account;

/// Why Tor could not start, in the terms the user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorFailureKind {
    NoNetwork,
    ClockSkew,
    Blocked,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TorStatus {
    /// Bootstrapping: fraction done (0..=1) and what Tor is doing.
    Starting {
        fraction: f32,
        phase: timb_tor::TorPhase,
    },
    Ready,
    Failed {
        kind: TorFailureKind,
        detail: String,
    },
    /// The start under way (or the last one) reaches Tor through this many bridges; sent
    /// before its progress, so the window says how Tor is reached as it is, not as the
    /// setting now says.
    Route {
        bridges: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyGen {
    Working,
    Done,
    Failed,
}

/// What the OTR layer tells the window, in the window's terms (one note per
/// thing the window shows); the SMP step is timb-otr's own [`SmpEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrNote {
    KeyGen {
        account: AccountId,
        state: KeyGen,
    },
    OurFingerprint {
        account: AccountId,
        fingerprint: String,
    },
    /// A message is held until the conversation is encrypted.
    Waiting {
        account: AccountId,
        peer: String,
        held: usize,
    },
    Secure {
        account: AccountId,
        peer: String,
        fingerprint: String,
        verified: bool,
    },
    Insecure {
        account: AccountId,
        peer: String,
    },
    Ended {
        account: AccountId,
        peer: String,
    },
    Smp {
        account: AccountId,
        peer: String,
        event: SmpEvent,
    },
    /// Held messages given up on (the encryption did not come up in time).
    Undelivered {
        account: AccountId,
        peer: String,
        count: usize,
    },
    /// The peer sent a message without encryption; shown with a warning.
    Unencrypted {
        account: AccountId,
        peer: String,
        body: String,
    },
    /// Anything else worth a line in the conversation (text is ours, not the peer's).
    Problem {
        account: AccountId,
        peer: String,
        text: String,
    },
}

/// Where the update check is, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStatus {
    Checking,
    UpToDate,
    /// A newer bundle, being downloaded: bytes so far of the signed length.
    Downloading {
        version: String,
        done: u64,
        total: u64,
    },
    /// Installed beside this version; starts at the next start ("Restart to update").
    Ready {
        version: String,
    },
    Failed(UpdateProblem),
}

/// Why an update did not happen, in the terms the user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateProblem {
    /// The bundle ships no update channel (a local build).
    NotConfigured,
    /// Not running from a bundle's folders (a build tree, a 0.1.0 bundle).
    NotInPlace,
    /// Version V is installed, but timb could not start it for the user (no restart
    /// helper, and the sandbox refuses to run programs): they restart it by hand.
    RestartByHand(String),
    Check(timb_update::Problem),
}

#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    Tor(TorStatus),
    Update(UpdateStatus),
    Account(AccountId, Event),
    Otr(OtrNote),
}

/// The Bridges setting as the backend needs it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct BridgeChoice {
    /// The usable bridges.
    pub bridges: Vec<timb_tor::Bridge>,
    /// The user chose bridges: with none usable (a remembered list that no longer reads or
    /// checks), Tor does not start, rather than reaching Tor directly where the user hid it.
    pub chosen: bool,
    /// Kept in the profile: arti's own records of the bridges (its state and cache) may stay
    /// too. Otherwise they are wiped before each start through bridges and at exit.
    pub remember: bool,
}

impl std::fmt::Debug for BridgeChoice {
    // A bridge's address is what a censor looks for: counts only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SetBridges({} bridges, chosen {}, remember {})",
            self.bridges.len(),
            self.chosen,
            self.remember
        )
    }
}

/// What the user asked for.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// Start Tor if needed, then connect. The password is for this attempt only.
    Connect {
        id: AccountId,
        account: Account,
        password: Option<String>,
    },
    /// Protocol commands (disconnect, groups, roster). Never a one-to-one message.
    Command {
        id: AccountId,
        command: Command,
    },
    /// A one-to-one message: only ever sent through OTR, held until encrypted.
    SendPrivate {
        id: AccountId,
        peer: String,
        body: String,
    },
    StartPrivate {
        id: AccountId,
        peer: String,
    },
    EndPrivate {
        id: AccountId,
        peer: String,
    },
    SetVerified {
        id: AccountId,
        peer: String,
        fingerprint: String,
        verified: bool,
    },
    StartSmp {
        id: AccountId,
        peer: String,
        question: Option<String>,
        secret: String,
    },
    RespondSmp {
        id: AccountId,
        peer: String,
        secret: String,
    },
    AbortSmp {
        id: AccountId,
        peer: String,
    },
    /// The account was removed: drop its connection and session state.
    Forget {
        id: AccountId,
    },
    RetryTor,
    /// "Check now": starts Tor if needed (with its progress), then checks.
    CheckUpdate,
    /// The "Check for updates" setting: when on, the first time Tor runs because the user
    /// connected, an update check follows.
    AutoUpdateCheck(bool),
    /// The bridges the next Tor start takes. A Tor already running keeps the ones it
    /// started with.
    SetBridges(BridgeChoice),
}

impl std::fmt::Debug for Request {
    // Message bodies, passwords and secrets stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Connect { id, .. } => write!(f, "Connect({id})"),
            Request::Command { id, command } => match command {
                Command::Send { to, .. } => write!(f, "Command({id}, Send to {})", to.name()),
                c => write!(f, "Command({id}, {c:?})"),
            },
            Request::SendPrivate { id, peer, .. } => write!(f, "SendPrivate({id}, {peer})"),
            Request::StartPrivate { id, peer } => write!(f, "StartPrivate({id}, {peer})"),
            Request::EndPrivate { id, peer } => write!(f, "EndPrivate({id}, {peer})"),
            Request::SetVerified {
                id, peer, verified, ..
            } => {
                write!(f, "SetVerified({id}, {peer}, {verified})")
            }
            Request::StartSmp { id, peer, .. } => write!(f, "StartSmp({id}, {peer})"),
            Request::RespondSmp { id, peer, .. } => write!(f, "RespondSmp({id}, {peer})"),
            Request::AbortSmp { id, peer } => write!(f, "AbortSmp({id}, {peer})"),
            Request::Forget { id } => write!(f, "Forget({id})"),
            Request::RetryTor => write!(f, "RetryTor"),
            Request::CheckUpdate => write!(f, "CheckUpdate"),
            Request::AutoUpdateCheck(on) => write!(f, "AutoUpdateCheck({on})"),
            // A bridge's address is what a censor looks for: the count only.
            Request::SetBridges(b) => write!(f, "{b:?}"),
        }
    }
}

/// How many events may wait for the window at once before the accounts stop
/// reading from their servers. The window's queue (slint's
/// `invoke_from_event_loop`) is unbounded: without this, a server sending
/// faster than the window can draw would grow it until memory runs out.
/// Accounts check it before each read, so each may add one read's events
/// beyond it; Tor's progress, the updater and the window's own sends (few,
/// and not a server's doing) are never held.
pub const MAX_WAITING_EVENTS: usize = 256;

/// Delivers events to the window from any thread.
#[derive(Clone)]
pub struct Sink {
    deliver: std::sync::Arc<dyn Fn(UiEvent, Delivered) + Send + Sync>,
    waiting: std::sync::Arc<Waiting>,
}

/// The events handed to the window and not yet handled by it.
#[derive(Default)]
struct Waiting {
    count: std::sync::atomic::AtomicUsize,
    /// The most that ever waited (`cargo xtask bench flood` reports it).
    peak: std::sync::atomic::AtomicUsize,
    freed: tokio::sync::Notify,
}

/// Goes with each event to the window; dropping it (after the event was
/// handled, or with an event that can no longer be) makes room for the next.
pub struct Delivered(std::sync::Arc<Waiting>);

impl Drop for Delivered {
    fn drop(&mut self) {
        self.0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.freed.notify_waiters();
    }
}

impl Sink {
    /// A sink whose events count as handled once `f` returns (tests that
    /// collect events themselves).
    pub fn new(f: impl Fn(UiEvent) + Send + Sync + 'static) -> Self {
        Sink::queued(move |e, _delivered| f(e))
    }

    /// A sink that hands each event on with its [`Delivered`] token, to be
    /// dropped once the window has handled the event.
    pub fn queued(f: impl Fn(UiEvent, Delivered) + Send + Sync + 'static) -> Self {
        Sink {
            deliver: std::sync::Arc::new(f),
            waiting: Default::default(),
        }
    }

    /// Never blocks: the window's own thread sends too.
    pub fn send(&self, e: UiEvent) {
        let now = self
            .waiting
            .count
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        self.waiting
            .peak
            .fetch_max(now, std::sync::atomic::Ordering::AcqRel);
        (self.deliver)(e, Delivered(self.waiting.clone()))
    }

    /// Events handed on and not yet handled.
    pub fn waiting(&self) -> usize {
        self.waiting
            .count
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The most events that ever waited for the window at once.
    pub fn most_waiting(&self) -> usize {
        self.waiting.peak.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once fewer than [`MAX_WAITING_EVENTS`] events wait for the
    /// window. An account awaits this before reading its next event, so a
    /// flood backs up to the server's connection instead of into memory.
    pub async fn room(&self) {
        loop {
            let freed = self.waiting.freed.notified();
            tokio::pin!(freed);
            // Registered before the count is read, so a release in between wakes us.
            freed.as_mut().enable();
            if self.waiting() < MAX_WAITING_EVENTS {
                return;
            }
            freed.await;
        }
    }
}

pub trait Backend {
    fn request(&mut self, r: Request);
}

#[cfg(test)]
mod sink_tests {
    use super::*;
    use std::future::Future;
    use std::sync::{Arc, Mutex};

    fn ready(f: impl Future<Output = ()>) -> bool {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn accounts_wait_while_the_window_is_behind_and_go_on_when_it_catches_up() {
        // A window that has not handled anything yet: it keeps the tokens.
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = held.clone();
        let sink = Sink::queued(move |_e, d| h.lock().unwrap().push(d));
        for _ in 0..MAX_WAITING_EVENTS - 1 {
            sink.send(UiEvent::Tor(TorStatus::Ready));
        }
        assert!(ready(sink.room()), "room for one more");
        sink.send(UiEvent::Tor(TorStatus::Ready));
        assert_eq!(sink.waiting(), MAX_WAITING_EVENTS);
        let mut wait = Box::pin(sink.room());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            wait.as_mut().poll(&mut cx).is_pending(),
            "the window is full"
        );
        // The window handles one event: the waiting account goes on.
        drop(held.lock().unwrap().pop());
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        // Events the window could not take any more (its loop ended) are freed too.
        held.lock().unwrap().clear();
        assert_eq!(sink.waiting(), 0);
    }

    #[test]
    fn a_plain_sink_never_makes_anyone_wait() {
        let sink = Sink::new(|_| {});
        for _ in 0..10 * MAX_WAITING_EVENTS {
            sink.send(UiEvent::Tor(TorStatus::Ready));
        }
        assert_eq!(sink.waiting(), 0);
        assert!(ready(sink.room()));
    }
}
