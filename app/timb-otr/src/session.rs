//! The single owner of a libotr userstate.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libotr_sys as sys;
use timb_core::{AccountId, Target};

use crate::callbacks::{self, human_fingerprint, lossy, AccountEntry, Shared};
use crate::store::{self, Paths};
use crate::{
    protocol_name, AccountConfig, KeyGenState, OtrError, OtrEvent, Output, Problem, Received,
    MAX_HELD_PER_PEER, MAX_PLAINTEXT_BYTES, MAX_WIRE_BYTES,
};

#[cfg(test)]
mod tests {
    use super::fragment_header;

    #[test]
    fn parses_fragment_headers() {
        assert_eq!(fragment_header("?OTR|5a7|6b8,1,3,abcd,"), Some((1, 3, 5)));
        assert_eq!(fragment_header("?OTR,2,2,xy,"), Some((2, 2, 3)));
        assert_eq!(fragment_header("?OTR:AAMD"), None);
        assert_eq!(fragment_header("?OTR|1|2,x,3,abc,"), None);
    }
}

/// The query we send to start an AKE: versions only, no text, no HTML.
pub const QUERY: &str = "?OTRv23?";
/// How long a held message waits for the AKE before it is dropped (never sent in clear).
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(120);
/// A query is repeated this often while messages are held, in case one was lost.
const REQUERY_INTERVAL: Duration = Duration::from_secs(10);

static INIT: Once = Once::new();
static INIT_ERR: AtomicU64 = AtomicU64::new(0);
static KEYGEN_TICKS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn gcry_progress(
    _data: *mut c_void,
    _what: *const c_char,
    _printchar: c_int,
    _current: c_int,
    _total: c_int,
) {
    // Called from the key generation thread; an atomic add cannot unwind.
    KEYGEN_TICKS.fetch_add(1, Ordering::Relaxed);
}

fn init_library() -> Result<(), OtrError> {
    INIT.call_once(|| {
        // SAFETY: called once per process before any other libotr call.
        let err = unsafe {
            sys::otrl_init(
                sys::OTRL_VERSION_MAJOR,
                sys::OTRL_VERSION_MINOR,
                sys::OTRL_VERSION_SUB,
            )
        };
        INIT_ERR.store(u64::from(err), Ordering::SeqCst);
        // SAFETY: registers a process-wide callback that only touches an atomic.
        unsafe { sys::gcry_set_progress_handler(Some(gcry_progress), ptr::null_mut()) };
    });
    match INIT_ERR.load(Ordering::SeqCst) {
        0 => Ok(()),
        e => Err(OtrError::Library(e as u32)),
    }
}

/// A message waiting for encryption; its bytes are wiped when it is sent or dropped.
struct Held {
    text: String,
    since: Instant,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

struct KeyGen {
    account: AccountId,
    newkey: *mut c_void,
    thread: Option<JoinHandle<u32>>,
    ticks_at_start: u64,
    last_reported: u64,
}

/// Encryption state of a conversation as the best (most secure, most recent) instance sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationState {
    Plaintext,
    Encrypted {
        instance: u32,
        fingerprint: String,
        verified: bool,
        version: u32,
    },
    /// Ended, by the peer or by us ([`OtrSession::end`]): messages are held, and no new AKE
    /// starts until [`OtrSession::start`] (or the peer starts one).
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFingerprint {
    pub fingerprint: String,
    pub verified: bool,
}

/// Owns one libotr userstate. Not `Send`: every libotr call happens on the creating thread.
pub struct OtrSession {
    shared: *mut Shared,
    ops: Box<sys::OtrlMessageAppOps>,
    held: HashMap<(AccountId, String), VecDeque<Held>>,
    last_query: HashMap<(AccountId, String), Instant>,
    keygens: Vec<KeyGen>,
    /// The peer instance that last sent us a readable message: replies go there, so with two
    /// logged-in clients the one the user is talking to gets the answer.
    last_instance: HashMap<(AccountId, String), u32>,
    /// Bytes of fragments libotr is accumulating per sender (libotr itself has no limit).
    fragment_bytes: HashMap<(AccountId, String), usize>,
    /// Senders each account has handed to libotr (see [`MAX_PEERS_PER_ACCOUNT`]).
    senders: HashMap<AccountId, std::collections::HashSet<String>>,
    /// Conversations we ended: libotr puts them back to plaintext, but they stay ended (no
    /// automatic AKE) until the user starts a new one or the peer does.
    ended: HashSet<(AccountId, String)>,
    hold_timeout: Duration,
    _not_send: PhantomData<*mut ()>,
}

impl OtrSession {
    /// Opens (creating owner-only) the OTR store in `dir`: private keys, instance tags and
    /// the fingerprints the user verified.
    pub fn open(dir: &Path, accounts: Vec<AccountConfig>) -> Result<OtrSession, OtrError> {
        Self::open_paths(Paths::new(dir)?, accounts)
    }

