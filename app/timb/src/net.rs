//! The real backend: arti (timb-tor), XMPP and IRC over it, OTR on every
//! one-to-one conversation.
//!
//! One tokio runtime serves everything. Each connected account is one task
//! that owns the protocol handle and its OTR control; both protocols get their
//! streams from timb-tor's `TorConnector` and reconnect after a drop by the
//! same rules (transient failures only, with backoff, never after Disconnect); the window's requests
//! reach it through a queue, so a message typed while Tor is still starting is
//! kept in order and given to OTR (which holds it until the conversation is
//! encrypted) once the account exists. Tor starts on the first connect, never
//! before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use timb_core::{AccountError, AccountHandle, AccountId, Command, ConnectionState, Event};
use timb_otr::wrap::{ControlEvent, OtrControl};
use timb_otr::{KeyGenState, OtrEvent, Problem};
use timb_tor::{
    BootstrapProgress, ConnectError, PinSet, TlsPolicy, TofuStore, TorConfig, TorConnector,
    TorError, Transport,
};
use tokio::sync::{mpsc, watch, Mutex};

use crate::accounts::{Account, SavedProtocol, TlsMode};
use crate::backend::{Backend, KeyGen, OtrNote, Request, Sink, TorFailureKind, TorStatus, UiEvent};

/// Environment variable naming a private Tor network's description (the test
/// harness's network file). Loud on stderr, never silent: it replaces the
/// public Tor network.
pub const PRIVATE_NETWORK_ENV: &str = "TIMB_PRIVATE_TOR_NETWORK";

struct Shared {
    sink: Sink,
    profile: PathBuf,
    network: Option<PathBuf>,
    /// Tor, started once and shared by every account; the lock is held for
    /// the whole bootstrap so concurrent connects wait for the same one.
    tor: Mutex<Option<Transport>>,
    /// Failed bootstraps so far: callers that waited on a failing one get its
    /// failure instead of each starting another.
    tor_failures: AtomicU64,
    /// TOFU pins of accounts not remembered: kept for the session, never on disk.
    tofu_in_memory: std::sync::Mutex<HashMap<AccountId, TofuStore>>,
    update: Arc<crate::update::UpdateSetup>,
    /// The "Check for updates" setting.
    auto_update_check: AtomicBool,
    /// An update check ran (or runs) in this session: the automatic one happens once.
    update_checked: AtomicBool,
    /// A check runs now. One at a time: two would write the same download file.
    update_running: AtomicBool,
    /// The Bridges setting: what the next Tor start takes.
    bridges: std::sync::Mutex<crate::backend::BridgeChoice>,
}

/// What the window asks of one account, in order.
enum Op {
    Command(Command),
    Otr(Request),
}

pub struct Net {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    accounts: HashMap<AccountId, mpsc::UnboundedSender<Op>>,
}

impl Drop for Net {
    /// Bridges not remembered leave no line in the profile: arti's records of them go at
    /// exit (a crash leaves them until the next start through bridges, or a direct one,
    /// wipes them).
    fn drop(&mut self) {
        let remember = self
            .shared
            .bridges
            .lock()
            .map(|c| c.remember)
            .unwrap_or(false);
        if remember {
            return;
        }
        // arti first (it writes its state as it stops), then its folder.
        if let Ok(idle) = tokio::runtime::Builder::new_current_thread().build() {
            std::mem::replace(&mut self.rt, idle)
                .shutdown_timeout(std::time::Duration::from_secs(3));
        }
        let _ = wipe(&bridges_state_dir(&self.shared.profile));
    }
}

impl Net {
    /// A backend with no update channel (tests, examples).
    pub fn new(sink: Sink, profile: &Path) -> std::io::Result<Net> {
        let none = crate::update::UpdateSetup {
            layout: None,
            channel: None,
            running: None,
        };
        Net::with_update(sink, profile, none, false)
    }

