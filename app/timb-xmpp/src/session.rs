//! The account task: owns the connection, turns [`Command`]s into stanzas
//! and stanzas into [`Event`]s, keeps the stream alive (XEP-0199 pings) and
//! resumes it after a drop (XEP-0198) re-sending whatever the server had not
//! acknowledged.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use timb_core::{
    AccountHandle, AccountId, Command, ConnectionState, Event, MessageKind, Presence, Protocol,
    RosterItem, Target,
};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connect::{self, stanza_error_text, truncate, Established, ResumeToken, SmOutcome};
use crate::error::XmppError;
use crate::stream::Frame;
use crate::xml::*;
use crate::{bare_jid, random_id, resource_of, BoxStream, Connector, TlsUpgrade, XmppConfig};

/// Unacknowledged stanzas we keep for re-sending; beyond this, sends are
/// refused rather than buffered without bound.
const MAX_UNACKED: usize = 1000;
/// Caps on state a hostile server could otherwise grow without limit.
const MAX_ROSTER: usize = 10_000;
const MAX_PRESENCE_ENTRIES: usize = 10_000;
const MAX_ROOM_MEMBERS: usize = 5_000;
/// Commands held while reconnecting.
const MAX_DEFERRED: usize = 256;
/// Frames buffered between the reader task and the session.
const FRAME_QUEUE: usize = 32;
/// How long an owed XEP-0198 ack may wait for a write to ride with (bench xmpp: an ack
/// written alone just before the next message held that message ~40 ms over Tor). Short
/// next to any server's ack timeout; a burst of stanzas in that time gets one ack.
const ACK_DELAY: Duration = Duration::from_millis(100);
/// In a burst with no pause, a message carries an ack request whenever the resend queue
/// (messages, presences and iqs not yet acknowledged) reaches a multiple of this.
const ASK_EVERY: usize = 32;

/// Starts the account task. It waits for [`Command::Connect`].
pub fn spawn_account(
    id: AccountId,
    cfg: XmppConfig,
    connector: Arc<dyn Connector>,
    tls: Arc<dyn TlsUpgrade>,
) -> AccountHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    tokio::spawn(run(cfg, connector, tls, cmd_rx, ev_tx));
    AccountHandle {
        id,
        protocol: Protocol::Xmpp,
        commands: cmd_tx,
        events: ev_rx,
    }
}

async fn run(
    mut cfg: XmppConfig,
    connector: Arc<dyn Connector>,
    tls: Arc<dyn TlsUpgrade>,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) {
    loop {
        match cmds.recv().await {
            None => return,
            Some(Command::Connect) => {}
            Some(Command::Disconnect) => continue,
            Some(_) => {
                let e = timb_core::AccountError::Notice(timb_core::Notice::NotConnected);
                if events.send(Event::Error(e)).await.is_err() {
                    return;
                }
                continue;
            }
        }
        if events
            .send(Event::State(ConnectionState::Connecting))
            .await
            .is_err()
        {
            return;
        }
        let mut s = Session::new(cfg.clone(), connector.clone(), tls.clone(), events.clone());
        // Connecting through Tor can take a minute: Disconnect cancels it at once, and
        // what else the user asks for meanwhile is done once connected.
        let fut = open(cfg.clone(), connector.clone(), tls.clone(), None);
        tokio::pin!(fut);
        let opened = loop {
            tokio::select! {
                r = &mut fut => break Ok(r),
                c = cmds.recv() => match c {
                    None => break Err(Exit::Dropped),
                    Some(Command::Disconnect) => break Err(Exit::Disconnected),
                    Some(Command::Connect) => {}
                    Some(c) if s.deferred.len() < MAX_DEFERRED => s.deferred.push_back(c),
                    Some(_) => {
                        s.emit(Event::Error(timb_core::AccountError::Notice(
                            timb_core::Notice::TooManyWaiting,
                        )))
                        .await;
                    }
                },
            }
        };
        let outcome = match opened {
            Ok(Ok(est)) => {
                if cfg.register {
                    // Created once: every later connection only logs in.
                    cfg.register = false;
                    s.cfg.register = false;
                    s.emit(Event::AccountCreated).await;
                }
                s.install(est, true).await;
                let mut early = Ok(());
                while let (Ok(()), Some(c)) = (&early, s.deferred.pop_front()) {
                    early = s.command(c).await;
                }
                match early {
                    Ok(()) => s.run(&mut cmds).await,
                    Err(e) => Err(e),
                }
            }
            Ok(Err(e)) => Err(e),
            Err(exit) => Ok(exit),
        };
        let lost = s.undelivered();
        drop(s);
        if lost > 0 {
            let _ = events
                .send(Event::Error(timb_core::AccountError::Notice(
                    timb_core::Notice::MaybeUndelivered(lost),
                )))
                .await;
        }
        let stop = match outcome {
            Ok(Exit::Disconnected) => false,
            Ok(Exit::Dropped) => true,
            Err(e) => {
                let _ = events.send(Event::Error(e.into())).await;
                false
            }
        };
        if events
            .send(Event::State(ConnectionState::Disconnected))
            .await
            .is_err()
            || stop
        {
            return;
        }
    }
}