    /// A session whose private key, instance tags and fingerprints live in memory only
    /// (an account the user did not ask to remember): a new key each time, nothing on disk.
    pub fn open_in_memory(accounts: Vec<AccountConfig>) -> Result<OtrSession, OtrError> {
        Self::open_paths(Paths::in_memory()?, accounts)
    }

    fn open_paths(paths: Paths, accounts: Vec<AccountConfig>) -> Result<OtrSession, OtrError> {
        init_library()?;
        // SAFETY: plain constructor; freed in Drop.
        let us = unsafe { sys::otrl_userstate_create() };
        if us.is_null() {
            return Err(OtrError::Internal);
        }
        let shared = Box::into_raw(Box::new(Shared {
            us,
            paths,
            accounts: Vec::new(),
            outgoing: Vec::new(),
            events: Vec::new(),
            timer_interval: 0,
            went_secure: Vec::new(),
            smp_to_abort: Vec::new(),
            refused_injections: 0,
            keys_needed: Vec::new(),
            announce_end: false,
            requery: Vec::new(),
            panicked: false,
            store_error: false,
        }));
        let mut s = OtrSession {
            shared,
            ops: Box::new(callbacks::app_ops()),
            held: HashMap::new(),
            last_query: HashMap::new(),
            keygens: Vec::new(),
            last_instance: HashMap::new(),
            fragment_bytes: HashMap::new(),
            senders: HashMap::new(),
            ended: HashSet::new(),
            hold_timeout: DEFAULT_HOLD_TIMEOUT,
            _not_send: PhantomData,
        };
        for a in accounts {
            s.add_account(a)?;
        }
        s.load()?;
        Ok(s)
    }

    fn sh(&mut self) -> &mut Shared {
        // SAFETY: `shared` lives until Drop; no libotr call is running while we hold this.
        unsafe { &mut *self.shared }
    }

    fn us(&self) -> sys::OtrlUserState {
        // SAFETY: as above; reading a Copy field.
        unsafe { (*self.shared).us }
    }

    fn opdata(&self) -> *mut c_void {
        self.shared.cast()
    }

    fn load(&mut self) -> Result<(), OtrError> {
        let us = self.us();
        let paths = &self.sh().paths;
        let (privkey, instags, fps) = (
            paths.privkey.clone(),
            paths.instags.clone(),
            paths.fingerprints.clone(),
        );
        for (path, what) in [(&privkey, 0), (&instags, 1), (&fps, 2)] {
            if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
                continue;
            }
            let f = store::open_private_file(path)?;
            // SAFETY: valid userstate and an open stream.
            let err = unsafe {
                match what {
                    0 => sys::otrl_privkey_read_FILEp(us, f.as_ptr()),
                    1 => sys::otrl_instag_read_FILEp(us, f.as_ptr()),
                    _ => sys::otrl_privkey_read_fingerprints_FILEp(
                        us,
                        f.as_ptr(),
                        None,
                        ptr::null_mut(),
                    ),
                }
            };
            if err != 0 {
                return Err(OtrError::Storage(format!(
                    "cannot read {}",
                    file_name(path)
                )));
            }
        }
        Ok(())
    }

