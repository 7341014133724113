//! From a connector to a running account: the stream from timb-tor's
//! [`Connector`] (the shape XMPP takes too), TLS through timb-tls unless the
//! account explicitly allows plain text to an onion service, and reconnecting
//! after a drop the way XMPP does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use timb_core::{
    AccountError, AccountHandle, AccountId, Command, ConnectionState, Event, Protocol,
};
use timb_tls::{ClientIdentity, ConnectOptions, PinSet, TlsPolicy};
use timb_tor::{boxed, BoxStream, Connector};
use tokio::sync::mpsc;

use crate::session::{run_once, IrcAuth, IrcConfig, IrcError};
use crate::transport::{choose_security, Security};

/// Where an IRC account connects and how it trusts the server.
#[derive(Debug, Clone)]
pub struct IrcServer {
    /// Host name as the user gave it: the TLS name, resolved by the Tor exit.
    pub host: String,
    pub port: u16,
    pub tls: TlsPolicy,
    /// Explicit opt-in to plain text; honoured only for `.onion` hosts.
    pub allow_plaintext: bool,
    /// Client certificate (CertFP, and the credential for SASL EXTERNAL).
    pub client_identity: Option<ClientIdentity>,
}

impl IrcServer {
    /// OFTC, Tor Messenger's recommended network, pinned to the bundled SPI
    /// trust anchor so it works without certificate warnings.
    pub fn oftc() -> Option<IrcServer> {
        Some(IrcServer {
            host: "irc.oftc.net".into(),
            port: 6697,
            tls: TlsPolicy::Pinned(PinSet::bundled("oftc")?),
            allow_plaintext: false,
            client_identity: None,
        })
    }
}

/// How long opening the stream and the TLS handshake may take together.
const OPEN_TIMEOUT: Duration = Duration::from_secs(120);
/// Commands kept while (re)connecting; beyond this they are refused.
const MAX_DEFERRED: usize = 64;

/// Starts the account task, as XMPP's `spawn_account` does: it waits for
/// [`Command::Connect`], opens the stream through `connector`, secures it as
/// `server` requires and runs the session. A connection that drops after
/// registration is re-established with `config.reconnect`'s backoff (and the
/// channels joined again) while the failures are transient; the first
/// connect is never retried, and nothing is after the user's Disconnect.
pub fn spawn_account(
    id: AccountId,
    server: IrcServer,
    config: IrcConfig,
    connector: Arc<dyn Connector>,
) -> AccountHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    tokio::spawn(account_task(server, config, connector, cmd_rx, ev_tx));
    AccountHandle {
        id,
        protocol: Protocol::Irc,
        commands: cmd_tx,
        events: ev_rx,
    }
}

/// What waiting for something (a pause, a connect) ended in.
enum Waited<T> {
    Done(T),
    /// The user pressed Disconnect.
    Disconnected,
    /// The handle was dropped: the task ends.
    Dropped,
}

/// Runs `fut` while obeying Disconnect; other commands are kept for later.
async fn cancellable<T>(
    fut: impl std::future::Future<Output = T>,
    commands: &mut mpsc::Receiver<Command>,
    deferred: &mut VecDeque<Command>,
    events: &mpsc::Sender<Event>,
) -> Waited<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return Waited::Done(r),
            c = commands.recv() => match c {
                None => return Waited::Dropped,
                Some(Command::Disconnect) => return Waited::Disconnected,
                Some(Command::Connect) => {}
                Some(c) if deferred.len() < MAX_DEFERRED => deferred.push_back(c),
                Some(_) => {
                    let e = AccountError::Notice(timb_core::Notice::TooManyWaiting);
                    let _ = events.send(Event::Error(e)).await;
                }
            },
        }
    }
}

/// Opens the stream and secures it: TLS under the account's policy, or plain
/// text to an onion service the account explicitly allowed.
async fn open(
    server: &IrcServer,
    config: &IrcConfig,
    connector: &dyn Connector,
) -> Result<(BoxStream, Option<String>), IrcError> {
    let security =
        choose_security(&server.host, server.allow_plaintext).map_err(IrcError::Local)?;
    if config.auth == IrcAuth::External
        && (security != Security::Tls || server.client_identity.is_none())
    {
        return Err(IrcError::Local(
            "SASL EXTERNAL needs TLS with a client certificate".into(),
        ));
    }
    let stream = connector
        .connect(server.host.clone(), server.port)
        .await
        .map_err(IrcError::Connect)?;
    match security {
        Security::PlainOnion => Ok((stream, None)),
        Security::Tls => {
            let options = ConnectOptions {
                port: Some(server.port),
                client_identity: server.client_identity.clone(),
                alpn: Vec::new(),
            };
            let tls = timb_tls::connect_with(stream, &server.host, &server.tls, &options).await?;
            let spki = timb_tls::peer_spki_sha256(&tls);
            Ok((boxed(tls), spki))
        }
    }
}