    /// The program's backend: `update` says where updates come from and go; `auto_check`
    /// is the user's "Check for updates" setting.
    pub fn with_update(
        sink: Sink,
        profile: &Path,
        update: crate::update::UpdateSetup,
        auto_check: bool,
    ) -> std::io::Result<Net> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("timb-net")
            .enable_all()
            .build()?;
        let network = std::env::var_os(PRIVATE_NETWORK_ENV).map(PathBuf::from);
        if let Some(n) = &network {
            eprintln!(
                "timb: {PRIVATE_NETWORK_ENV} is set: using the private Tor network described in {}, not the public Tor network",
                n.display()
            );
        }
        Ok(Net {
            rt,
            shared: Arc::new(Shared {
                sink,
                profile: profile.to_owned(),
                network,
                tor: Mutex::new(None),
                tor_failures: AtomicU64::new(0),
                tofu_in_memory: std::sync::Mutex::new(HashMap::new()),
                update: Arc::new(update),
                auto_update_check: AtomicBool::new(auto_check),
                bridges: std::sync::Mutex::new(crate::backend::BridgeChoice::default()),
                update_checked: AtomicBool::new(false),
                update_running: AtomicBool::new(false),
            }),
            accounts: HashMap::new(),
        })
    }

    fn send(&self, id: AccountId, op: Op) {
        let op = match self.accounts.get(&id) {
            Some(tx) => match tx.send(op) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => op,
        };
        // Not connected: nothing can go out, and nothing is kept.
        if let Op::Otr(r) = op {
            if let Some((id, peer)) = otr_target(&r) {
                self.shared.sink.send(UiEvent::Otr(OtrNote::Problem {
                    account: id,
                    peer,
                    text: "The account is not connected.".into(),
                }));
            }
        }
    }
}

fn otr_target(r: &Request) -> Option<(AccountId, String)> {
    match r {
        Request::SendPrivate { id, peer, .. }
        | Request::StartPrivate { id, peer }
        | Request::EndPrivate { id, peer }
        | Request::SetVerified { id, peer, .. }
        | Request::StartSmp { id, peer, .. }
        | Request::RespondSmp { id, peer, .. }
        | Request::AbortSmp { id, peer } => Some((*id, peer.clone())),
        _ => None,
    }
}

impl Backend for Net {
    fn request(&mut self, r: Request) {
        match r {
            Request::Connect {
                id,
                account,
                password,
            } => {
                // A new connect replaces whatever the account was doing; the
                // old task ends when its queue closes.
                let (tx, rx) = mpsc::unbounded_channel();
                self.accounts.insert(id, tx);
                let shared = self.shared.clone();
                self.rt
                    .spawn(account_task(shared, id, account, password, rx));
            }
            Request::Forget { id } => {
                self.accounts.remove(&id);
                self.shared
                    .tofu_in_memory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            Request::RetryTor => {
                let shared = self.shared.clone();
                self.rt.spawn(async move {
                    let _ = ensure_tor(&shared).await;
                });
            }
            Request::CheckUpdate => {
                use crate::backend::{UpdateProblem, UpdateStatus};
                let shared = self.shared.clone();
                // Nothing to check against: say so without starting Tor for nothing.
                let missing = if shared.update.layout.is_none() {
                    Some(UpdateProblem::NotInPlace)
                } else if shared.update.channel.is_none() {
                    Some(UpdateProblem::NotConfigured)
                } else {
                    None
                };
                if let Some(p) = missing {
                    shared.sink.send(UiEvent::Update(UpdateStatus::Failed(p)));
                    return;
                }
                shared.update_checked.store(true, Ordering::SeqCst);
                if shared.update_running.swap(true, Ordering::SeqCst) {
                    // The running check reports to the window; a second would race it.
                    return;
                }
                self.rt.spawn(async move {
                    match ensure_tor(&shared).await {
                        Ok(tor) => {
                            crate::update::check(tor, shared.update.clone(), shared.sink.clone())
                                .await
                        }
                        // The Tor panel says why; the update line says it did not happen.
                        Err(_) => {
                            shared
                                .sink
                                .send(UiEvent::Update(crate::backend::UpdateStatus::Failed(
                                    crate::backend::UpdateProblem::Check(
                                        timb_update::Problem::Unreachable,
                                    ),
                                )))
                        }
                    }
                    shared.update_running.store(false, Ordering::SeqCst);
                });
            }
            Request::AutoUpdateCheck(on) => {
                self.shared.auto_update_check.store(on, Ordering::SeqCst);
            }
            Request::SetBridges(choice) => {
                *self
                    .shared
                    .bridges
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = choice;
            }
            Request::Command { id, command } => self.send(id, Op::Command(command)),
            other => {
                if let Some((id, _)) = otr_target(&other) {
                    self.send(id, Op::Otr(other));
                }
            }
        }
    }
}

/// Where arti keeps its state and cache when Tor is reached through bridges: apart from the
/// direct one, since arti records each bridge's line there (its descriptor cache and its
/// guards). Wiped before each start through bridges the user did not ask to remember, and
/// at exit ([`Net`]'s drop), so their lines do not stay in the profile.
fn bridges_state_dir(profile: &std::path::Path) -> std::path::PathBuf {
    profile.join("tor-bridges")
}

fn wipe(dir: &std::path::Path) -> Result<(), TorError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TorError::Config(format!(
            "could not clear the bridges' Tor folder: {e}"
        ))),
        _ => Ok(()),
    }
}

