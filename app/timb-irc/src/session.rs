//! One IRC connection as a task speaking timb-core's [`Command`]/[`Event`].
//!
//! The task owns the stream, so the stream can be anything the transport
//! gives us (arti's `DataStream` wrapped in TLS, or a plain onion stream).
//! Nothing here writes to disk or logs; message bodies exist only in memory
//! on their way to the GUI.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use irc_proto::{Command as Irc, Message, Prefix, Response};
use timb_core::{
    AccountError, AccountHandle, AccountId, Command, ConnectionState, Event, MessageKind, Presence,
    Protocol, Target,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use crate::ctcp::{CtcpPolicy, Incoming, TokenBucket};
use crate::format::strip_formatting;
use crate::line::{Line, LineReader};
use crate::sasl;
use crate::split::{body_budget, outgoing_lines, valid_target, IRC_LINE_LIMIT};

/// How the account proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum IrcAuth {
    None,
    /// SASL PLAIN when the server offers it. Otherwise, only if
    /// `nickserv_fallback` is set, `IDENTIFY` to NickServ after registration:
    /// on a network without services anyone could hold that nick, so sending
    /// it a password is opt-in.
    Password {
        account: String,
        password: String,
        nickserv_fallback: bool,
    },
    /// SASL EXTERNAL: the TLS client certificate is the credential.
    External,
}

impl std::fmt::Debug for IrcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IrcAuth::None => f.write_str("None"),
            IrcAuth::Password { account, .. } => write!(f, "Password({account}, <redacted>)"),
            IrcAuth::External => f.write_str("External"),
        }
    }
}

/// Everything a session needs besides the stream.
#[derive(Debug, Clone)]
pub struct IrcConfig {
    pub nick: String,
    /// Sent in USER. A constant by default so it never leaks the local login.
    pub username: String,
    pub realname: String,
    pub auth: IrcAuth,
    /// The TLS layer's view of the server key, shown in the Connected state.
    pub spki_sha256: Option<String>,
    /// Send PING after this long without hearing from the server.
    pub ping_interval: Duration,
    /// Give up after this long without hearing from the server.
    pub ping_timeout: Duration,
    /// Registration (CAP, SASL, NICK) must finish within this.
    pub register_timeout: Duration,
    /// Our own flood control: this many lines at once, then one per
    /// `send_interval`, so long pastes do not get us killed for excess flood.
    pub send_burst: u32,
    pub send_interval: Duration,
    /// How a connection that dropped after registration is re-established
    /// by [`crate::spawn_account`] (the same policy as XMPP's).
    pub reconnect: timb_core::Backoff,
}