enum Exit {
    /// The user asked to disconnect.
    Disconnected,
    /// The handle was dropped: the task ends.
    Dropped,
}

struct Sm {
    /// Resumption id, if the server allows resuming.
    id: Option<String>,
    /// Stanzas we handled (the `h` we report).
    inbound: u32,
    /// Stanzas the server acknowledged.
    acked: u32,
    /// Sent but not yet acknowledged, oldest first.
    unacked: VecDeque<String>,
}

#[derive(Default)]
struct Room {
    nick: String,
    joined: bool,
    /// Id of our instant-room configuration request; the join is reported
    /// once the room is unlocked, so others can enter when the GUI says so.
    unlocking: Option<String>,
    members: BTreeSet<String>,
}

struct Session {
    cfg: XmppConfig,
    connector: Arc<dyn Connector>,
    tls: Arc<dyn TlsUpgrade>,
    events: mpsc::Sender<Event>,
    writer: Option<WriteHalf<BoxStream>>,
    frames: Option<mpsc::Receiver<Result<Frame, XmppError>>>,
    reader: Option<JoinHandle<()>>,
    jid: String,
    sm: Option<Sm>,
    /// Commands that arrived while reconnecting.
    deferred: VecDeque<Command>,
    rooms: HashMap<String, Room>,
    online: HashMap<String, HashSet<String>>,
    /// Bare JIDs in the roster: a "group" at one of these addresses is a person, not a room.
    contacts: HashSet<String>,
    roster_id: Option<String>,
    ping: Option<(String, Instant)>,
    last_rx: Instant,
    /// An XEP-0198 `<a/>` is owed (a message came, or the server asked with `<r/>`): it
    /// rides with the next write, or goes alone at this instant ([`ACK_DELAY`]).
    ack_due: Option<Instant>,
    /// When to ask the server for an ack of the messages sent.
    ack_request_at: Option<Instant>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

impl Session {
    fn new(
        cfg: XmppConfig,
        connector: Arc<dyn Connector>,
        tls: Arc<dyn TlsUpgrade>,
        events: mpsc::Sender<Event>,
    ) -> Session {
        Session {
            cfg,
            connector,
            tls,
            events,
            writer: None,
            ack_due: None,
            ack_request_at: None,
            frames: None,
            reader: None,
            jid: String::new(),
            sm: None,
            deferred: VecDeque::new(),
            rooms: HashMap::new(),
            online: HashMap::new(),
            contacts: HashSet::new(),
            roster_id: None,
            ping: None,
            last_rx: Instant::now(),
        }
    }

    async fn emit(&mut self, e: Event) {
        // A closed receiver means the handle is gone; the command loop sees
        // that too and ends the task.
        let _ = self.events.send(e).await;
    }

    /// Takes over a freshly negotiated stream.
    async fn install(&mut self, est: Established, first: bool) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        let (mut xs, writer) = est.xs.split();
        self.writer = writer;
        // An ack owed on the old stream is void: a resumed stream starts from the `h`
        // the resume request carried.
        self.ack_due = None;
        self.ack_request_at = None;
        let (tx, rx) = mpsc::channel(FRAME_QUEUE);
        self.reader = Some(tokio::spawn(async move {
            loop {
                let r = xs.next().await;
                let stop = !matches!(r, Ok(Frame::Stanza(_)));
                if tx.send(r).await.is_err() || stop {
                    break;
                }
            }
        }));
        self.frames = Some(rx);
        self.last_rx = Instant::now();
        self.ping = None;
        self.emit(Event::State(ConnectionState::Connected {
            spki_sha256: est.tls.spki_sha256.clone(),
        }))
        .await;