/// The configuration of the next Tor start: the network, and the bridges set now. An obfs4
/// bridge needs the bundle's transport running first (transports.rs; it may take seconds).
async fn tor_config(
    shared: &Shared,
    choice: &crate::backend::BridgeChoice,
) -> Result<TorConfig, TorError> {
    if choice.chosen && choice.bridges.is_empty() {
        // Never direct when the user chose bridges: that is what they meant to avoid.
        return Err(TorError::Config(
            "bridges are chosen, but none of them can be used (a remembered list could not be read, or its lines no longer check). Open Bridges and choose again".into(),
        ));
    }
    let bridges_dir = bridges_state_dir(&shared.profile);
    let state = if choice.bridges.is_empty() {
        // Nothing chosen is remembered: no bridge's line stays either.
        wipe(&bridges_dir)?;
        timb_tor::profile_state_dir(&shared.profile)
    } else {
        if !choice.remember {
            wipe(&bridges_dir)?;
        }
        bridges_dir
    };
    let config = match &shared.network {
        Some(file) => TorConfig::private_network(file, &state)?,
        None => TorConfig::default_network(&state)?,
    };
    if choice.bridges.is_empty() {
        return Ok(config);
    }
    let transports = if choice
        .bridges
        .iter()
        .any(|b| b.transport() == Some(timb_tor::bridges::OBFS4))
    {
        tokio::task::spawn_blocking(crate::transports::obfs4_for_arti)
            .await
            .map_err(|e| TorError::Config(e.to_string()))?
            .map_err(TorError::Config)?
    } else {
        timb_tor::Transports::none()
    };
    config.with_bridges(&choice.bridges, &transports)
}