impl IrcConfig {
    pub fn new(nick: impl Into<String>) -> Self {
        IrcConfig {
            nick: nick.into(),
            username: "timb".into(),
            realname: "timb".into(),
            auth: IrcAuth::None,
            spki_sha256: None,
            ping_interval: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(240),
            // Tor circuits plus SASL round trips can be slow.
            register_timeout: Duration::from_secs(90),
            send_burst: 5,
            send_interval: Duration::from_millis(1000),
            reconnect: timb_core::Backoff::DEFAULT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IrcError {
    /// The connector could not open the stream; the kind decides retrying.
    #[error("could not reach the server: {0}")]
    Connect(timb_core::ConnectError),
    #[error(transparent)]
    Tls(#[from] timb_tls::TlsError),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended after registration without the server saying why:
    /// a dropped circuit, not a decision of the server.
    #[error("the connection dropped")]
    Dropped,
    #[error("the server closed the connection during registration")]
    ClosedDuringRegistration,
    #[error("the server closed the connection: {0}")]
    Closed(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("no nickname was accepted (tried {0})")]
    NickUnavailable(usize),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Refused(String),
    #[error("that nickname cannot be used")]
    InvalidNick,
    /// This account's settings cannot be used as they are (nothing was sent).
    #[error("{0}")]
    Local(String),
}

impl IrcError {
    /// Whether reconnecting can help: the path failed (a transient connect
    /// kind, a dropped or silent stream), not the server or the settings. A
    /// server's `ERROR` line is its decision, so it is shown, not retried.
    pub fn is_transient(&self) -> bool {
        match self {
            IrcError::Connect(c) => c.is_transient(),
            IrcError::Tls(t) => matches!(t, timb_tls::TlsError::Io(_)),
            IrcError::Io(_)
            | IrcError::Dropped
            | IrcError::ClosedDuringRegistration
            | IrcError::Timeout(_) => true,
            IrcError::Closed(_)
            | IrcError::Auth(_)
            | IrcError::NickUnavailable(_)
            | IrcError::InvalidNick
            | IrcError::Local(_)
            | IrcError::Refused(_) => false,
        }
    }
}

impl From<&IrcError> for AccountError {
    fn from(e: &IrcError) -> Self {
        match e {
            IrcError::Connect(c) => AccountError::Connect(*c),
            IrcError::Tls(t) => match timb_tor::certificate_problem(t) {
                Some(p) => AccountError::Certificate(p),
                None => AccountError::Transport(t.to_string()),
            },
            IrcError::Dropped => AccountError::Transport(e.to_string()),
            IrcError::Io(e) => AccountError::Transport(e.to_string()),
            IrcError::ClosedDuringRegistration => AccountError::Closed(e.to_string()),
            IrcError::Closed(m) => AccountError::Closed(m.clone()),
            IrcError::Auth(m) => AccountError::Auth(m.clone()),
            IrcError::NickUnavailable(_) => {
                AccountError::Notice(timb_core::Notice::NickUnavailable)
            }
            IrcError::InvalidNick => AccountError::Notice(timb_core::Notice::InvalidNick),
            IrcError::Refused(m) => AccountError::Refused(m.clone()),
            IrcError::Local(m) => AccountError::Local(m.clone()),
            IrcError::Timeout(_) => AccountError::Transport(e.to_string()),
        }
    }
}

/// Lines waiting for our flood control; beyond this, sends are refused.
const MAX_QUEUED_LINES: usize = 2000;
/// Commands the GUI sends before registration completes are kept, this many.
const MAX_EARLY_COMMANDS: usize = 64;
const MAX_CHANNELS: usize = 200;
/// Member lists are capped per channel and in total, so a server inventing
/// members cannot grow our memory without limit.
const MAX_MEMBERS: usize = 20_000;
const MAX_TOTAL_MEMBERS: usize = 100_000;
const MAX_NICK_BYTES: usize = 64;
const MAX_CAPS_BYTES: usize = 16 * 1024;
const NICK_ATTEMPTS: usize = 10;
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// After QUIT, how long we wait for the server to close before we do.
const QUIT_GRACE: Duration = Duration::from_secs(5);
/// Longest we keep draining queued lines before QUIT.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Starts one session on `stream` (already through Tor and TLS) as a task and
/// returns the GUI's handle to it; it ends with the stream. The app uses
/// [`crate::spawn_account`], which opens (and reopens) streams itself; this
/// is for a stream the caller already has (tests, benchmarks).
pub fn spawn<S>(id: AccountId, stream: S, config: IrcConfig) -> AccountHandle
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let _ = run(stream, config, cmd_rx, ev_tx).await;
    });
    AccountHandle {
        id,
        protocol: Protocol::Irc,
        commands: cmd_tx,
        events: ev_rx,
    }
}

/// Runs a session to the end. Emits `State(Connecting)` first and
/// `State(Disconnected)` last, with an `Error` event before it on failure.
pub async fn run<S>(
    stream: S,
    config: IrcConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) -> Result<(), IrcError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = events.send(Event::State(ConnectionState::Connecting)).await;
    let mut commands = commands;
    let result = run_once(stream, config, &mut commands, &events, VecDeque::new())
        .await
        .result;
    if let Err(e) = &result {
        let _ = events.send(Event::Error(AccountError::from(e))).await;
    }
    let _ = events
        .send(Event::State(ConnectionState::Disconnected))
        .await;
    result
}

/// How one connection ended, and what a reconnect needs from it.
pub(crate) struct Ended {
    pub result: Result<(), IrcError>,
    /// Registration finished: the server had accepted us.
    pub registered: bool,
    /// Channels we were in, to join again after a reconnect.
    pub channels: Vec<String>,
}