    pub fn add_account(&mut self, cfg: AccountConfig) -> Result<(), OtrError> {
        let name_c = CString::new(cfg.name.clone()).map_err(|_| OtrError::InvalidText)?;
        let proto_c: &'static std::ffi::CStr = match cfg.protocol {
            timb_core::Protocol::Xmpp => c"xmpp",
            timb_core::Protocol::Irc => c"irc",
        };
        debug_assert_eq!(proto_c.to_str().ok(), Some(protocol_name(cfg.protocol)));
        let sh = self.sh();
        sh.accounts.retain(|a| a.cfg.id != cfg.id);
        sh.accounts.push(AccountEntry {
            cfg,
            name_c,
            proto_c,
        });
        Ok(())
    }

    /// How long held messages wait for the AKE before being dropped unsent.
    pub fn set_hold_timeout(&mut self, d: Duration) {
        self.hold_timeout = d;
    }

    fn account(&self, id: AccountId) -> Result<(CString, &'static std::ffi::CStr), OtrError> {
        // SAFETY: short read-only access between libotr calls.
        let sh = unsafe { &*self.shared };
        sh.accounts
            .iter()
            .find(|a| a.cfg.id == id)
            .map(|a| (a.name_c.clone(), a.proto_c))
            .ok_or(OtrError::UnknownAccount(id))
    }

    /// Our own fingerprint for `account`, in libotr's human format, once a key exists.
    pub fn fingerprint(&self, account: AccountId) -> Option<String> {
        let (name, proto) = self.account(account).ok()?;
        let mut buf = [0 as c_char; sys::OTRL_PRIVKEY_FPRINT_HUMAN_LEN];
        // SAFETY: buffer of the documented length; valid userstate and strings.
        let r = unsafe {
            sys::otrl_privkey_fingerprint(
                self.us(),
                buf.as_mut_ptr(),
                name.as_ptr(),
                proto.as_ptr(),
            )
        };
        // SAFETY: on success libotr wrote a NUL-terminated string into buf.
        (!r.is_null()).then(|| unsafe { lossy(buf.as_ptr()) })
    }

    pub fn has_key(&self, account: AccountId) -> bool {
        self.fingerprint(account).is_some()
    }

    pub fn key_generation_running(&self, account: AccountId) -> bool {
        self.keygens.iter().any(|k| k.account == account)
    }

    /// Starts generating `account`'s private key on a background thread; [`poll`](Self::poll)
    /// reports progress and finishes it.
    pub fn generate_key(&mut self, account: AccountId) -> Result<Output, OtrError> {
        if self.key_generation_running(account) || self.has_key(account) {
            return Ok(Output::default());
        }
        let (name, proto) = self.account(account)?;
        let mut newkey: *mut c_void = ptr::null_mut();
        // SAFETY: valid userstate/strings; newkey receives libotr's pending-key handle.
        let err = unsafe {
            sys::otrl_privkey_generate_start(self.us(), name.as_ptr(), proto.as_ptr(), &mut newkey)
        };
        if err != 0 || newkey.is_null() {
            return Err(OtrError::Library(err));
        }
        let addr = newkey as usize;
        let thread = std::thread::Builder::new()
            .name("otr-keygen".into())
            .spawn(move || {
                // SAFETY: libotr documents generate_calculate as safe to run on another
                // thread; it only touches the pending key, which nothing else uses until
                // the thread is joined.
                unsafe { sys::otrl_privkey_generate_calculate(addr as *mut c_void) }
            })
            .map_err(|_| OtrError::Internal)?;
        let ticks = KEYGEN_TICKS.load(Ordering::Relaxed);
        self.keygens.push(KeyGen {
            account,
            newkey,
            thread: Some(thread),
            ticks_at_start: ticks,
            last_reported: 0,
        });
        Ok(Output {
            outgoing: Vec::new(),
            events: vec![OtrEvent::KeyGeneration {
                account,
                state: KeyGenState::Started,
            }],
        })
    }

    /// Generates the key and waits for it (tests, benchmarks, first-run wizards that wait
    /// anyway). Progress and queries for held messages are not reported on this path.
    pub fn generate_key_blocking(&mut self, account: AccountId) -> Result<String, OtrError> {
        self.generate_key(account)?;
        while self.key_generation_running(account) {
            std::thread::sleep(Duration::from_millis(5));
            let _ = self.poll_keygens();
        }
        self.fingerprint(account).ok_or(OtrError::Internal)
    }

    fn poll_keygens(&mut self) -> Output {
        let mut out = Output::default();
        let ticks = KEYGEN_TICKS.load(Ordering::Relaxed);
        let mut i = 0;
        while i < self.keygens.len() {
            let done = self.keygens[i]
                .thread
                .as_ref()
                .is_none_or(|t| t.is_finished());
            if !done {
                let k = &mut self.keygens[i];
                let t = ticks.saturating_sub(k.ticks_at_start);
                if t != k.last_reported {
                    k.last_reported = t;
                    out.events.push(OtrEvent::KeyGeneration {
                        account: k.account,
                        state: KeyGenState::Working { ticks: t },
                    });
                }
                i += 1;
                continue;
            }
            let mut k = self.keygens.swap_remove(i);
            let calc = k
                .thread
                .take()
                .map(|t| t.join().unwrap_or(u32::MAX))
                .unwrap_or(u32::MAX);
            let us = self.us();
            let state = if calc == 0 {
                let mut consumed = false;
                let paths = &self.sh().paths;
                let finished = paths.replace(&paths.privkey, |f| {
                    consumed = true;
                    // SAFETY: the calculation thread has been joined; newkey is consumed here.
                    unsafe { sys::otrl_privkey_generate_finish_FILEp(us, k.newkey, f) }
                });
                if !consumed {
                    // The file could not be created: release the key, or libotr would keep
                    // it pending and refuse every later generation for this account.
                    // SAFETY: joined thread; newkey is released exactly once.
                    unsafe { sys::otrl_privkey_generate_cancelled(us, k.newkey) };
                }
                match finished {
                    Ok(0) => match self.fingerprint(k.account) {
                        Some(fingerprint) => KeyGenState::Done { fingerprint },
                        None => KeyGenState::Failed,
                    },
                    _ => KeyGenState::Failed,
                }
            } else {
                // SAFETY: joined thread; newkey is released exactly once.
                unsafe { sys::otrl_privkey_generate_cancelled(us, k.newkey) };
                KeyGenState::Failed
            };
            k.newkey = ptr::null_mut();
            let done_ok = matches!(state, KeyGenState::Done { .. });
            out.events.push(OtrEvent::KeyGeneration {
                account: k.account,
                state,
            });
            if done_ok {
                // Conversations that were waiting for our key can start their AKE now.
                let waiting: Vec<String> = self
                    .held
                    .keys()
                    .filter(|(a, _)| *a == k.account)
                    .map(|(_, p)| p.clone())
                    .collect();
                for peer in waiting {
                    self.send_query(k.account, &peer, &mut out);
                }
            }
        }
        out
    }

    fn context(
        &self,
        account: AccountId,
        peer: &str,
        instance: u32,
    ) -> Option<*mut sys::ConnContext> {
        let (name, proto) = self.account(account).ok()?;
        let peer = CString::new(peer).ok()?;
        // SAFETY: valid userstate/strings; no context is created (add_if_missing = 0).
        let c = unsafe {
            sys::otrl_context_find(
                self.us(),
                peer.as_ptr(),
                name.as_ptr(),
                proto.as_ptr(),
                instance,
                0,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
            )
        };
        (!c.is_null()).then_some(c)
    }

    /// The instance a message to `peer` goes to: the one that spoke last if it is still
    /// encrypted, else libotr's best (most secure, most recently heard) instance.
    fn target_instance(&self, account: AccountId, peer: &str) -> u32 {
        if let Some(&inst) = self.last_instance.get(&(account, peer.to_string())) {
            if let Some(c) = self.context(account, peer, inst) {
                // SAFETY: live context.
                if unsafe { (*c).msgstate } == sys::OTRL_MSGSTATE_ENCRYPTED {
                    return inst;
                }
            }
        }
        sys::OTRL_INSTAG_BEST
    }

    /// The conversation's state as a send would see it.
    pub fn state(&self, account: AccountId, peer: &str) -> ConversationState {
        let inst = self.target_instance(account, peer);
        let Some(c) = self.context(account, peer, inst) else {
            if self.ended.contains(&(account, peer.to_string())) {
                return ConversationState::Finished;
            }
            return ConversationState::Plaintext;
        };
        // SAFETY: live context owned by our userstate.
        let c = unsafe { &*c };
        match c.msgstate {
            sys::OTRL_MSGSTATE_ENCRYPTED => {
                let (fingerprint, verified) = if c.active_fingerprint.is_null() {
                    (String::new(), false)
                } else {
                    // SAFETY: points into this context's fingerprint list, whose binary
                    // fingerprint is 20 bytes (or null).
                    unsafe {
                        let f = &*c.active_fingerprint;
                        let v = sys::otrl_context_is_fingerprint_trusted(c.active_fingerprint);
                        (human_fingerprint(f.fingerprint), v != 0)
                    }
                };
                ConversationState::Encrypted {
                    instance: c.their_instance,
                    fingerprint,
                    verified,
                    version: c.protocol_version,
                }
            }
            sys::OTRL_MSGSTATE_FINISHED => ConversationState::Finished,
            _ if self.ended.contains(&(account, peer.to_string())) => ConversationState::Finished,
            _ => ConversationState::Plaintext,
        }
    }

    /// Sends `text` to `peer`: encrypted now if the conversation is private; otherwise held
    /// (never sent in clear) while an AKE is started. In an ended conversation the message is
    /// held too, but no AKE starts until [`start`](Self::start).
    pub fn send(
        &mut self,
        account: AccountId,
        peer: &Target,
        text: &str,
    ) -> Result<Output, OtrError> {
        let Target::Direct(peer) = peer else {
            return Err(OtrError::GroupTarget);
        };
        self.account(account)?;
        if text.len() > MAX_PLAINTEXT_BYTES {
            return Err(OtrError::TooLarge);
        }
        if text.contains('\0') || peer.contains('\0') {
            return Err(OtrError::InvalidText);
        }
        let mut out = Output::default();
        match self.state(account, peer) {
            ConversationState::Encrypted { .. } => {
                self.encrypt(account, peer, text, &mut out)?;
            }
            ConversationState::Plaintext | ConversationState::Finished => {
                let q = self.held.entry((account, peer.clone())).or_default();
                if q.len() >= MAX_HELD_PER_PEER {
                    return Err(OtrError::HoldQueueFull);
                }
                q.push_back(Held {
                    text: text.to_string(),
                    since: Instant::now(),
                });
                let held = q.len();
                out.events.push(OtrEvent::Waiting {
                    account,
                    peer: peer.clone(),
                    held,
                });
                if !self.has_key(account) {
                    let g = self.generate_key(account)?;
                    out.events.extend(g.events);
                } else if self.state(account, peer) != ConversationState::Finished {
                    let recent = self
                        .last_query
                        .get(&(account, peer.clone()))
                        .is_some_and(|t| t.elapsed() < REQUERY_INTERVAL);
                    if !recent {
                        self.send_query(account, peer, &mut out);
                    }
                }
            }
        }
        self.after_call(&mut out)?;
        Ok(out)
    }

    /// Starts (or restarts) the AKE with `peer`, e.g. after either side ended the conversation.
    pub fn start(&mut self, account: AccountId, peer: &str) -> Result<Output, OtrError> {
        self.account(account)?;
        self.ended.remove(&(account, peer.to_string()));
        if !self.has_key(account) {
            return self.generate_key(account);
        }
        let mut out = Output::default();
        self.push_query(account, peer, &mut out);
        Ok(out)
    }

    /// Asks `peer` for an AKE, unless the conversation was ended: then only the user's
    /// [`start`](Self::start) (or the peer) begins a new one.
    fn send_query(&mut self, account: AccountId, peer: &str, out: &mut Output) {
        if self.state(account, peer) == ConversationState::Finished {
            return;
        }
        self.push_query(account, peer, out);
    }

    fn push_query(&mut self, account: AccountId, peer: &str, out: &mut Output) {
        self.last_query
            .insert((account, peer.to_string()), Instant::now());
        out.outgoing.push(crate::Outgoing {
            account,
            to: peer.to_string(),
            body: QUERY.into(),
        });
    }

    fn encrypt(
        &mut self,
        account: AccountId,
        peer: &str,
        text: &str,
        out: &mut Output,
    ) -> Result<(), OtrError> {
        let (name, proto) = self.account(account)?;
        let peer_c = CString::new(peer).map_err(|_| OtrError::InvalidText)?;
        let text_c = CString::new(text).map_err(|_| OtrError::InvalidText)?;
        let mut msg: *mut c_char = ptr::null_mut();
        // SAFETY: valid userstate, ops and opdata; strings outlive the call. With SEND_ALL
        // every fragment goes through inject_message, so `msg` is only freed here.
        let err = unsafe {
            sys::otrl_message_sending(
                self.us(),
                &*self.ops,
                self.opdata(),
                name.as_ptr(),
                proto.as_ptr(),
                peer_c.as_ptr(),
                self.target_instance(account, peer),
                text_c.as_ptr(),
                ptr::null_mut(),
                &mut msg,
                sys::OTRL_FRAGMENT_SEND_ALL,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
            )
        };
        // Wipe our copy of the plaintext.
        let mut bytes = text_c.into_bytes();
        bytes.fill(0);
        if !msg.is_null() {
            // SAFETY: allocated by libotr for us.
            unsafe { sys::otrl_message_free(msg) };
        }
        self.collect(out);
        if err != 0 {
            return Err(OtrError::Library(sys::gcry_err_code(err)));
        }
        Ok(())
    }

    /// Hands a message received from `from` to libotr.
    pub fn receive(
        &mut self,
        account: AccountId,
        from: &str,
        wire: &str,
    ) -> Result<Received, OtrError> {
        let (name, proto) = self.account(account)?;
        if wire.len() > MAX_WIRE_BYTES {
            return Err(OtrError::TooLarge);
        }
        let from_c = CString::new(from).map_err(|_| OtrError::InvalidText)?;
        let wire_c = CString::new(wire).map_err(|_| OtrError::InvalidText)?;
        self.admit_sender(account, from)?;
        self.limit_fragments(account, from, wire)?;
        let mut newmsg: *mut c_char = ptr::null_mut();
        let mut tlvs: *mut sys::OtrlTLV = ptr::null_mut();
        let mut ctx: *mut sys::ConnContext = ptr::null_mut();
        // SAFETY: valid userstate, ops and opdata; out-pointers are ours and freed below.
        let ignore = unsafe {
            sys::otrl_message_receiving(
                self.us(),
                &*self.ops,
                self.opdata(),
                name.as_ptr(),
                proto.as_ptr(),
                from_c.as_ptr(),
                wire_c.as_ptr(),
                &mut newmsg,
                &mut tlvs,
                &mut ctx,
                None,
                ptr::null_mut(),
            )
        };
        let mut r = Received::default();
        if !ctx.is_null() {
            // SAFETY: live context returned by libotr.
            let inst = unsafe { (*ctx).their_instance };
            r.instance = (inst >= sys::OTRL_MIN_VALID_INSTAG).then_some(inst);
        }
        if !tlvs.is_null() {
            // SAFETY: TLV list allocated by libotr, freed once.
            unsafe {
                if !sys::otrl_tlv_find(tlvs, sys::OTRL_TLV_DISCONNECTED).is_null() {
                    r.output.events.push(OtrEvent::SessionEnded {
                        account,
                        peer: from.to_string(),
                    });
                }
                sys::otrl_tlv_free(tlvs);
            }
        }
        if ignore == 0 {
            if newmsg.is_null() {
                // libotr left the text untouched: it was not OTR. Never present it as private.
                r.output.events.push(OtrEvent::Problem {
                    account,
                    peer: from.to_string(),
                    problem: Problem::Unencrypted(wire.to_string()),
                });
            } else {
                // SAFETY: non-null, a NUL-terminated string libotr allocated for us (freed below).
                r.message = Some(unsafe { lossy(newmsg) });
                if let Some(inst) = r.instance {
                    self.last_instance.insert((account, from.to_string()), inst);
                }
            }
        }
        if !newmsg.is_null() {
            // SAFETY: allocated by libotr for us.
            unsafe { sys::otrl_message_free(newmsg) };
        }
        self.after_call(&mut r.output)?;
        Ok(r)
    }

    /// libotr makes a conversation context for every sender it is handed and keeps it for
    /// the session (4.1.1 does not even free all of it when forgotten), so a server inventing
    /// senders could grow memory without end: a new sender beyond the cap is refused.
    /// Conversations the user starts are not counted.
    fn admit_sender(&mut self, account: AccountId, from: &str) -> Result<(), OtrError> {
        let known = self.senders.entry(account).or_default();
        if known.contains(from) {
            return Ok(());
        }
        if known.len() >= crate::MAX_PEERS_PER_ACCOUNT {
            return Err(OtrError::TooManySenders);
        }
        known.insert(from.to_string());
        Ok(())
    }

    /// libotr appends fragments to a buffer with no bound; a hostile peer could grow it
    /// without end. Fragmented messages are capped in count and total size per sender.
    fn limit_fragments(
        &mut self,
        account: AccountId,
        from: &str,
        wire: &str,
    ) -> Result<(), OtrError> {
        let Some((k, n, piece)) = fragment_header(wire) else {
            return Ok(());
        };
        let key = (account, from.to_string());
        if n == 0 || n > MAX_FRAGMENTS || k == 0 || k > n {
            self.fragment_bytes.remove(&key);
            return Err(OtrError::TooLarge);
        }
        let total = if k == 1 {
            piece
        } else {
            self.fragment_bytes.get(&key).copied().unwrap_or(0) + piece
        };
        if total > MAX_FRAGMENTED_BYTES {
            self.fragment_bytes.remove(&key);
            return Err(OtrError::TooLarge);
        }
        if k == n {
            self.fragment_bytes.remove(&key);
        } else {
            self.fragment_bytes.insert(key, total);
        }
        Ok(())
    }

    /// Ends the private conversation with every instance of `peer` (tells the peer). Reports
    /// [`OtrEvent::SessionEnded`] like the peer's end; the conversation stays ended (messages
    /// held, no automatic AKE) until [`start`](Self::start).
    pub fn end(&mut self, account: AccountId, peer: &str) -> Result<Output, OtrError> {
        let (name, proto) = self.account(account)?;
        let peer_c = CString::new(peer).map_err(|_| OtrError::InvalidText)?;
        self.sh().announce_end = true;
        // SAFETY: valid userstate/ops/opdata/strings.
        unsafe {
            sys::otrl_message_disconnect_all_instances(
                self.us(),
                &*self.ops,
                self.opdata(),
                name.as_ptr(),
                proto.as_ptr(),
                peer_c.as_ptr(),
            )
        };
        self.sh().announce_end = false;
        self.held.remove(&(account, peer.to_string()));
        self.ended.insert((account, peer.to_string()));
        let mut out = Output::default();
        self.after_call(&mut out)?;
        out.events.push(OtrEvent::SessionEnded {
            account,
            peer: peer.to_string(),
        });
        Ok(out)
    }

    fn encrypted_context(
        &self,
        account: AccountId,
        peer: &str,
    ) -> Result<*mut sys::ConnContext, OtrError> {
        let inst = self.target_instance(account, peer);
        let c = self
            .context(account, peer, inst)
            .ok_or(OtrError::NotEncrypted)?;
        // SAFETY: live context.
        if unsafe { (*c).msgstate } != sys::OTRL_MSGSTATE_ENCRYPTED {
            return Err(OtrError::NotEncrypted);
        }
        Ok(c)
    }

    /// Starts SMP (authentication by a shared secret), with or without a question.
    pub fn smp_start(
        &mut self,
        account: AccountId,
        peer: &str,
        question: Option<&str>,
        secret: &str,
    ) -> Result<Output, OtrError> {
        let c = self.encrypted_context(account, peer)?;
        let q = question
            .map(CString::new)
            .transpose()
            .map_err(|_| OtrError::InvalidText)?;
        // SAFETY: live encrypted context; secret slice outlives the call.
        unsafe {
            match &q {
                Some(q) => sys::otrl_message_initiate_smp_q(
                    self.us(),
                    &*self.ops,
                    self.opdata(),
                    c,
                    q.as_ptr(),
                    secret.as_ptr(),
                    secret.len(),
                ),
                None => sys::otrl_message_initiate_smp(
                    self.us(),
                    &*self.ops,
                    self.opdata(),
                    c,
                    secret.as_ptr(),
                    secret.len(),
                ),
            }
        }
        let mut out = Output::default();
        self.after_call(&mut out)?;
        Ok(out)
    }

    /// Answers the peer's SMP request with our secret.
    pub fn smp_respond(
        &mut self,
        account: AccountId,
        peer: &str,
        secret: &str,
    ) -> Result<Output, OtrError> {
        let c = self.encrypted_context(account, peer)?;
        // SAFETY: live encrypted context; secret outlives the call.
        unsafe {
            sys::otrl_message_respond_smp(
                self.us(),
                &*self.ops,
                self.opdata(),
                c,
                secret.as_ptr(),
                secret.len(),
            )
        };
        let mut out = Output::default();
        self.after_call(&mut out)?;
        Ok(out)
    }

    pub fn smp_abort(&mut self, account: AccountId, peer: &str) -> Result<Output, OtrError> {
        let c = self.encrypted_context(account, peer)?;
        // SAFETY: live context.
        unsafe { sys::otrl_message_abort_smp(self.us(), &*self.ops, self.opdata(), c) };
        let mut out = Output::default();
        self.after_call(&mut out)?;
        Ok(out)
    }

    /// Every fingerprint seen for `peer` (all instances), with its verification.
    pub fn peer_fingerprints(&self, account: AccountId, peer: &str) -> Vec<PeerFingerprint> {
        let mut v = Vec::new();
        let Some(c) = self.context(account, peer, sys::OTRL_INSTAG_MASTER) else {
            return v;
        };
        // SAFETY: master context's fingerprint list, walked between libotr calls.
        unsafe {
            let mut f = (*c).fingerprint_root.next;
            while !f.is_null() {
                v.push(PeerFingerprint {
                    fingerprint: human_fingerprint((*f).fingerprint),
                    verified: sys::otrl_context_is_fingerprint_trusted(f) != 0,
                });
                f = (*f).next;
            }
        }
        v
    }

    /// Marks a peer fingerprint (libotr's human format) as verified or not, and stores it.
    pub fn set_verified(
        &mut self,
        account: AccountId,
        peer: &str,
        fingerprint: &str,
        verified: bool,
    ) -> Result<(), OtrError> {
        let c = self
            .context(account, peer, sys::OTRL_INSTAG_MASTER)
            .ok_or(OtrError::NotEncrypted)?;
        let want: String = fingerprint.chars().filter(|c| !c.is_whitespace()).collect();
        // SAFETY: master context's list, between libotr calls; trust strings are copied by libotr.
        let found = unsafe {
            let mut f = (*c).fingerprint_root.next;
            let mut found = false;
            while !f.is_null() {
                let human: String = human_fingerprint((*f).fingerprint)
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                if human.eq_ignore_ascii_case(&want) {
                    let trust: &std::ffi::CStr = if verified { c"verified" } else { c"" };
                    sys::otrl_context_set_trust(f, trust.as_ptr());
                    found = true;
                }
                f = (*f).next;
            }
            found
        };
        if !found {
            return Err(OtrError::NotEncrypted);
        }
        let sh = self.sh();
        sh.write_verified_fingerprints();
        if std::mem::take(&mut sh.store_error) {
            return Err(OtrError::Storage("cannot write fingerprints".into()));
        }
        Ok(())
    }

    /// Seconds until libotr wants [`poll`](Self::poll) again (forward secrecy: stale keys are
    /// wiped there); `None` when nothing is pending. Key generation also needs polling.
    pub fn poll_interval(&self) -> Option<Duration> {
        // SAFETY: reading a Copy field between libotr calls.
        let t = unsafe { (*self.shared).timer_interval };
        if !self.keygens.is_empty() || !self.held.is_empty() {
            return Some(Duration::from_millis(200));
        }
        (t > 0).then(|| Duration::from_secs(u64::from(t)))
    }

    /// Timer work: libotr's poll, key generation progress, re-queries and expiry of held messages.
    pub fn poll(&mut self) -> Result<Output, OtrError> {
        let mut out = self.poll_keygens();
        // SAFETY: valid userstate/ops/opdata.
        unsafe { sys::otrl_message_poll(self.us(), &*self.ops, self.opdata()) };
        let now = Instant::now();
        let timeout = self.hold_timeout;
        let mut expired = Vec::new();
        let mut requery = Vec::new();
        for ((account, peer), q) in self.held.iter_mut() {
            let before = q.len();
            q.retain(|h| now.duration_since(h.since) < timeout);
            if q.len() < before {
                expired.push((*account, peer.clone(), before - q.len()));
            }
            let stale = self
                .last_query
                .get(&(*account, peer.clone()))
                .is_none_or(|t| now.duration_since(*t) >= REQUERY_INTERVAL);
            if !q.is_empty() && stale {
                requery.push((*account, peer.clone()));
            }
        }
        self.held.retain(|_, q| !q.is_empty());
        for (account, peer, count) in expired {
            out.events.push(OtrEvent::Undelivered {
                account,
                peer,
                count,
            });
        }
        for (account, peer) in requery {
            if self.has_key(account) {
                self.send_query(account, &peer, &mut out);
            }
        }
        self.after_call(&mut out)?;
        Ok(out)
    }

    /// Messages currently held for `peer` while the AKE runs.
    pub fn held_count(&self, account: AccountId, peer: &str) -> usize {
        self.held
            .get(&(account, peer.to_string()))
            .map_or(0, VecDeque::len)
    }

    fn collect(&mut self, out: &mut Output) {
        let sh = self.sh();
        out.outgoing.append(&mut sh.outgoing);
        out.events.append(&mut sh.events);
    }

    /// Drains what callbacks produced and does the work they deferred to us.
    fn after_call(&mut self, out: &mut Output) -> Result<(), OtrError> {
        self.collect(out);
        let sh = self.sh();
        let panicked = std::mem::take(&mut sh.panicked);
        let aborts = std::mem::take(&mut sh.smp_to_abort);
        let secure = std::mem::take(&mut sh.went_secure);
        let keys = std::mem::take(&mut sh.keys_needed);
        let requery = std::mem::take(&mut sh.requery);
        sh.store_error = false;
        for (account, peer, instance) in aborts {
            if let Some(c) = self.context(account, &peer, instance) {
                // SAFETY: live context.
                unsafe { sys::otrl_message_abort_smp(self.us(), &*self.ops, self.opdata(), c) };
                self.collect(out);
            }
        }
        for (account, peer) in secure {
            // A new AKE (the peer's or ours) ends the "ended" state.
            self.ended.remove(&(account, peer.clone()));
            if !matches!(
                self.state(account, &peer),
                ConversationState::Encrypted { .. }
            ) {
                continue;
            }
            if let Some(q) = self.held.remove(&(account, peer.clone())) {
                for h in q {
                    self.encrypt(account, &peer, &h.text, out)?;
                }
            }
        }
        for (account, peer) in requery {
            let recent = self
                .last_query
                .get(&(account, peer.clone()))
                .is_some_and(|t| t.elapsed() < REQUERY_INTERVAL);
            if !recent && self.has_key(account) {
                self.send_query(account, &peer, out);
            }
        }
        for account in keys {
            let g = self.generate_key(account)?;
            out.events.extend(g.events);
        }
        if panicked || std::mem::take(&mut self.sh().panicked) {
            return Err(OtrError::Internal);
        }
        Ok(())
    }

    /// Count of messages libotr tried to send that were not OTR messages (and were dropped).
    /// Stays 0 unless libotr misbehaves; tests assert on it.
    pub fn refused_injections(&self) -> usize {
        // SAFETY: reading a Copy field between libotr calls.
        unsafe { (*self.shared).refused_injections }
    }

    /// Whether keys and fingerprints are kept in memory only.
    pub fn in_memory(&self) -> bool {
        // SAFETY: `shared` lives as long as self.
        unsafe { (*self.shared).paths.in_memory_store() }
    }

    /// The store's folder (empty for a store in memory).
    pub fn dir(&self) -> &Path {
        // SAFETY: `shared` lives as long as self.
        unsafe { &(*self.shared).paths.dir }
    }
}