/// The running Tor client, bootstrapping it first if needed (progress goes to
/// the window). Callers that waited while a bootstrap failed get that failure
/// instead of starting another one.
async fn ensure_tor(shared: &Shared) -> Result<Transport, String> {
    let seen = shared.tor_failures.load(Ordering::SeqCst);
    let mut slot = shared.tor.lock().await;
    if let Some(t) = &*slot {
        return Ok(t.clone());
    }
    if shared.tor_failures.load(Ordering::SeqCst) > seen {
        return Err("Tor could not start".into());
    }
    // A poisoned lock still holds the setting: never read it as "no bridges".
    let choice = shared
        .bridges
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // How this start reaches Tor, then that it is starting (also when the update check
    // started it): the panel says what is happening, not what the setting says now.
    shared.sink.send(UiEvent::Tor(TorStatus::Route {
        bridges: choice.bridges.len(),
    }));
    shared.sink.send(UiEvent::Tor(TorStatus::Starting {
        fraction: 0.0,
        phase: timb_tor::TorPhase::default(),
    }));
    let config = match tor_config(shared, &choice).await {
        Ok(c) => c,
        Err(e) => {
            shared.tor_failures.fetch_add(1, Ordering::SeqCst);
            shared.sink.send(UiEvent::Tor(TorStatus::Failed {
                kind: TorFailureKind::Other,
                detail: e.to_string(),
            }));
            return Err(e.to_string());
        }
    };
    let (tx, mut rx) = watch::channel(BootstrapProgress::default());
    let sink = shared.sink.clone();
    let reporter = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let p = rx.borrow_and_update().clone();
            if !p.ready && p.blocked.is_none() {
                sink.send(UiEvent::Tor(TorStatus::Starting {
                    fraction: f32::from(p.percent) / 100.0,
                    phase: p.phase,
                }));
            }
        }
    });
    let result = Transport::bootstrap(config, tx).await;
    let _ = reporter.await;
    match result {
        Ok(t) => {
            *slot = Some(t.clone());
            shared.sink.send(UiEvent::Tor(TorStatus::Ready));
            Ok(t)
        }
        Err(e) => {
            shared.tor_failures.fetch_add(1, Ordering::SeqCst);
            let kind = match &e {
                TorError::NoNetwork(_) => TorFailureKind::NoNetwork,
                TorError::ClockSkew(_) => TorFailureKind::ClockSkew,
                TorError::Blocked(_) => TorFailureKind::Blocked,
                _ => TorFailureKind::Other,
            };
            shared.sink.send(UiEvent::Tor(TorStatus::Failed {
                kind,
                detail: e.to_string(),
            }));
            Err(e.to_string())
        }
    }
}

/// The automatic check: once per session, after Tor started because the user connected, if
/// the setting is on and the bundle has a channel.
fn auto_update_check(shared: &Arc<Shared>, tor: &Transport) {
    let wanted = shared.auto_update_check.load(Ordering::SeqCst)
        && shared.update.channel.is_some()
        && shared.update.layout.is_some();
    if wanted
        && !shared.update_checked.swap(true, Ordering::SeqCst)
        && !shared.update_running.swap(true, Ordering::SeqCst)
    {
        let (shared, tor) = (shared.clone(), tor.clone());
        tokio::spawn(async move {
            crate::update::check(tor, shared.update.clone(), shared.sink.clone()).await;
            shared.update_running.store(false, Ordering::SeqCst);
        });
    }
}