/// One connection on `stream`, without the Connecting/Disconnected events
/// (the caller owns the account's state). `early` are commands to carry out
/// once registered, in order.
pub(crate) async fn run_once<S>(
    stream: S,
    config: IrcConfig,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    early: VecDeque<Command>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let mut sess = Session::new(w, config, events.clone());
    sess.early = early;
    let result = sess.run(LineReader::new(BufReader::new(r)), commands).await;
    // Bounded: a stalled circuit must not keep the task alive.
    let _ = timeout(Duration::from_secs(2), sess.w.shutdown()).await;
    let mut channels: Vec<String> = sess.channels.values().map(|c| c.name.clone()).collect();
    channels.sort();
    Ended {
        result,
        registered: sess.registered,
        channels,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sasl {
    NotWanted,
    /// Waiting for the CAP LS list.
    Wanted,
    Requested,
    Authenticating,
    Done,
}

struct Channel {
    name: String,
    /// Folded nick → nick as the server spells it.
    members: HashMap<String, String>,
}

struct Session<W> {
    w: WriteHalf<W>,
    cfg: IrcConfig,
    events: mpsc::Sender<Event>,
    nick: String,
    nick_attempts: usize,
    registered: bool,
    cap_ls: String,
    cap_done: bool,
    sasl: Sasl,
    ctcp: CtcpPolicy,
    channels: HashMap<String, Channel>,
    /// NAMES replies being collected, by folded channel name.
    names: HashMap<String, Vec<String>>,
    out: VecDeque<String>,
    pacer: TokenBucket,
    early: VecDeque<Command>,
    last_rx: Instant,
    ping_outstanding: bool,
    /// Set once the user asked to leave: drain `out`, then QUIT.
    quit_at: Option<Instant>,
    quit_sent: bool,
}

enum Flow {
    Continue,
    Done,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(w: WriteHalf<S>, cfg: IrcConfig, events: mpsc::Sender<Event>) -> Self {
        let now = Instant::now();
        let sasl = match cfg.auth {
            IrcAuth::None => Sasl::NotWanted,
            _ => Sasl::Wanted,
        };
        Session {
            w,
            nick: cfg.nick.clone(),
            pacer: TokenBucket::new(cfg.send_burst.max(1), cfg.send_interval, now.into_std()),
            cfg,
            events,
            nick_attempts: 0,
            registered: false,
            cap_ls: String::new(),
            cap_done: false,
            sasl,
            ctcp: CtcpPolicy::new(now.into_std()),
            channels: HashMap::new(),
            names: HashMap::new(),
            out: VecDeque::new(),
            early: VecDeque::new(),
            last_rx: now,
            ping_outstanding: false,
            quit_at: None,
            quit_sent: false,
        }
    }

    async fn run<R: tokio::io::AsyncBufRead + Unpin>(
        &mut self,
        mut reader: LineReader<R>,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Result<(), IrcError> {
        if !valid_target(&self.nick) || self.nick.starts_with('#') {
            return Err(IrcError::InvalidNick);
        }
        let register_deadline = Instant::now() + self.cfg.register_timeout;
        self.send_now(Irc::CAP(
            None,
            irc_proto::CapSubCommand::LS,
            None,
            Some("302".into()),
        ))
        .await?;
        self.send_now(Irc::NICK(self.nick.clone())).await?;
        let (u, r) = (self.cfg.username.clone(), self.cfg.realname.clone());
        self.send_now(Irc::USER(u, "0".into(), r)).await?;
        let mut commands_open = true;
        loop {
            let keepalive = self.last_rx
                + if self.ping_outstanding {
                    self.cfg.ping_timeout
                } else {
                    self.cfg.ping_interval
                };
            let pace_at = Instant::from_std(self.pacer.ready_at());
            let has_out = !self.out.is_empty();
            let quit_at = self.quit_at;
            // Unbiased: a server that never stops sending must not starve
            // the GUI's commands, keep-alive or our own pacing.
            tokio::select! {
                line = reader.next_line() => {
                    let line = line?;
                    self.last_rx = Instant::now();
                    self.ping_outstanding = false;
                    match line {
                        None => {
                            return if self.quit_sent {
                                Ok(())
                            } else if self.registered {
                                Err(IrcError::Dropped)
                            } else {
                                Err(IrcError::ClosedDuringRegistration)
                            };
                        }
                        Some(Line::TooLong) => {}
                        Some(Line::Text(t)) => {
                            if let Flow::Done = self.handle_line(&t).await? {
                                return Ok(());
                            }
                        }
                    }
                }
                _ = sleep_until(register_deadline), if !self.registered => {
                    return Err(IrcError::Timeout("registration did not finish"));
                }
                _ = sleep_until(keepalive) => {
                    if self.ping_outstanding {
                        return Err(IrcError::Timeout("the server stopped answering"));
                    }
                    self.ping_outstanding = true;
                    self.send_now(Irc::PING("timb".into(), None)).await?;
                }
                // A token is due: the drain after this select writes what it allows.
                _ = sleep_until(pace_at), if has_out && !self.quit_sent => {}
                _ = sleep_until(quit_at.map_or(register_deadline, |q| q)), if quit_at.is_some() => {
                    if self.quit_sent {
                        return Ok(());
                    }
                    self.send_quit().await?;
                }
                cmd = commands.recv(), if commands_open && self.quit_at.is_none() => {
                    match cmd {
                        Some(c) => self.handle_command(c).await?,
                        None => {
                            commands_open = false;
                            self.begin_quit();
                        }
                    }
                }
            }
            // Lines the pacer allows go out here, after whatever woke the loop: left to
            // the timer branch alone, each waited for the next timer tick and loop turn
            // (about 1 ms on loopback, measured in `cargo xtask bench irc`).
            while !self.quit_sent
                && !self.out.is_empty()
                && self.pacer.take(Instant::now().into_std())
            {
                if let Some(l) = self.out.pop_front() {
                    self.write_raw(&l).await?;
                }
            }
            if self.quit_at.is_some() && !self.quit_sent && self.out.is_empty() {
                self.send_quit().await?;
            }
        }
    }

    fn begin_quit(&mut self) {
        if self.quit_at.is_none() {
            self.quit_at = Some(Instant::now() + DRAIN_LIMIT);
        }
    }

    /// QUIT with an empty message: a quit message would be one more thing
    /// sent on the user's behalf that they did not write.
    async fn send_quit(&mut self) -> Result<(), IrcError> {
        self.out.clear();
        self.send_now(Irc::QUIT(Some(String::new()))).await?;
        self.quit_sent = true;
        self.quit_at = Some(Instant::now() + QUIT_GRACE);
        Ok(())
    }

    async fn emit(&mut self, e: Event) {
        // A closed receiver means the GUI dropped the account; the command
        // side will close too and end the session.
        let _ = self.events.send(e).await;
    }

    /// Protocol lines (registration, PONG, QUIT) skip the pacer.
    async fn send_now(&mut self, cmd: Irc) -> Result<(), IrcError> {
        if let Some(l) = wire(cmd) {
            self.write_raw(&l).await?;
        }
        Ok(())
    }

    /// User lines and CTCP replies wait for the pacer. Callers check room
    /// first where dropping would matter; a CTCP reply is just not sent.
    async fn enqueue(&mut self, cmd: Irc) {
        if self.out.len() >= MAX_QUEUED_LINES {
            return;
        }
        if let Some(l) = wire(cmd) {
            self.out.push_back(l);
        }
    }

    async fn write_raw(&mut self, line: &str) -> Result<(), IrcError> {
        match timeout(WRITE_TIMEOUT, async {
            self.w.write_all(line.as_bytes()).await?;
            self.w.flush().await
        })
        .await
        {
            Ok(r) => Ok(r?),
            Err(_) => Err(IrcError::Timeout("the server stopped reading")),
        }
    }

    async fn handle_line(&mut self, text: &str) -> Result<Flow, IrcError> {
        let Some(msg) = parse_message(text) else {
            return Ok(Flow::Continue);
        };
        let source = match &msg.prefix {
            Some(Prefix::Nickname(n, _, _)) => Some(n.clone()),
            _ => None,
        };
        match msg.command {
            Irc::PING(token, _) => self.send_now(Irc::PONG(token, None)).await?,
            Irc::PONG(..) => {}
            Irc::ERROR(m) => {
                if self.quit_sent {
                    return Ok(Flow::Done);
                }
                return Err(IrcError::Closed(strip_formatting(&m)));
            }
            Irc::CAP(_, sub, a, b) => self.handle_cap(sub, a, b).await?,
            Irc::AUTHENTICATE(data) => self.handle_authenticate(&data).await?,
            Irc::Response(resp, args) => self.handle_numeric(resp, args).await?,
            // Only people's messages are shown: text from the server itself
            // (connection notices, MOTD-like chatter) is not a person, and
            // showing it made a "contact" named after the server. Failures the
            // user must see arrive as numerics and ERROR, handled above.
            Irc::PRIVMSG(target, body) => self.handle_privmsg(source, &target, &body, false).await,
            Irc::NOTICE(target, body) => self.handle_privmsg(source, &target, &body, true).await,
            Irc::JOIN(chans, _, _) => {
                if let Some(n) = source {
                    for c in chans.split(',') {
                        self.on_join(c, &n).await;
                    }
                    if !self.is_me(&n) {
                        self.presence(&n, Presence::Available).await;
                    }
                }
            }
            Irc::PART(chans, _) => {
                if let Some(n) = source {
                    for c in chans.split(',') {
                        self.on_part(c, &n).await;
                    }
                }
            }
            Irc::KICK(chans, victims, _) => {
                for (c, n) in chans.split(',').zip(victims.split(',')) {
                    self.on_part(c, n).await;
                }
            }
            Irc::QUIT(_) => {
                if let Some(n) = source {
                    self.on_quit(&n).await;
                }
            }
            Irc::NICK(new) => {
                if let Some(old) = source {
                    self.on_nick(&old, &new).await;
                }
            }
            Irc::TOPIC(chan, Some(topic)) if self.registered => {
                self.emit(Event::Topic {
                    room: chan,
                    topic: strip_formatting(&topic),
                })
                .await
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    async fn handle_cap(
        &mut self,
        sub: irc_proto::CapSubCommand,
        a: Option<String>,
        b: Option<String>,
    ) -> Result<(), IrcError> {
        use irc_proto::CapSubCommand as C;
        // "CAP * LS * :caps" continues; "CAP * LS :caps" ends.
        let (more, caps) = match (a, b) {
            (Some(m), Some(c)) => (m == "*", c),
            (Some(c), None) => (false, c),
            _ => (false, String::new()),
        };
        match sub {
            C::LS if !self.cap_done => {
                if self.cap_ls.len() + caps.len() < MAX_CAPS_BYTES {
                    self.cap_ls.push(' ');
                    self.cap_ls.push_str(&caps);
                }
                if !more {
                    self.caps_listed().await?;
                }
            }
            C::ACK
                if self.sasl == Sasl::Requested
                    && caps
                        .split_whitespace()
                        .any(|c| c.eq_ignore_ascii_case("sasl")) =>
            {
                self.sasl = Sasl::Authenticating;
                let mech = self.mechanism();
                self.send_now(Irc::AUTHENTICATE(mech.into())).await?;
            }
            C::NAK if self.sasl == Sasl::Requested => {
                self.sasl = Sasl::NotWanted;
                self.no_sasl().await?;
            }
            _ => {}
        }
        Ok(())
    }

    fn mechanism(&self) -> &'static str {
        match self.cfg.auth {
            IrcAuth::External => "EXTERNAL",
            _ => "PLAIN",
        }
    }

    /// The complete CAP LS list is in: ask for SASL or finish negotiation.
    async fn caps_listed(&mut self) -> Result<(), IrcError> {
        let mech = self.mechanism();
        let offered = self.cap_ls.split_whitespace().any(|c| {
            let (name, value) = c.split_once('=').unwrap_or((c, ""));
            name.eq_ignore_ascii_case("sasl")
                && (value.is_empty() || value.split(',').any(|m| m.eq_ignore_ascii_case(mech)))
        });
        self.cap_ls = String::new();
        if self.sasl == Sasl::Wanted && offered {
            self.sasl = Sasl::Requested;
            return self
                .send_now(Irc::CAP(
                    None,
                    irc_proto::CapSubCommand::REQ,
                    None,
                    Some("sasl".into()),
                ))
                .await;
        }
        if self.sasl == Sasl::Wanted {
            self.sasl = Sasl::NotWanted;
            return self.no_sasl().await;
        }
        self.cap_end().await
    }

    /// SASL was wanted but is not available.
    async fn no_sasl(&mut self) -> Result<(), IrcError> {
        match &self.cfg.auth {
            IrcAuth::Password {
                nickserv_fallback: true,
                ..
            }
            | IrcAuth::None => self.cap_end().await,
            IrcAuth::Password { .. } => Err(IrcError::Auth(
                "the server does not offer SASL PLAIN and NickServ fallback is off".into(),
            )),
            IrcAuth::External => Err(IrcError::Auth(
                "the server does not offer SASL EXTERNAL".into(),
            )),
        }
    }

    async fn cap_end(&mut self) -> Result<(), IrcError> {
        if !self.cap_done {
            self.cap_done = true;
            self.send_now(Irc::CAP(None, irc_proto::CapSubCommand::END, None, None))
                .await?;
        }
        Ok(())
    }

    async fn handle_authenticate(&mut self, data: &str) -> Result<(), IrcError> {
        if self.sasl != Sasl::Authenticating || data != "+" {
            return Ok(());
        }
        let payload = match &self.cfg.auth {
            IrcAuth::Password {
                account, password, ..
            } => sasl::plain_payload(account, password),
            _ => Vec::new(),
        };
        for chunk in sasl::authenticate_chunks(&payload) {
            self.send_now(Irc::AUTHENTICATE(chunk)).await?;
        }
        Ok(())
    }

    async fn handle_numeric(&mut self, resp: Response, args: Vec<String>) -> Result<(), IrcError> {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        match resp {
            Response::RPL_WELCOME => {
                let sasl_required = matches!(
                    self.cfg.auth,
                    IrcAuth::External
                        | IrcAuth::Password {
                            nickserv_fallback: false,
                            ..
                        }
                );
                if sasl_required && self.sasl != Sasl::Done {
                    // E.g. a server that ignored CAP: never go on unauthenticated.
                    return Err(IrcError::Auth(
                        "the server registered us without SASL authentication".into(),
                    ));
                }
                self.registered = true;
                if !arg(0).is_empty() {
                    self.nick = arg(0).to_owned();
                }
                if let IrcAuth::Password {
                    account,
                    password,
                    nickserv_fallback: true,
                } = &self.cfg.auth
                {
                    if self.sasl != Sasl::Done {
                        let body = format!("IDENTIFY {account} {password}");
                        self.send_now(Irc::PRIVMSG("NickServ".into(), body)).await?;
                    }
                }
                self.emit(Event::State(ConnectionState::Connected {
                    spki_sha256: self.cfg.spki_sha256.clone(),
                }))
                .await;
                while let Some(c) = self.early.pop_front() {
                    self.handle_command(c).await?;
                }
            }
            Response::RPL_SASLSUCCESS if self.sasl == Sasl::Authenticating => {
                self.sasl = Sasl::Done;
                self.cap_end().await?;
            }
            Response::ERR_SASLFAIL
            | Response::ERR_SASLTOOLONG
            | Response::ERR_SASLABORT
            | Response::ERR_NICKLOCKED
                if self.sasl == Sasl::Authenticating =>
            {
                return Err(IrcError::Auth(format!(
                    "the server refused SASL {}",
                    self.mechanism()
                )));
            }
            Response::ERR_NICKNAMEINUSE
            | Response::ERR_ERRONEOUSNICKNAME
            | Response::ERR_NICKCOLLISION
            | Response::ERR_UNAVAILRESOURCE
                if !self.registered =>
            {
                self.nick_attempts += 1;
                if self.nick_attempts > NICK_ATTEMPTS {
                    return Err(IrcError::NickUnavailable(self.nick_attempts));
                }
                self.nick = alternative_nick(&self.cfg.nick, self.nick_attempts);
                self.send_now(Irc::NICK(self.nick.clone())).await?;
            }
            Response::ERR_UNKNOWNCOMMAND if arg(1).eq_ignore_ascii_case("CAP") => {
                // A server without CAP registers us on NICK/USER alone.
                self.cap_done = true;
                if self.sasl == Sasl::Wanted {
                    self.sasl = Sasl::NotWanted;
                    self.no_sasl().await?;
                }
            }
            Response::RPL_TOPIC => {
                self.emit(Event::Topic {
                    room: arg(1).to_owned(),
                    topic: strip_formatting(arg(2)),
                })
                .await
            }
            Response::RPL_NAMREPLY => {
                let key = fold(arg(2));
                if !self.channels.contains_key(&key) {
                    return Ok(());
                }
                let held = self.members_total();
                let list = self.names.entry(key).or_default();
                let start = list.len();
                for n in arg(3).split_whitespace() {
                    if list.len() >= MAX_MEMBERS || held + list.len() - start >= MAX_TOTAL_MEMBERS {
                        break;
                    }
                    let n = n.trim_start_matches(['@', '+', '%', '~', '&', '!']);
                    if !n.is_empty() && n.len() <= MAX_NICK_BYTES {
                        list.push(n.to_owned());
                    }
                }
            }
            Response::RPL_ENDOFNAMES => {
                let key = fold(arg(1));
                let members = self.names.remove(&key).unwrap_or_default();
                if let Some(ch) = self.channels.get_mut(&key) {
                    ch.members = members.iter().map(|n| (fold(n), n.clone())).collect();
                    let room = ch.name.clone();
                    self.emit(Event::GroupMembers { room, members }).await;
                }
            }
            Response::ERR_NOSUCHNICK
            | Response::ERR_NOSUCHCHANNEL
            | Response::ERR_CANNOTSENDTOCHAN
            | Response::ERR_TOOMANYCHANNELS
            | Response::ERR_CHANNELISFULL
            | Response::ERR_INVITEONLYCHAN
            | Response::ERR_BANNEDFROMCHAN
            | Response::ERR_BADCHANNELKEY
            | Response::ERR_NOCHANMODES
            | Response::ERR_NOTONCHANNEL
                if self.registered =>
            {
                let text = args.last().map(String::as_str).unwrap_or("");
                self.emit(Event::Error(AccountError::Refused(format!(
                    "{}: {}",
                    strip_formatting(arg(1)),
                    strip_formatting(text)
                ))))
                .await
            }
            Response::ERR_PASSWDMISMATCH | Response::ERR_YOUREBANNEDCREEP => {
                let text = args.last().map(String::as_str).unwrap_or("");
                return Err(IrcError::Refused(strip_formatting(text)));
            }
            _ => {}
        }
        Ok(())
    }

    async fn handle_privmsg(
        &mut self,
        from: Option<String>,
        target: &str,
        body: &str,
        is_notice: bool,
    ) {
        // The server itself, or before registration: nothing to show.
        let Some(from) = from else { return };
        if !self.registered {
            return;
        }
        let to_channel = is_channel(target);
        let decision = self.ctcp.incoming(
            body,
            is_notice,
            to_channel,
            Instant::now().into_std(),
            SystemTime::now(),
        );
        let (text, kind) = match decision {
            Incoming::Text if is_notice => (strip_formatting(body), MessageKind::Notice),
            Incoming::Text => (strip_formatting(body), MessageKind::Normal),
            Incoming::Action(t) => (strip_formatting(&t), MessageKind::Action),
            Incoming::Reply(r) => {
                // (A NOTICE never gets here: CTCP in one is never answered.)
                if valid_target(&from) {
                    self.enqueue(Irc::NOTICE(from, r)).await;
                }
                return;
            }
            Incoming::Ignore => return,
        };
        if text.is_empty() {
            return;
        }
        let (from, sender) = if to_channel {
            (Target::Group(target.to_owned()), Some(from))
        } else {
            (Target::Direct(from), None)
        };
        self.emit(Event::Message {
            from,
            sender,
            body: text,
            kind,
            received_at: timb_core::unix_now(),
        })
        .await;
    }

    /// Members held across channels and pending NAMES replies.
    fn members_total(&self) -> usize {
        self.channels
            .values()
            .map(|c| c.members.len())
            .sum::<usize>()
            + self.names.values().map(Vec::len).sum::<usize>()
    }

    fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.nick)
    }

    async fn on_join(&mut self, chan: &str, nick: &str) {
        let key = fold(chan);
        if self.is_me(nick) {
            if self.channels.len() >= MAX_CHANNELS && !self.channels.contains_key(&key) {
                return;
            }
            self.channels.insert(
                key,
                Channel {
                    name: chan.to_owned(),
                    members: HashMap::new(),
                },
            );
            self.emit(Event::GroupJoined {
                room: chan.to_owned(),
                nick: nick.to_owned(),
            })
            .await;
        } else {
            let total = self.members_total();
            let Some(ch) = self.channels.get_mut(&key) else {
                return;
            };
            if ch.members.len() < MAX_MEMBERS
                && total < MAX_TOTAL_MEMBERS
                && nick.len() <= MAX_NICK_BYTES
            {
                ch.members.insert(fold(nick), nick.to_owned());
            }
            let room = ch.name.clone();
            self.emit(Event::MemberJoined {
                room,
                nick: nick.to_owned(),
            })
            .await;
        }
    }

    async fn on_part(&mut self, chan: &str, nick: &str) {
        let key = fold(chan);
        if self.is_me(nick) {
            if let Some(ch) = self.channels.remove(&key) {
                self.emit(Event::GroupLeft { room: ch.name }).await;
            }
        } else if let Some(ch) = self.channels.get_mut(&key) {
            if ch.members.remove(&fold(nick)).is_some() {
                let room = ch.name.clone();
                self.emit(Event::MemberLeft {
                    room,
                    nick: nick.to_owned(),
                })
                .await;
            }
        }
    }

    /// IRC has no presence; a nick is known gone when it quits or changes
    /// name, and back when it joins or speaks, so a query with it shows that.
    async fn presence(&mut self, nick: &str, presence: Presence) {
        self.emit(Event::Presence {
            contact: nick.to_owned(),
            presence,
        })
        .await;
    }

    async fn on_quit(&mut self, nick: &str) {
        self.presence(nick, Presence::Offline).await;
        let f = fold(nick);
        let mut left = Vec::new();
        for ch in self.channels.values_mut() {
            if ch.members.remove(&f).is_some() {
                left.push(ch.name.clone());
            }
        }
        for room in left {
            self.emit(Event::MemberLeft {
                room,
                nick: nick.to_owned(),
            })
            .await;
        }
    }

    async fn on_nick(&mut self, old: &str, new: &str) {
        if self.is_me(old) {
            self.nick = new.to_owned();
            return;
        }
        self.presence(old, Presence::Offline).await;
        self.presence(new, Presence::Available).await;
        let (fo, fnew) = (fold(old), fold(new));
        let mut renamed = Vec::new();
        for ch in self.channels.values_mut() {
            if ch.members.remove(&fo).is_some() {
                ch.members.insert(fnew.clone(), new.to_owned());
                renamed.push(ch.name.clone());
            }
        }
        for room in renamed {
            self.emit(Event::MemberLeft {
                room: room.clone(),
                nick: old.to_owned(),
            })
            .await;
            self.emit(Event::MemberJoined {
                room,
                nick: new.to_owned(),
            })
            .await;
        }
    }

    async fn handle_command(&mut self, cmd: Command) -> Result<(), IrcError> {
        if !self.registered && !matches!(cmd, Command::Disconnect | Command::Connect) {
            if self.early.len() < MAX_EARLY_COMMANDS {
                self.early.push_back(cmd);
            }
            return Ok(());
        }
        match cmd {
            Command::Connect => {}
            Command::Disconnect => self.begin_quit(),
            Command::Send { to, body, kind } => {
                let target = to.name().to_owned();
                if !valid_target(&target) {
                    self.emit(Event::Error(AccountError::Notice(
                        timb_core::Notice::InvalidTarget,
                    )))
                    .await;
                    return Ok(());
                }
                let (verb, action) = match kind {
                    MessageKind::Normal => ("PRIVMSG", false),
                    MessageKind::Action => ("PRIVMSG", true),
                    MessageKind::Notice => ("NOTICE", false),
                };
                let budget = body_budget(&self.nick, verb, &target, action);
                let pieces = outgoing_lines(&body, budget);
                // All or nothing: half a message is worse than none.
                if self.out.len() + pieces.len() > MAX_QUEUED_LINES {
                    self.emit(Event::Error(AccountError::Notice(
                        timb_core::Notice::Backlog,
                    )))
                    .await;
                    return Ok(());
                }
                for piece in pieces {
                    let irc = match kind {
                        MessageKind::Normal => Irc::PRIVMSG(target.clone(), piece),
                        MessageKind::Action => {
                            Irc::PRIVMSG(target.clone(), format!("\x01ACTION {piece}\x01"))
                        }
                        MessageKind::Notice => Irc::NOTICE(target.clone(), piece),
                    };
                    self.enqueue(irc).await;
                }
            }
            Command::JoinGroup { room, .. } => {
                if valid_target(&room) && is_channel(&room) {
                    self.enqueue(Irc::JOIN(room, None, None)).await;
                } else {
                    self.emit(Event::Error(AccountError::Notice(
                        timb_core::Notice::InvalidChannel,
                    )))
                    .await;
                }
            }
            Command::LeaveGroup { room } => {
                if valid_target(&room) {
                    // No part message, for the same reason QUIT has none.
                    self.enqueue(Irc::PART(room, None)).await;
                }
            }
            Command::AddContact { .. }
            | Command::RemoveContact { .. }
            | Command::AnswerSubscription { .. } => {}
        }
        Ok(())
    }
}

/// A protocol line, or `None` if it would break framing or the length limit
/// (a last line of defence: inputs are validated before they get here).
fn wire(cmd: Irc) -> Option<String> {
    let line = Message::from(cmd).to_string();
    let body = line.strip_suffix("\r\n")?;
    if line.len() > IRC_LINE_LIMIT || body.contains(['\r', '\n', '\0']) {
        return None;
    }
    Some(line)
}

/// irc-proto's parser, isolated: a line it cannot parse, or on which it
/// would panic, is dropped instead of ending the session.
fn parse_message(text: &str) -> Option<Message> {
    if text.is_empty() {
        return None;
    }
    isolated(|| text.parse::<Message>().ok())
}

/// Runs a parser so that a panic inside it is a `None`, not the end of the
/// session. (The process's panic hook prints only the panic's location.)
fn isolated<T>(parse: impl FnOnce() -> Option<T> + std::panic::UnwindSafe) -> Option<T> {
    std::panic::catch_unwind(parse).ok().flatten()
}

fn is_channel(name: &str) -> bool {
    name.starts_with(['#', '&', '+', '!'])
}

/// RFC 1459 case mapping, which most networks still use for nicks and channels.
pub fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Candidates after a collision: `nick_`, `nick__`, then numbered, then the
/// same on a shortened base in case the server's NICKLEN is small.
pub fn alternative_nick(base: &str, attempt: usize) -> String {
    let short: String = base.chars().take(7).collect();
    match attempt {
        1 => format!("{base}_"),
        2 => format!("{base}__"),
        3..=5 => format!("{base}{}", attempt - 2),
        n => format!("{short}{}", n - 5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternative_nicks_differ() {
        let all: Vec<_> = (1..=NICK_ATTEMPTS)
            .map(|i| alternative_nick("alicealice", i))
            .collect();
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len());
        assert!(all.iter().all(|n| n != "alicealice"));
    }

    #[test]
    fn fold_is_rfc1459() {
        assert_eq!(fold("Nick[a]\\~"), "nick{a}|^");
    }

    #[test]
    fn quit_has_empty_message() {
        assert_eq!(wire(Irc::QUIT(Some(String::new()))).unwrap(), "QUIT :\r\n");
    }

    #[test]
    fn hostile_lines_do_not_panic_the_parser() {
        for l in [
            ":",
            "@",
            "@a",
            ": x",
            ":p",
            "@t :p",
            " ",
            ":p PRIVMSG",
            "PRIVMSG :",
            "MODE #c +kkkk",
            "CAP",
            "CAP * LS * *",
            ":a!b@c JOIN",
            "353",
            ":s 353 me = #c",
            "\u{fffd}\u{fffd}",
        ] {
            // irc-proto itself, not behind `isolated`: a panic fails the test.
            let direct = l.parse::<Message>().ok();
            assert_eq!(parse_message(l), direct, "{l:?}");
        }
    }

    #[test]
    fn a_panicking_parser_is_a_dropped_line() {
        let parsed: Option<Message> = isolated(|| panic!("a parser bug"));
        assert_eq!(parsed, None);
        assert_eq!(isolated(|| Some(1)), Some(1));
        assert_eq!(parse_message(""), None);
        assert_eq!(
            parse_message("PING :x\r\n"),
            Some(Message::from(Irc::PING("x".into(), None)))
        );
    }
}