async fn account_task(
    server: IrcServer,
    config: IrcConfig,
    connector: Arc<dyn Connector>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) {
    let send = |e: Event| {
        let events = events.clone();
        async move { events.send(e).await.is_ok() }
    };
    loop {
        // Idle: nothing happens until the user connects.
        match commands.recv().await {
            None => return,
            Some(Command::Connect) => {}
            Some(Command::Disconnect) => continue,
            Some(_) => {
                if !send(Event::Error(AccountError::Notice(
                    timb_core::Notice::NotConnected,
                )))
                .await
                {
                    return;
                }
                continue;
            }
        }
        if !send(Event::State(ConnectionState::Connecting)).await {
            return;
        }
        let mut deferred = VecDeque::new();
        let mut rejoin: Vec<String> = Vec::new();
        // Reconnect attempts since the last registered session; `None` while
        // the first connection is being made (that one is never retried).
        let mut retry: Option<u32> = None;
        let failure = loop {
            if let Some(n) = retry {
                if n >= config.reconnect.attempts {
                    break None;
                }
                let pause = tokio::time::sleep(config.reconnect.delay(n));
                match cancellable(pause, &mut commands, &mut deferred, &events).await {
                    Waited::Done(()) => {}
                    Waited::Disconnected => break Some(Ok(())),
                    Waited::Dropped => return,
                }
                retry = Some(n + 1);
            }
            let opening = tokio::time::timeout(OPEN_TIMEOUT, open(&server, &config, &*connector));
            let opened = match cancellable(opening, &mut commands, &mut deferred, &events).await {
                Waited::Done(Ok(r)) => r,
                Waited::Done(Err(_)) => Err(IrcError::Timeout("connecting took too long")),
                Waited::Disconnected => break Some(Ok(())),
                Waited::Dropped => return,
            };
            let (stream, spki) = match opened {
                Ok(v) => v,
                Err(e) if retry.is_some() && e.is_transient() => continue,
                Err(e) => break Some(Err(e)),
            };
            let mut cfg = config.clone();
            cfg.spki_sha256 = spki;
            let mut early: VecDeque<Command> = rejoin
                .iter()
                .map(|room| Command::JoinGroup {
                    room: room.clone(),
                    nick: None,
                })
                .collect();
            early.extend(deferred.drain(..));
            let ended = run_once(stream, cfg, &mut commands, &events, early).await;
            if ended.registered {
                rejoin = ended.channels;
            }
            match ended.result {
                // The user quit, or the handle is gone.
                Ok(()) => break Some(Ok(())),
                Err(e) if e.is_transient() && config.reconnect.attempts > 0 => {
                    if ended.registered {
                        // A drop: count attempts afresh from here.
                        retry = Some(0);
                        if !send(Event::State(ConnectionState::Reconnecting)).await {
                            return;
                        }
                    } else if retry.is_none() {
                        // The first connection never registered: start-up failed.
                        break Some(Err(e));
                    }
                    // Else a reconnect attempt failed before registering: the next one.
                }
                Err(e) => break Some(Err(e)),
            }
        };
        match failure {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                let _ = send(Event::Error(AccountError::from(&e))).await;
            }
            None => {
                let e = AccountError::Transport(
                    "the connection dropped and reconnecting failed".into(),
                );
                let _ = send(Event::Error(e)).await;
            }
        }
        let lost = deferred
            .iter()
            .filter(|c| matches!(c, Command::Send { .. }))
            .count();
        if lost > 0 {
            let e = AccountError::Notice(timb_core::Notice::NotSent(lost));
            let _ = send(Event::Error(e)).await;
        }
        if !send(Event::State(ConnectionState::Disconnected)).await || commands.is_closed() {
            return;
        }
    }
}