/// `<profile>/<name>`, created owner-only (every folder on the way too).
fn private_dir(profile: &Path, name: &str) -> std::io::Result<PathBuf> {
    let dir = profile.join(name);
    std::fs::create_dir_all(&dir)?;
    // Windows has no modes: the folders take the ACL of the one the bundle is in.
    #[cfg(unix)]
    for d in [profile, dir.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

fn tls_policy(shared: &Shared, id: AccountId, account: &Account) -> Result<TlsPolicy, String> {
    let s = &account.settings;
    Ok(match s.tls {
        TlsMode::WebPki => TlsPolicy::WebPki,
        // Not remembered: the pins live as long as timb runs, in memory only.
        TlsMode::Tofu if !account.remember => {
            let mut stores = shared
                .tofu_in_memory
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            TlsPolicy::Tofu(
                stores
                    .entry(id)
                    .or_insert_with(TofuStore::in_memory)
                    .clone(),
            )
        }
        TlsMode::Tofu => {
            let dir = private_dir(&shared.profile, "tls").map_err(|e| format!("profile: {e}"))?;
            TlsPolicy::Tofu(TofuStore::open(dir.join("tofu.txt")).map_err(|e| e.to_string())?)
        }
        TlsMode::Pinned => match s.pin.as_deref().and_then(timb_tls::SpkiSha256::from_hex) {
            Some(pin) => TlsPolicy::Pinned(PinSet::leaf(&s.server, [pin])),
            None => TlsPolicy::Pinned(
                PinSet::bundled(&s.server)
                    .ok_or_else(|| format!("no pin is known for {}", s.server))?,
            ),
        },
    })
}

/// The name OTR files keys under: the bare JID, or `nick@server` for IRC.
fn otr_name(account: &Account) -> String {
    let s = &account.settings;
    match s.protocol {
        SavedProtocol::Xmpp => s.identity.clone(),
        SavedProtocol::Irc => format!("{}@{}", s.identity, s.server),
    }
}

/// One folder per identity, named by a hash so the profile's file names say
/// nothing about who the user is; `otr/` itself is created owner-only.
fn otr_dir(profile: &Path, name: &str) -> std::io::Result<PathBuf> {
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    Ok(private_dir(profile, "otr")?.join(hex::encode(&h[..8])))
}

/// OTR for one account: its key and verified fingerprints in the profile if the
/// user asked to remember the account, else in memory only.
fn wrap_otr(
    profile: &Path,
    account: &Account,
    handle: AccountHandle,
) -> Result<(AccountHandle, OtrControl), String> {
    let name = otr_name(account);
    if !account.remember {
        return timb_otr::wrap::wrap_in_memory(handle, &name).map_err(|e| e.to_string());
    }
    let dir = otr_dir(profile, &name).map_err(|e| format!("profile: {e}"))?;
    timb_otr::wrap::wrap(handle, &dir, &name).map_err(|e| e.to_string())
}

async fn open_account(
    shared: &Shared,
    tor: Transport,
    id: AccountId,
    account: &Account,
    password: Option<String>,
) -> Result<AccountHandle, AccountError> {
    let s = &account.settings;
    let policy = tls_policy(shared, id, account).map_err(AccountError::Local)?;
    match s.protocol {
        SavedProtocol::Xmpp => {
            let password = password.ok_or_else(|| AccountError::Auth("no password".into()))?;
            let mut cfg = timb_xmpp::XmppConfig::new(&s.identity, &password);
            cfg.register = account.create;
            // 5223 (and 443) are the direct-TLS conventions; elsewhere STARTTLS.
            let direct = matches!(s.port, 5223 | 443);
            cfg.server = Some(timb_xmpp::ServerAddr {
                host: s.server.clone(),
                port: s.port,
                tls: if direct {
                    timb_xmpp::TlsMode::Direct
                } else {
                    timb_xmpp::TlsMode::StartTls
                },
            });
            let h = timb_xmpp::spawn_account(
                id,
                cfg,
                Arc::new(TorConnector::new(&tor, id)),
                Arc::new(timb_xmpp::PolicyTls::new(policy, Some(s.port), direct)),
            );
            h.commands
                .send(Command::Connect)
                .await
                .map_err(|_| AccountError::Closed("the account stopped".into()))?;
            Ok(h)
        }
        SavedProtocol::Irc => {
            let server = timb_irc::connect::IrcServer {
                host: s.server.clone(),
                port: s.port,
                tls: policy,
                allow_plaintext: false,
                client_identity: None,
            };
            let mut cfg = timb_irc::session::IrcConfig::new(s.identity.clone());
            if let Some(pw) = password.filter(|p| !p.is_empty()) {
                cfg.auth = timb_irc::session::IrcAuth::Password {
                    account: s.identity.clone(),
                    password: pw,
                    nickserv_fallback: false,
                };
            }
            let h = timb_irc::spawn_account(id, server, cfg, Arc::new(TorConnector::new(&tor, id)));
            h.commands
                .send(Command::Connect)
                .await
                .map_err(|_| AccountError::Closed("the account stopped".into()))?;
            Ok(h)
        }
    }
}

async fn account_task(
    shared: Arc<Shared>,
    id: AccountId,
    account: Account,
    password: Option<String>,
    mut ops: mpsc::UnboundedReceiver<Op>,
) {
    let sink = shared.sink.clone();
    let fail = |e: AccountError| {
        sink.send(UiEvent::Account(id, Event::Error(e)));
        sink.send(UiEvent::Account(
            id,
            Event::State(ConnectionState::Disconnected),
        ));
    };
    sink.send(UiEvent::Account(
        id,
        Event::State(ConnectionState::Connecting),
    ));
    // Tor is shared: its bootstrap runs in a task of its own, so cancelling this
    // connect does not stop it for other accounts.
    let tor_task = {
        let shared = shared.clone();
        tokio::spawn(async move { ensure_tor(&shared).await })
    };
    let opening = async {
        let tor = match tor_task.await {
            Ok(Ok(t)) => {
                auto_update_check(&shared, &t);
                t
            }
            // The window shows why Tor failed (TorStatus); the account only says so, typed.
            Ok(Err(_)) | Err(_) => return Err(AccountError::Connect(ConnectError::NoTor)),
        };
        open_account(&shared, tor, id, &account, password).await
    };
    tokio::pin!(opening);
    // While Tor starts and the server is reached, Disconnect cancels at once;
    // anything else the user asks for waits, in order, for the account.
    let mut early = Vec::new();
    let handle = loop {
        tokio::select! {
            r = &mut opening => match r {
                Ok(h) => break h,
                Err(e) => return fail(e),
            },
            op = ops.recv() => match op {
                Some(Op::Command(Command::Disconnect)) => {
                    sink.send(UiEvent::Account(id, Event::State(ConnectionState::Disconnected)));
                    return;
                }
                Some(op) => early.push(op),
                None => return,
            },
        }
    };
    let (mut handle, control) = match wrap_otr(&shared.profile, &account, handle) {
        Ok(v) => v,
        Err(e) => return fail(AccountError::Local(format!("OTR: {e}"))),
    };
    let mut control = control;
    let mut otr_events = std::mem::replace(&mut control.events, mpsc::channel(1).1);
    if let Some(fp) = control.fingerprint().await {
        sink.send(UiEvent::Otr(OtrNote::OurFingerprint {
            account: id,
            fingerprint: fp,
        }));
    }
    for op in early {
        match op {
            Op::Command(c) => {
                if handle.commands.send(c).await.is_err() {
                    return;
                }
            }
            Op::Otr(r) => otr_request(&control, &handle, &sink, r).await,
        }
    }
    loop {
        tokio::select! {
            op = ops.recv() => match op {
                Some(Op::Command(c)) => {
                    if handle.commands.send(c).await.is_err() {
                        break;
                    }
                }
                Some(Op::Otr(r)) => otr_request(&control, &handle, &sink, r).await,
                // Replaced or forgotten: dropping the handle ends the session.
                None => break,
            },
            // Read on only while the window keeps up: a flooding server then
            // waits on its connection instead of filling this process's memory.
            next = next_for_window(&sink, id, &mut handle.events, &mut otr_events) => match next {
                Next::Show(events) => {
                    for e in events {
                        sink.send(e);
                    }
                }
                Next::AccountEnded => {
                    sink.send(UiEvent::Account(id, Event::State(ConnectionState::Disconnected)));
                    break;
                }
                Next::OtrEnded => break,
            },
        }
    }
}

/// What an account produced next, for the window.
pub enum Next {
    /// Events to show (a protocol event, or the OTR layer's notes).
    Show(Vec<UiEvent>),
    /// The protocol session ended.
    AccountEnded,
    /// The OTR layer stopped.
    OtrEnded,
}

/// An account's next event (the protocol's, through OTR, or an OTR note), read only once
/// the window has room for it ([`Sink::room`]): while the window is behind, neither
/// channel is read, so a flood waits in the OTR and protocol channels and then in the
/// server's connection. Shared with `cargo xtask bench flood`, which runs this loop.
pub async fn next_for_window(
    sink: &Sink,
    id: AccountId,
    events: &mut mpsc::Receiver<Event>,
    otr: &mut mpsc::Receiver<ControlEvent>,
) -> Next {
    sink.room().await;
    tokio::select! {
        e = events.recv() => match e {
            Some(e) => Next::Show(vec![UiEvent::Account(id, e)]),
            None => Next::AccountEnded,
        },
        e = otr.recv() => match e {
            Some(e) => Next::Show(otr_notes(id, e).into_iter().map(UiEvent::Otr).collect()),
            None => Next::OtrEnded,
        },
    }
}

async fn otr_request(control: &OtrControl, handle: &AccountHandle, sink: &Sink, r: Request) {
    let (account, peer) = match otr_target(&r) {
        Some(t) => t,
        None => return,
    };
    let result = match r {
        Request::SendPrivate { peer, body, .. } => {
            // Through the wrapped handle: OTR encrypts it or holds it.
            let c = Command::Send {
                to: timb_core::Target::Direct(peer),
                body,
                kind: timb_core::MessageKind::Normal,
            };
            let _ = handle.commands.send(c).await;
            Ok(())
        }
        Request::StartPrivate { peer, .. } => control.start(&peer).await,
        Request::EndPrivate { peer, .. } => control.end(&peer).await,
        Request::SetVerified {
            peer,
            fingerprint,
            verified,
            ..
        } => control.set_verified(&peer, &fingerprint, verified).await,
        Request::StartSmp {
            peer,
            question,
            secret,
            ..
        } => control.smp_start(&peer, question.as_deref(), &secret).await,
        Request::RespondSmp { peer, secret, .. } => control.smp_respond(&peer, &secret).await,
        Request::AbortSmp { peer, .. } => control.smp_abort(&peer).await,
        _ => Ok(()),
    };
    if let Err(e) = result {
        sink.send(UiEvent::Otr(OtrNote::Problem {
            account,
            peer,
            text: e.to_string(),
        }));
    }
}

/// OTR's events in the window's terms.
fn otr_notes(account: AccountId, e: ControlEvent) -> Vec<OtrNote> {
    let problem = |peer: String, text: String| OtrNote::Problem {
        account,
        peer,
        text,
    };
    match e {
        ControlEvent::Otr(e) => match e {
            OtrEvent::KeyGeneration { state, .. } => match state {
                KeyGenState::Started | KeyGenState::Working { .. } => vec![OtrNote::KeyGen {
                    account,
                    state: KeyGen::Working,
                }],
                KeyGenState::Done { fingerprint } => vec![
                    OtrNote::KeyGen {
                        account,
                        state: KeyGen::Done,
                    },
                    OtrNote::OurFingerprint {
                        account,
                        fingerprint,
                    },
                ],
                KeyGenState::Failed => vec![OtrNote::KeyGen {
                    account,
                    state: KeyGen::Failed,
                }],
            },
            OtrEvent::Waiting { peer, held, .. } => vec![OtrNote::Waiting {
                account,
                peer,
                held,
            }],
            OtrEvent::GoneSecure {
                peer,
                fingerprint,
                verified,
                ..
            } => vec![OtrNote::Secure {
                account,
                peer,
                fingerprint,
                verified,
            }],
            OtrEvent::StillSecure { .. } | OtrEvent::NewFingerprint { .. } => vec![],
            OtrEvent::GoneInsecure { peer, .. } => vec![OtrNote::Insecure { account, peer }],
            OtrEvent::SessionEnded { peer, .. } => vec![OtrNote::Ended { account, peer }],
            OtrEvent::Smp { peer, event, .. } => vec![OtrNote::Smp {
                account,
                peer,
                event,
            }],
            OtrEvent::Undelivered { peer, count, .. } => vec![OtrNote::Undelivered {
                account,
                peer,
                count,
            }],
            OtrEvent::Problem {
                peer, problem: p, ..
            } => vec![match p {
                Problem::Unencrypted(body) => OtrNote::Unencrypted {
                    account,
                    peer,
                    body,
                },
                other => problem(peer, problem_text(&other)),
            }],
        },
        ControlEvent::SendRefused { peer, error } => {
            vec![problem(peer, format!("Not sent: {error}"))]
        }
        ControlEvent::ReceiveRefused { peer, error } => {
            vec![problem(
                peer,
                format!("A message could not be read: {error}"),
            )]
        }
        // Key generation could not start or the OTR thread is gone: nothing
        // private can be sent from this account.
        ControlEvent::Failed(_) => vec![OtrNote::KeyGen {
            account,
            state: KeyGen::Failed,
        }],
    }
}

fn problem_text(p: &Problem) -> String {
    match p {
        Problem::NotInPrivate => {
            "An encrypted message arrived for a private conversation that is not running here; it could not be read."
                .into()
        }
        Problem::Unreadable => "An encrypted message could not be read.".into(),
        Problem::Malformed => "A malformed encrypted message was ignored.".into(),
        Problem::SetupFailed => "Setting up encryption failed.".into(),
        Problem::Reflected => "Our own encrypted message came back and was ignored.".into(),
        Problem::PeerError(t) => format!("The other side reported an encryption error: {t}"),
        Problem::Unrecognized => "An unrecognised encrypted message was ignored.".into(),
        Problem::ForOtherInstance => {
            "An encrypted message meant for another of your devices was ignored.".into()
        }
        Problem::EncryptionFailed => "Encrypting the message failed; it was not sent.".into(),
        Problem::Unencrypted(_) => "An unencrypted message arrived.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{validate, FormInput};
    use std::os::unix::fs::PermissionsExt;

    fn shared(profile: &Path) -> Shared {
        Shared {
            sink: Sink::new(|_| {}),
            profile: profile.to_owned(),
            network: None,
            tor: Mutex::new(None),
            tor_failures: AtomicU64::new(0),
            tofu_in_memory: std::sync::Mutex::new(HashMap::new()),
            update: Arc::new(crate::update::UpdateSetup {
                layout: None,
                channel: None,
                running: None,
            }),
            auto_update_check: AtomicBool::new(true),
            bridges: std::sync::Mutex::new(crate::backend::BridgeChoice::default()),
            update_checked: AtomicBool::new(false),
            update_running: AtomicBool::new(false),
        }
    }

    fn account(remember: bool) -> Account {
        validate(&FormInput {
            irc: false,
            server: "example.org".into(),
            port: String::new(),
            tls: 1,
            pin: String::new(),
            identity: "alice@example.org".into(),
            password_mode: 0,
            password: String::new(),
            remember,
            create: false,
        })
        .unwrap()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Bug 18.8: an account not remembered leaves no OTR key and no TOFU pin in the
    /// profile; a remembered one keeps them, owner-only.
    #[test]
    fn only_remembered_accounts_keep_otr_keys_and_tofu_pins_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let sh = shared(&profile);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        for remember in [false, true] {
            let id = AccountId(u32::from(remember) + 1);
            let acc = account(remember);
            let TlsPolicy::Tofu(store) = tls_policy(&sh, id, &acc).unwrap() else {
                panic!("TOFU account without a TOFU policy");
            };
            let (cmd_tx, _cmd_rx) = mpsc::channel(8);
            let (_ev_tx, ev_rx) = mpsc::channel(8);
            let handle = AccountHandle {
                id,
                protocol: timb_core::Protocol::Xmpp,
                commands: cmd_tx,
                events: ev_rx,
            };
            let fp = rt.block_on(async {
                let (_h, control) = wrap_otr(&profile, &acc, handle).unwrap();
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    if let Some(fp) = control.fingerprint().await {
                        break fp;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "no OTR key");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            });
            assert!(!fp.is_empty());
            let otr = profile.join("otr");
            if remember {
                assert!(store.path().starts_with(profile.join("tls")));
                assert_eq!(mode(&profile.join("tls")), 0o700);
                assert_eq!(mode(&otr), 0o700);
                let key = otr_dir(&profile, &otr_name(&acc))
                    .unwrap()
                    .join("otr.private_key");
                assert_eq!(mode(&key), 0o600);
            } else {
                assert_eq!(store.path(), Path::new(""));
                assert!(!otr.exists(), "OTR files for an account not remembered");
                assert!(
                    !profile.join("tls").exists(),
                    "TOFU file for an account not remembered"
                );
            }
        }
    }

    /// "Check now" in a copy that cannot update (no bundle folders, no channel) is answered
    /// at once, and Tor is not started for it.
    #[test]
    fn check_now_without_a_bundle_says_so_and_starts_no_tor() {
        use crate::backend::{UpdateProblem, UpdateStatus};
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Sink::new(move |e| {
            let _ = tx.send(e);
        });
        let dir = tempfile::tempdir().unwrap();
        let mut net = Net::new(sink, dir.path()).unwrap();
        net.request(Request::CheckUpdate);
        assert_eq!(
            rx.try_recv().unwrap(),
            UiEvent::Update(UpdateStatus::Failed(UpdateProblem::NotInPlace))
        );
        assert!(
            net.shared.tor.try_lock().unwrap().is_none(),
            "Tor was started"
        );
        assert!(rx.try_recv().is_err(), "more than one answer");
    }
}
