//! OTR for every one-to-one conversation, over our own libotr build (`libotr-sys`).
//!
//! [`OtrSession`] owns one libotr `OtrlUserState` and is deliberately `!Send`: libotr is not
//! thread-safe, so the type system keeps every call on the thread that created it.
//! [`actor::OtrActor`] runs a session on its own thread for async callers.
//!
//! Policy is fixed to libotr's ALWAYS (v2+v3, encryption required, no whitespace tag): a
//! message is only ever handed to libotr once the conversation is encrypted. Until then it is
//! held here (bounded, wiped on drop) while the AKE runs, and every byte this layer emits is
//! checked to be an OTR protocol message, so no code path can put plaintext on the wire.
//!
//! Wiring: [`wrap::wrap`] does all of the following for one protocol account and hands the
//! GUI an `AccountHandle` of the same shape plus an [`wrap::OtrControl`] (state, fingerprints,
//! SMP, held/undelivered messages). By hand: open the store in `Profile::subdir("otr")`
//! (owner-only). A protocol's incoming
//! direct message goes to [`OtrSession::receive`]; the GUI's `Command::Send` to a
//! `Target::Direct` goes to [`OtrSession::send`] instead of the protocol; every
//! [`Outgoing`] becomes one `Command::Send` ([`Outgoing::to_command`]): one XMPP `<message>`
//! (to the full JID the peer last wrote from) or one IRC PRIVMSG per fragment. Group
//! targets never pass through OTR. Call [`OtrSession::poll`] every
//! [`OtrSession::poll_interval`] (the [`actor`] does this).
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod actor;
mod callbacks;
pub mod session;
mod store;
pub mod wrap;

use std::fmt;

use timb_core::{AccountId, Command, MessageKind, Protocol, Target};

pub use session::{ConversationState, OtrSession, PeerFingerprint};

/// Largest PRIVMSG body that fits a 512-byte IRC line with a long prefix and target.
pub const IRC_MAX_MESSAGE_SIZE: usize = 417;
/// Largest plaintext accepted for one message; larger input is refused, never truncated.
pub const MAX_PLAINTEXT_BYTES: usize = 64 * 1024;
/// Largest wire message accepted from a peer (protocols bound lines well below this).
pub const MAX_WIRE_BYTES: usize = 256 * 1024;
/// Senders an account accepts OTR messages from in one session (each costs libotr a
/// conversation context for the session); a new sender beyond it is refused.
pub const MAX_PEERS_PER_ACCOUNT: usize = 10_000;
/// Messages held per conversation while the AKE runs; more are refused, not buffered.
pub const MAX_HELD_PER_PEER: usize = 64;

/// One account as OTR sees it. `name` is what libotr files keys under (bare JID, or
/// `nick@network` for IRC) and must stay stable across runs so keys are found again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    pub id: AccountId,
    pub protocol: Protocol,
    pub name: String,
    /// Fragment size override; `None` uses the protocol's (417 for IRC, unlimited for XMPP).
    pub max_message_size: Option<usize>,
}

/// One protocol message to send: each is its own XMPP `<message>` or IRC PRIVMSG.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub account: AccountId,
    pub to: String,
    /// Always an OTR protocol message (`?OTR…`); never user plaintext.
    pub body: String,
}

/// What the brief's API calls an outgoing fragment; same thing.
pub type OutgoingFragment = Outgoing;

impl Outgoing {
    /// The command a protocol carries out to deliver this.
    pub fn to_command(&self) -> Command {
        Command::Send {
            to: Target::Direct(self.to.clone()),
            body: self.body.clone(),
            kind: MessageKind::Normal,
        }
    }
}

impl fmt::Debug for Outgoing {
    // Bodies are ciphertext, but still kept out of debug output and therefore logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("account", &self.account)
            .field("to", &self.to)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What a call produced: messages to send and things to tell the user.
#[derive(Debug, Default)]
pub struct Output {
    pub outgoing: Vec<Outgoing>,
    pub events: Vec<OtrEvent>,
}

/// The result of handing libotr a message received from the network.
#[derive(Debug, Default)]
pub struct Received {
    /// Decrypted text for the user; `None` for OTR's own protocol traffic.
    pub message: Option<String>,
    /// Instance tag of the sender's client (v3), so two resources can be told apart.
    pub instance: Option<u32>,
    pub output: Output,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyGenState {
    Started,
    /// libgcrypt's progress ticks so far (prime candidates tested).
    Working {
        ticks: u64,
    },
    Done {
        fingerprint: String,
    },
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmpEvent {
    /// The peer started SMP with a question; answer with `smp_respond`.
    AskedQuestion(String),
    /// The peer started SMP without a question; answer with the shared secret.
    AskedSecret,
    InProgress(u16),
    Succeeded,
    Failed,
    /// Aborted by either side, or a protocol error / cheating attempt (we abort then).
    Aborted,
}

/// Problems with a received message; texts are ours, never the peer's, except where said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An encrypted message arrived but no session exists (we restarted?); AKE restarts.
    NotInPrivate,
    Unreadable,
    Malformed,
    SetupFailed,
    /// Our own OTR message came back to us.
    Reflected,
    /// The peer sent an unencrypted message; shown with a warning, it was never private.
    Unencrypted(String),
    /// The peer's OTR error text, stripped of control characters and cut to 200 chars.
    PeerError(String),
    Unrecognized,
    ForOtherInstance,
    EncryptionFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrEvent {
    KeyGeneration {
        account: AccountId,
        state: KeyGenState,
    },
    /// A message is held until the conversation is encrypted (AKE in progress).
    Waiting {
        account: AccountId,
        peer: String,
        held: usize,
    },
    GoneSecure {
        account: AccountId,
        peer: String,
        instance: u32,
        fingerprint: String,
        verified: bool,
        version: u32,
    },
    /// A new AKE completed with the keys we already had.
    StillSecure {
        account: AccountId,
        peer: String,
        instance: u32,
    },
    GoneInsecure {
        account: AccountId,
        peer: String,
        instance: u32,
    },
    /// The private conversation ended (the peer's end, or our own `end`): messages are held
    /// and no new AKE starts until the user (or the peer) starts one.
    SessionEnded { account: AccountId, peer: String },
    NewFingerprint {
        account: AccountId,
        peer: String,
        fingerprint: String,
    },
    Smp {
        account: AccountId,
        peer: String,
        instance: u32,
        event: SmpEvent,
    },
    /// Held messages dropped unsent because the AKE did not complete in time.
    Undelivered {
        account: AccountId,
        peer: String,
        count: usize,
    },
    Problem {
        account: AccountId,
        peer: String,
        problem: Problem,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtrError {
    #[error("unknown account {0}")]
    UnknownAccount(AccountId),
    #[error("group conversations are not end-to-end encrypted with OTR")]
    GroupTarget,
    #[error("the private conversation was ended by the contact; start a new one first")]
    SessionEnded,
    #[error("no private conversation with this contact")]
    NotEncrypted,
    #[error("too many messages are waiting for encryption")]
    HoldQueueFull,
    #[error("the message is too large")]
    TooLarge,
    #[error("messages from too many different senders in this session")]
    TooManySenders,
    #[error("the message contains a NUL character")]
    InvalidText,
    #[error("OTR key storage: {0}")]
    Storage(String),
    #[error("OTR library error (code {0})")]
    Library(u32),
    #[error("internal OTR error")]
    Internal,
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Xmpp => "xmpp",
        Protocol::Irc => "irc",
    }
}