        let mut resend: Vec<String> = Vec::new();
        match est.sm {
            SmOutcome::Resumed { h } => {
                if let Some(sm) = self.sm.as_mut() {
                    ack(sm, h);
                    resend.extend(sm.unacked.iter().cloned());
                }
            }
            other => {
                // Fresh session (resumption refused or unsupported): the
                // usual session start, then unconfirmed messages go out
                // again. Old iqs and presences are dropped: the new session
                // re-creates roster, presence and rooms itself.
                self.jid = est.jid.clone();
                let old: Vec<String> = self
                    .sm
                    .take()
                    .map(|sm| sm.unacked)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| s.starts_with("<message"))
                    .collect();
                self.sm = match other {
                    SmOutcome::Enabled { id } => Some(Sm {
                        id,
                        inbound: 0,
                        acked: 0,
                        unacked: VecDeque::new(),
                    }),
                    _ => None,
                };
                // The server will send current presences again; until then
                // nobody is known to be online.
                if !first {
                    let was: Vec<String> = self.online.drain().map(|(k, _)| k).collect();
                    for contact in was {
                        self.emit(Event::Presence {
                            contact,
                            presence: Presence::Offline,
                        })
                        .await;
                    }
                }
                let _ = self.start_session().await;
                for s in old {
                    let _ = self.write_stanza(s).await;
                }
            }
        }
        for s in resend {
            let _ = self.write_raw(&s).await;
        }
        if self.sm.is_some() {
            let _ = self.write_raw(&Element::new("r", NS_SM).to_xml()).await;
        }
        // Stanzas that came before <enabled/> are not counted by the
        // server, so they must not count towards our h either.
        let base = self.sm.as_ref().map(|sm| sm.inbound);
        for p in est.pending {
            let _ = self.handle(p).await;
            // No ack for them either: one riding with a reply written here would report
            // an `h` above what the server counted, which it takes as a stream error.
            self.ack_due = None;
        }
        if let (Some(b), Some(sm)) = (base, self.sm.as_mut()) {
            sm.inbound = b;
        }
    }

    async fn start_session(&mut self) -> Result<(), XmppError> {
        let id = random_id();
        self.roster_id = Some(id.clone());
        self.send(
            Element::new("iq", NS_CLIENT)
                .with_attr("type", "get")
                .with_attr("id", id)
                .with_child(Element::new("query", NS_ROSTER)),
        )
        .await?;
        self.send(Element::new("presence", NS_CLIENT)).await?;
        let rooms: Vec<(String, String)> = self
            .rooms
            .iter()
            .map(|(r, s)| (r.clone(), s.nick.clone()))
            .collect();
        for (room, nick) in rooms {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.joined = false;
                r.members.clear();
            }
            self.send(join_presence(&room, &nick)).await?;
        }
        Ok(())
    }

    /// Writes `xml` in one write, after the ack owed if there is one: over Tor, a
    /// second small write right after the first waits for the first's TCP ACK at a relay
    /// that has Nagle on (c-tor's do), up to 40 ms of delayed ACK; together they are one
    /// cell.
    async fn write_raw(&mut self, xml: &str) -> Result<(), XmppError> {
        let owed = match (self.ack_due.take(), self.sm.as_ref()) {
            (Some(_), Some(sm)) => Element::new("a", NS_SM)
                .with_attr("h", sm.inbound.to_string())
                .to_xml(),
            _ => String::new(),
        };
        let w = self.writer.as_mut().ok_or(XmppError::Closed)?;
        w.write_all(format!("{owed}{xml}").as_bytes())
            .await
            .map_err(crate::stream::io_err)?;
        w.flush().await.map_err(crate::stream::io_err)
    }

    /// Asks the server for an ack once no message has been sent for [`ACK_DELAY`]. Not
    /// with each message: the server answers every `<r/>` at once, and over Tor its small
    /// `<a/>`, written just before the reply to our message, held that reply ~40 ms behind
    /// a relay's Nagle (bench xmpp: 44 ms median round trip with a request per message,
    /// 7.9 ms without, the raw client's 7.8 ms).
    fn ask_ack(&mut self) {
        self.ack_request_at = Some(Instant::now() + ACK_DELAY);
    }

    /// Owes the server an `<a/>`, due within [`ACK_DELAY`].
    fn owe_ack(&mut self) {
        if self.sm.is_some() && self.ack_due.is_none() {
            self.ack_due = Some(Instant::now() + ACK_DELAY);
        }
    }

    /// Sends a stanza that counts for XEP-0198 (message, presence, iq).
    async fn write_stanza(&mut self, xml: String) -> Result<(), XmppError> {
        match self.sm.as_mut() {
            Some(sm) => {
                sm.unacked.push_back(xml.clone());
            }
            None => {
                // Without SM we cannot know what arrived; nothing to keep.
            }
        }
        self.write_raw(&xml).await
    }

    async fn send(&mut self, e: Element) -> Result<(), XmppError> {
        self.write_stanza(e.to_xml()).await
    }

    fn unacked_full(&self) -> bool {
        self.sm
            .as_ref()
            .is_some_and(|sm| sm.unacked.len() >= MAX_UNACKED)
    }

    async fn run(&mut self, cmds: &mut mpsc::Receiver<Command>) -> Result<Exit, XmppError> {
        loop {
            let r = self.run_connected(cmds).await;
            match r {
                Ok(exit) => return Ok(exit),
                Err(e) if e.is_transient() && self.cfg.reconnect.attempts > 0 => {
                    if let Some(exit) = self.reconnect(e, cmds).await? {
                        return Ok(exit);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Messages that may not have reached the server (unacknowledged or
    /// still waiting for a reconnect), so the user can be told.
    fn undelivered(&self) -> usize {
        let unacked = self.sm.as_ref().map_or(0, |sm| {
            sm.unacked
                .iter()
                .filter(|s| s.starts_with("<message"))
                .count()
        });
        unacked
            + self
                .deferred
                .iter()
                .filter(|c| matches!(c, Command::Send { .. }))
                .count()
    }

    /// Re-establishes a dropped stream, resuming it when the server allows.
    /// Still obeys Disconnect (and a dropped handle) meanwhile; other commands
    /// wait for the new stream. `Some(exit)` if the user ended it.
    async fn reconnect(
        &mut self,
        cause: XmppError,
        cmds: &mut mpsc::Receiver<Command>,
    ) -> Result<Option<Exit>, XmppError> {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        self.writer = None;
        self.frames = None;
        self.ack_due = None;
        self.emit(Event::State(ConnectionState::Reconnecting)).await;
        let token = self.sm.as_ref().and_then(|sm| {
            sm.id.as_ref().map(|id| ResumeToken {
                id: id.clone(),
                h: sm.inbound,
            })
        });
        let mut last = cause;
        for attempt in 0..self.cfg.reconnect.attempts {
            let delay = self.cfg.reconnect.delay(attempt);
            let (cfg, connector, tls) =
                (self.cfg.clone(), self.connector.clone(), self.tls.clone());
            let tok = token.clone();
            let fut = async move {
                tokio::time::sleep(delay).await;
                open(cfg, connector, tls, tok).await
            };
            tokio::pin!(fut);
            let res = loop {
                tokio::select! {
                    r = &mut fut => break r,
                    c = cmds.recv() => match c {
                        None => return Ok(Some(Exit::Dropped)),
                        Some(Command::Disconnect) => return Ok(Some(Exit::Disconnected)),
                        Some(Command::Connect) => {}
                        Some(c) if self.deferred.len() < MAX_DEFERRED => self.deferred.push_back(c),
                        Some(_) => {
                            self.emit(Event::Error(timb_core::AccountError::Notice(
                                timb_core::Notice::TooManyWaiting,
                            )))
                            .await;
                        }
                    },
                }
            };
            match res {
                Ok(est) => {
                    self.install(est, false).await;
                    while let Some(c) = self.deferred.pop_front() {
                        self.command(c).await?;
                    }
                    return Ok(None);
                }
                Err(e) if e.is_transient() => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn run_connected(
        &mut self,
        cmds: &mut mpsc::Receiver<Command>,
    ) -> Result<Exit, XmppError> {
        loop {
            let deadline = match &self.ping {
                Some((_, sent)) => later(*sent, self.cfg.timeout),
                None => later(self.last_rx, self.cfg.ping_interval),
            };
            let ack_at = self.ack_due;
            let ask_at = self.ack_request_at;
            let frames = self.frames.as_mut().ok_or(XmppError::Closed)?;
            tokio::select! {
                c = cmds.recv() => match c {
                    None => {
                        self.close().await;
                        return Ok(Exit::Dropped);
                    }
                    Some(Command::Disconnect) => {
                        self.close().await;
                        return Ok(Exit::Disconnected);
                    }
                    Some(Command::Connect) => {}
                    Some(c) => self.command(c).await?,
                },
                f = frames.recv() => {
                    self.last_rx = Instant::now();
                    match f {
                        Some(Ok(Frame::Stanza(e))) => self.handle(e).await?,
                        Some(Ok(Frame::StreamEnd)) | None => return Err(XmppError::Closed),
                        Some(Ok(Frame::StreamStart(_))) => {
                            return Err(XmppError::Protocol("unexpected stream restart".into()))
                        }
                        Some(Err(e)) => return Err(e),
                    }
                }
                // Nothing else went out in time: the owed ack alone.
                _ = tokio::time::sleep_until(ack_at.unwrap_or(deadline)), if ack_at.is_some() => {
                    self.write_raw("").await?;
                }
                _ = tokio::time::sleep_until(ask_at.unwrap_or(deadline)), if ask_at.is_some() => {
                    self.ack_request_at = None;
                    if self.undelivered() > 0 {
                        self.write_raw(&Element::new("r", NS_SM).to_xml()).await?;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if self.ping.is_some() {
                        return Err(XmppError::Timeout(self.cfg.timeout.as_secs()));
                    }
                    let id = random_id();
                    self.ping = Some((id.clone(), Instant::now()));
                    // Pings are not stored for re-sending: a lost ping is
                    // exactly what the timeout detects.
                    let p = Element::new("iq", NS_CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", id)
                        .with_attr("to", self.cfg.domain())
                        .with_child(Element::new("ping", NS_PING));
                    self.send(p).await?;
                }
            }
        }
    }

    async fn close(&mut self) {
        let _ = self
            .send(Element::new("presence", NS_CLIENT).with_attr("type", "unavailable"))
            .await;
        // Give the server a moment to confirm our last messages, so the
        // user is only warned about ones that may really be lost.
        if self.sm.is_some() && self.undelivered() > 0 {
            let _ = self.write_raw(&Element::new("r", NS_SM).to_xml()).await;
            let deadline = Instant::now() + Duration::from_secs(3).min(self.cfg.timeout);
            while self.undelivered() > 0 {
                let Some(frames) = self.frames.as_mut() else {
                    break;
                };
                match tokio::time::timeout_at(deadline, frames.recv()).await {
                    Ok(Some(Ok(Frame::Stanza(e)))) if e.is("a", NS_SM) => {
                        if let (Ok(h), Some(sm)) = (connect::parse_h(&e), self.sm.as_mut()) {
                            ack(sm, h);
                        }
                    }
                    Ok(Some(Ok(Frame::Stanza(_)))) => {}
                    _ => break,
                }
            }
        }
        let _ = self.write_raw("</stream:stream>").await;
        if let Some(w) = self.writer.as_mut() {
            let _ = w.shutdown().await;
        }
    }

    async fn command(&mut self, c: Command) -> Result<(), XmppError> {
        if self.unacked_full() && matches!(c, Command::Send { .. }) {
            self.emit(Event::Error(timb_core::AccountError::Notice(
                timb_core::Notice::Backlog,
            )))
            .await;
            return Ok(());
        }
        match c {
            Command::Connect | Command::Disconnect => {}
            Command::Send { to, body, kind } => {
                let body = match kind {
                    MessageKind::Action => format!("/me {body}"),
                    _ => body,
                };
                let (to, ty) = match &to {
                    Target::Direct(j) => (j.clone(), "chat"),
                    Target::Group(r) => {
                        if !self.rooms.get(r.as_str()).is_some_and(|r| r.joined) {
                            self.emit(Event::Error(timb_core::AccountError::Notice(
                                timb_core::Notice::NotInGroup,
                            )))
                            .await;
                            return Ok(());
                        }
                        (r.clone(), "groupchat")
                    }
                };
                let xml = message(&to, ty, &body).to_xml();
                match self.sm.as_mut() {
                    Some(sm) => {
                        sm.unacked.push_back(xml.clone());
                        // The ack request waits for a pause ([`Self::ask_ack`]); in a
                        // long burst it rides with the message that brings the resend
                        // queue to a multiple of ASK_EVERY, so the queue stays short.
                        if sm.unacked.len() % ASK_EVERY == 0 {
                            let r = Element::new("r", NS_SM).to_xml();
                            self.write_raw(&format!("{xml}{r}")).await?;
                        } else {
                            self.write_raw(&xml).await?;
                        }
                        self.ask_ack();
                    }
                    None => self.write_raw(&xml).await?,
                }
            }
            Command::JoinGroup { room, nick } => {
                let room = bare_jid(&room).to_owned();
                if let Some(why) = self.not_a_room(&room) {
                    // Joining would leave a pending "room" that takes this address's
                    // presence and requests; refuse before anything is sent.
                    self.emit(Event::Error(timb_core::AccountError::Notice(why)))
                        .await;
                    return Ok(());
                }
                let nick = nick
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| self.cfg.localpart().to_owned());
                self.rooms.insert(
                    room.clone(),
                    Room {
                        nick: nick.clone(),
                        ..Room::default()
                    },
                );
                self.send(join_presence(&room, &nick)).await?;
            }
            Command::LeaveGroup { room } => {
                if let Some(r) = self.rooms.get(room.as_str()) {
                    let to = format!("{room}/{}", r.nick);
                    self.send(
                        Element::new("presence", NS_CLIENT)
                            .with_attr("to", to)
                            .with_attr("type", "unavailable"),
                    )
                    .await?;
                }
            }
            Command::AddContact { id } => {
                let id = bare_jid(&id).to_owned();
                self.send(roster_set(&id, None)).await?;
                self.send(
                    Element::new("presence", NS_CLIENT)
                        .with_attr("to", id)
                        .with_attr("type", "subscribe"),
                )
                .await?;
            }
            Command::RemoveContact { id } => {
                self.send(roster_set(bare_jid(&id), Some("remove"))).await?;
            }
            Command::AnswerSubscription { from, approve } => {
                let ty = if approve {
                    "subscribed"
                } else {
                    "unsubscribed"
                };
                self.send(
                    Element::new("presence", NS_CLIENT)
                        .with_attr("to", bare_jid(&from))
                        .with_attr("type", ty),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn handle(&mut self, e: Element) -> Result<(), XmppError> {
        if e.ns == NS_SM {
            return self.handle_sm(&e).await;
        }
        if e.is("error", NS_STREAM) {
            return Err(connect::stream_error(&e));
        }
        if e.ns != NS_CLIENT {
            return Ok(());
        }
        if let Some(sm) = self.sm.as_mut() {
            if matches!(e.name.as_str(), "message" | "presence" | "iq") {
                sm.inbound = sm.inbound.wrapping_add(1);
            }
        }
        match e.name.as_str() {
            "iq" => self.handle_iq(e).await,
            "message" => {
                self.handle_message(e).await;
                // Unsolicited ack (XEP-0198 allows it), so that the server can drop
                // the message from its resend queue; it rides with our next write
                // (a reply) or goes alone shortly.
                self.owe_ack();
                Ok(())
            }
            "presence" => {
                self.handle_presence(e).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn handle_sm(&mut self, e: &Element) -> Result<(), XmppError> {
        match e.name.as_str() {
            "r" => {
                self.owe_ack();
                Ok(())
            }
            "a" => {
                let h = connect::parse_h(e)?;
                if let Some(sm) = self.sm.as_mut() {
                    ack(sm, h);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn handle_iq(&mut self, e: Element) -> Result<(), XmppError> {
        let ty = e.attr("type").unwrap_or("");
        let id = e.attr("id").unwrap_or("").to_owned();
        let from = e.attr("from").map(str::to_owned);
        match ty {
            "get" | "set" => {
                let payload = e.elements().next();
                let own = |f: &Option<String>| {
                    f.as_deref()
                        .is_none_or(|f| f == bare_jid(&self.jid) || f == self.cfg.domain())
                };
                if ty == "get" && payload.is_some_and(|p| p.is("ping", NS_PING)) {
                    let mut r = Element::new("iq", NS_CLIENT)
                        .with_attr("type", "result")
                        .with_attr("id", id);
                    if let Some(f) = from {
                        r.set_attr("to", f);
                    }
                    return self.send(r).await;
                }
                if ty == "set" && payload.is_some_and(|p| p.is("query", NS_ROSTER)) && own(&from) {
                    if let Some(q) = payload {
                        let items: Vec<Element> = q.elements().cloned().collect();
                        self.roster_items(&items, true).await;
                    }
                    return self
                        .send(
                            Element::new("iq", NS_CLIENT)
                                .with_attr("type", "result")
                                .with_attr("id", id),
                        )
                        .await;
                }
                // Version, time, last activity, disco and everything else:
                // refused, so nothing about the client or its user leaks.
                let mut r = Element::new("iq", NS_CLIENT)
                    .with_attr("type", "error")
                    .with_attr("id", id)
                    .with_child(
                        Element::new("error", NS_CLIENT)
                            .with_attr("type", "cancel")
                            .with_child(Element::new("service-unavailable", NS_STANZAS)),
                    );
                if let Some(f) = from {
                    r.set_attr("to", f);
                }
                self.send(r).await
            }
            "result" | "error" => {
                if self.roster_id.as_deref() == Some(id.as_str()) {
                    self.roster_id = None;
                    if ty == "result" {
                        if let Some(q) = e.child("query", NS_ROSTER) {
                            let items: Vec<Element> = q.elements().cloned().collect();
                            self.roster_items(&items, false).await;
                        }
                    }
                } else if self.ping.as_ref().is_some_and(|(p, _)| *p == id) {
                    self.ping = None;
                } else if let Some((room, r)) = self
                    .rooms
                    .iter_mut()
                    .find(|(_, r)| r.unlocking.as_deref() == Some(id.as_str()))
                {
                    r.unlocking = None;
                    let (room, nick) = (room.clone(), r.nick.clone());
                    let members = r.members.iter().cloned().collect();
                    if ty == "error" {
                        let why = stanza_error_text(&e);
                        self.emit(Event::Error(timb_core::AccountError::GroupRefused {
                            room: room.clone(),
                            why,
                        }))
                        .await;
                    }
                    self.emit(Event::GroupJoined {
                        room: room.clone(),
                        nick,
                    })
                    .await;
                    self.emit(Event::GroupMembers { room, members }).await;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Why `room` (a bare JID) cannot be a group to join, if it cannot.
    fn not_a_room(&self, room: &str) -> Option<timb_core::Notice> {
        use timb_core::Notice;
        let Some((local, domain)) = room.split_once('@') else {
            return Some(Notice::NotAGroupAddress);
        };
        if local.is_empty() || domain.is_empty() {
            return Some(Notice::NotAGroupAddress);
        }
        if room == bare_jid(&self.jid) {
            return Some(Notice::OwnAddress);
        }
        if self.contacts.contains(room) || self.online.contains_key(room) {
            return Some(Notice::ContactAddress);
        }
        None
    }

    async fn roster_items(&mut self, items: &[Element], push: bool) {
        if !push {
            // The full roster replaces what we knew.
            self.contacts.clear();
        }
        for it in items
            .iter()
            .filter(|i| i.is("item", NS_ROSTER))
            .take(MAX_ROSTER)
        {
            let Some(jid) = it.attr("jid") else { continue };
            let jid = bare_jid(jid).to_owned();
            let sub = it.attr("subscription").unwrap_or("none");
            if sub == "remove" {
                if push {
                    self.contacts.remove(&jid);
                    self.online.remove(&jid);
                    self.emit(Event::RosterRemoved(jid)).await;
                }
                continue;
            }
            if self.contacts.len() < MAX_ROSTER {
                self.contacts.insert(jid.clone());
            }
            let online = self.online.get(&jid).is_some_and(|s| !s.is_empty());
            self.emit(Event::RosterSet(RosterItem {
                id: jid.clone(),
                name: it.attr("name").map(|n| truncate(n, 200)),
                subscribed_to: matches!(sub, "to" | "both"),
                subscribed_from: matches!(sub, "from" | "both"),
            }))
            .await;
            // A roster change says nothing about presence, and the server does not send an
            // unchanged presence again: repeat what we know so no one looks offline.
            if online {
                self.emit(Event::Presence {
                    contact: jid,
                    presence: Presence::Available,
                })
                .await;
            }
        }
    }

    async fn handle_message(&mut self, e: Element) {
        let Some(from) = e.attr("from").map(str::to_owned) else {
            return;
        };
        let ty = e.attr("type").unwrap_or("normal");
        let bare = bare_jid(&from).to_owned();
        if ty == "error" {
            let why = stanza_error_text(&e);
            self.emit(Event::Error(timb_core::AccountError::NotDelivered {
                to: bare.clone(),
                why,
            }))
            .await;
            return;
        }
        let body = e.child("body", NS_CLIENT).map(|b| b.text());
        if ty == "groupchat" {
            let Some(room) = self.rooms.get(bare.as_str()) else {
                return;
            };
            let nick = resource_of(&from).unwrap_or("").to_owned();
            if body.is_none() {
                if let Some(s) = e.child("subject", NS_CLIENT) {
                    self.emit(Event::Topic {
                        room: bare,
                        topic: s.text(),
                    })
                    .await;
                }
                return;
            }
            if nick == room.nick || nick.is_empty() {
                // Our own message reflected by the room, or a room notice.
                return;
            }
            let (body, kind) = split_action(body.unwrap_or_default());
            self.emit(Event::Message {
                from: Target::Group(bare),
                sender: Some(nick),
                body,
                kind,
                received_at: timb_core::unix_now(),
            })
            .await;
            return;
        }
        let Some(body) = body else { return };
        // Private messages inside a room keep the full occupant JID.
        let target = if self.rooms.contains_key(bare.as_str()) {
            Target::Direct(from)
        } else {
            Target::Direct(bare)
        };
        let (body, kind) = split_action(body);
        self.emit(Event::Message {
            from: target,
            sender: None,
            body,
            kind,
            received_at: timb_core::unix_now(),
        })
        .await;
    }

    async fn handle_presence(&mut self, e: Element) {
        let Some(from) = e.attr("from").map(str::to_owned) else {
            return;
        };
        let ty = e.attr("type").unwrap_or("available").to_owned();
        let bare = bare_jid(&from).to_owned();
        let res = resource_of(&from).unwrap_or("").to_owned();
        // Only what is really about the room goes to it: a room we are in, or a pending
        // join's MUC answer or error. Anything else from that address stays a person's.
        let for_room = self
            .rooms
            .get(bare.as_str())
            .is_some_and(|r| r.joined || ty == "error" || e.child("x", NS_MUC_USER).is_some());
        if for_room {
            self.room_presence(&bare, &res, &ty, &e).await;
            return;
        }
        match ty.as_str() {
            "subscribe" => {
                self.emit(Event::SubscriptionRequest { from: bare }).await;
            }
            "available" | "unavailable" => {
                if bare == bare_jid(&self.jid) {
                    return;
                }
                let was = self.online.get(&bare).is_some_and(|s| !s.is_empty());
                if ty == "available" {
                    if !self.online.contains_key(&bare) && self.online.len() >= MAX_PRESENCE_ENTRIES
                    {
                        return;
                    }
                    let set = self.online.entry(bare.clone()).or_default();
                    if set.len() < 64 {
                        set.insert(res);
                    }
                } else if let Some(set) = self.online.get_mut(&bare) {
                    set.remove(&res);
                    if set.is_empty() {
                        self.online.remove(&bare);
                    }
                }
                let now = self.online.get(&bare).is_some_and(|s| !s.is_empty());
                if was != now || (ty == "unavailable" && !was) {
                    let presence = if now {
                        Presence::Available
                    } else {
                        Presence::Offline
                    };
                    self.emit(Event::Presence {
                        contact: bare,
                        presence,
                    })
                    .await;
                }
            }
            _ => {}
        }
    }

    async fn room_presence(&mut self, room: &str, nick: &str, ty: &str, e: &Element) {
        let x = e.child("x", NS_MUC_USER);
        let is_self = x.is_some_and(|x| {
            x.elements()
                .any(|s| s.is("status", NS_MUC_USER) && s.attr("code") == Some("110"))
        });
        let created = x.is_some_and(|x| {
            x.elements()
                .any(|s| s.is("status", NS_MUC_USER) && s.attr("code") == Some("201"))
        });
        let mut out = Vec::new();
        if ty == "error" {
            let why = stanza_error_text(e);
            self.rooms.remove(room);
            out.push(Event::Error(timb_core::AccountError::GroupRefused {
                room: room.to_owned(),
                why,
            }));
        } else if let Some(r) = self.rooms.get_mut(room) {
            if is_self || (nick == r.nick && !r.joined) {
                if ty == "unavailable" {
                    self.rooms.remove(room);
                    out.push(Event::GroupLeft {
                        room: room.to_owned(),
                    });
                } else if !r.joined {
                    r.joined = true;
                    r.nick = nick.to_owned();
                    if created {
                        r.unlocking = Some(random_id());
                    } else {
                        out.push(Event::GroupJoined {
                            room: room.to_owned(),
                            nick: nick.to_owned(),
                        });
                        out.push(Event::GroupMembers {
                            room: room.to_owned(),
                            members: r.members.iter().cloned().collect(),
                        });
                    }
                }
            } else {
                let ev = if ty == "unavailable" {
                    r.members.remove(nick).then(|| Event::MemberLeft {
                        room: room.to_owned(),
                        nick: nick.to_owned(),
                    })
                } else if ty == "available" && r.members.len() < MAX_ROOM_MEMBERS {
                    r.members
                        .insert(nick.to_owned())
                        .then(|| Event::MemberJoined {
                            room: room.to_owned(),
                            nick: nick.to_owned(),
                        })
                } else {
                    None
                };
                if let (true, Some(ev)) = (r.joined, ev) {
                    out.push(ev);
                }
            }
        }
        let unlock = self.rooms.get(room).and_then(|r| r.unlocking.clone());
        if let (true, Some(id)) = (created && is_self && ty != "unavailable", unlock) {
            // We created the room: accept the default configuration (an
            // "instant room"), or it stays locked to everyone else.
            let _ = self
                .send(
                    Element::new("iq", NS_CLIENT)
                        .with_attr("type", "set")
                        .with_attr("to", room)
                        .with_attr("id", id)
                        .with_child(
                            Element::new("query", "http://jabber.org/protocol/muc#owner")
                                .with_child(
                                    Element::new("x", "jabber:x:data").with_attr("type", "submit"),
                                ),
                        ),
                )
                .await;
        }
        for ev in out {
            self.emit(ev).await;
        }
    }
}

/// Opens the transport and negotiates the stream. Takes owned handles so
/// reconnecting can run beside the command channel.
async fn open(
    cfg: XmppConfig,
    connector: Arc<dyn Connector>,
    tls: Arc<dyn TlsUpgrade>,
    resume: Option<ResumeToken>,
) -> Result<Established, XmppError> {
    if cfg.localpart().is_empty() || cfg.domain().is_empty() {
        return Err(XmppError::Auth(crate::AuthError::Failure(
            "the account address must look like user@domain".into(),
        )));
    }
    let (host, port) = cfg.address();
    let t = cfg.timeout;
    let stream = connect::with_timeout(t, async {
        connector
            .connect(host, port)
            .await
            .map_err(XmppError::Connect)
    })
    .await?;
    connect::with_timeout(
        t.saturating_mul(4),
        connect::establish(stream, &cfg, tls.as_ref(), resume.as_ref()),
    )
    .await
}

/// `at + d`, saturating instead of panicking on absurd configured durations.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365))
}

/// Drops the stanzas the server says it has handled (`h` is cumulative and
/// wraps at 2^32).
fn ack(sm: &mut Sm, h: u32) {
    let n = h.wrapping_sub(sm.acked) as usize;
    if n <= sm.unacked.len() {
        sm.unacked.drain(..n);
        sm.acked = h;
    }
}

fn split_action(body: String) -> (String, MessageKind) {
    match body.strip_prefix("/me ") {
        Some(rest) => (rest.to_owned(), MessageKind::Action),
        None => (body, MessageKind::Normal),
    }
}

/// A message with nothing but its body. OTR traffic additionally asks the
/// server not to copy it to other resources (carbons) or archive it (MAM).
pub fn message(to: &str, ty: &str, body: &str) -> Element {
    let mut m = Element::new("message", NS_CLIENT)
        .with_attr("to", to)
        .with_attr("type", ty)
        .with_attr("id", random_id())
        .with_child(Element::new("body", NS_CLIENT).with_text(body));
    if body.starts_with("?OTR") {
        m = m
            .with_child(Element::new("private", NS_CARBONS))
            .with_child(Element::new("no-permanent-store", NS_HINTS));
    }
    m
}

fn join_presence(room: &str, nick: &str) -> Element {
    Element::new("presence", NS_CLIENT)
        .with_attr("to", format!("{room}/{nick}"))
        .with_child(Element::new("x", NS_MUC))
}

fn roster_set(jid: &str, subscription: Option<&str>) -> Element {
    let mut item = Element::new("item", NS_ROSTER).with_attr("jid", jid);
    if let Some(s) = subscription {
        item.set_attr("subscription", s);
    }
    Element::new("iq", NS_CLIENT)
        .with_attr("type", "set")
        .with_attr("id", random_id())
        .with_child(Element::new("query", NS_ROSTER).with_child(item))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otr_messages_are_marked_private() {
        let m = message("a@b", "chat", "?OTR:AAMD");
        assert!(m.has_child("private", NS_CARBONS));
        assert!(m.has_child("no-permanent-store", NS_HINTS));
        let m = message("a@b", "chat", "hello");
        assert!(!m.has_child("private", NS_CARBONS));
        assert_eq!(m.elements().count(), 1);
    }

    #[test]
    fn ack_drops_handled_and_survives_wrap() {
        let mut sm = Sm {
            id: None,
            inbound: 0,
            acked: u32::MAX - 1,
            unacked: (0..5).map(|i| i.to_string()).collect(),
        };
        ack(&mut sm, 1); // 3 handled across the wrap
        assert_eq!(sm.unacked, vec!["3".to_string(), "4".to_string()]);
        ack(&mut sm, 100); // nonsense h: ignored
        assert_eq!(sm.unacked.len(), 2);
    }
}