impl Drop for OtrSession {
    fn drop(&mut self) {
        for mut k in self.keygens.drain(..) {
            if let Some(t) = k.thread.take() {
                let _ = t.join();
            }
            // SAFETY: calculation finished; the pending key is released exactly once.
            unsafe { sys::otrl_privkey_generate_cancelled((*self.shared).us, k.newkey) };
        }
        // SAFETY: created in open(); nothing references the userstate or Shared after this.
        unsafe {
            sys::otrl_userstate_free((*self.shared).us);
            drop(Box::from_raw(self.shared));
        }
    }
}

/// Most fragments one message may have (an IRC message of 64 KiB needs ~160).
const MAX_FRAGMENTS: usize = 1000;
/// Largest reassembled message accepted from a peer.
const MAX_FRAGMENTED_BYTES: usize = 1024 * 1024;

/// `(k, n, piece length)` of a v2 (`?OTR,k,n,piece,`) or v3 (`?OTR|s|r,k,n,piece,`) fragment.
fn fragment_header(wire: &str) -> Option<(usize, usize, usize)> {
    let start = wire.find("?OTR")?;
    let rest = &wire[start + 4..];
    let rest = if let Some(r) = rest.strip_prefix('|') {
        // Skip "sender|receiver" instance tags.
        let (_, after) = r.split_once(',')?;
        after
    } else {
        rest.strip_prefix(',')?
    };
    let mut parts = rest.splitn(3, ',');
    let k = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    Some((k, n, parts.next()?.len()))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
