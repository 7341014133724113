//! libotr's `OtrlMessageAppOps` callbacks.
//!
//! Each is an `unsafe extern "C"` function whose body runs inside `catch_unwind`, so a Rust
//! panic never unwinds into C: it is recorded and turned into `OtrError::Internal` by the
//! caller. Our state arrives as `opdata`, a pointer to the session's [`Shared`], which nothing
//! else borrows while libotr runs.
//!
//! # Safety (every callback)
//!
//! Only libotr calls them, through [`app_ops`], synchronously from inside a session method on
//! the session's thread: `op` is the opdata that method passed (null or the live [`Shared`],
//! see [`shared`]), and every pointer argument is null or valid for the whole call (strings
//! NUL-terminated, contexts and fingerprints owned by the session's userstate). Each callback
//! turns its raw arguments into references once, at the top, in one documented `unsafe` block.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint, c_ushort, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use libotr_sys as sys;
use timb_core::{AccountId, Protocol};

use crate::store::Paths;
use crate::{AccountConfig, OtrEvent, Outgoing, Problem, SmpEvent};

pub(crate) struct AccountEntry {
    pub cfg: AccountConfig,
    pub name_c: CString,
    pub proto_c: &'static CStr,
}

/// Everything callbacks may touch; owned by the session, reached through `opdata`.
pub(crate) struct Shared {
    pub us: sys::OtrlUserState,
    pub paths: Paths,
    pub accounts: Vec<AccountEntry>,
    pub outgoing: Vec<Outgoing>,
    pub events: Vec<OtrEvent>,
    /// Seconds between `otrl_message_poll` calls libotr asked for; 0 = none needed.
    pub timer_interval: u32,
    /// Conversations that became encrypted during the last call: their held messages go out.
    pub went_secure: Vec<(AccountId, String)>,
    /// SMP exchanges libotr reported as cheated/errored; aborted after the call returns.
    pub smp_to_abort: Vec<(AccountId, String, u32)>,
    /// Anything libotr tried to send that was not an OTR message (must stay 0).
    pub refused_injections: usize,
    /// Accounts libotr needed a private key for (a peer started an AKE before we had one).
    pub keys_needed: Vec<AccountId>,
    /// Peers whose encrypted messages we could not read for lack of a session: re-query.
    pub requery: Vec<(AccountId, String)>,
    /// True only inside `OtrSession::end`: the disconnect notice goes to the peer.
    pub announce_end: bool,
    pub panicked: bool,
    pub store_error: bool,
}

impl Shared {
    pub fn account_by_c(&self, name: Option<&CStr>, proto: Option<&CStr>) -> Option<&AccountEntry> {
        let (name, proto) = (name?, proto?);
        self.accounts
            .iter()
            .find(|a| a.name_c.as_bytes() == name.to_bytes() && a.proto_c == proto)
    }

    /// Writes only fingerprints the user verified (manually or by SMP): the full list would
    /// be a contact list on disk, and unverified ones carry no trust worth keeping.
    pub fn write_verified_fingerprints(&mut self) {
        let mut out = String::new();
        // SAFETY: `us` is valid for the session's life; libotr's lists are only mutated by
        // libotr calls on this same thread, none of which is running during this walk.
        unsafe {
            let mut ctx = (*self.us).context_root;
            while !ctx.is_null() {
                let c = &*ctx;
                if c.their_instance == sys::OTRL_INSTAG_MASTER {
                    let mut fp = c.fingerprint_root.next;
                    while !fp.is_null() {
                        let f = &*fp;
                        let trust = unsafe_cstr(f.trust).map(|t| t.to_string_lossy().into_owned());
                        if let (Some(trust), false) = (trust, f.fingerprint.is_null()) {
                            let raw = std::slice::from_raw_parts(f.fingerprint, 20);
                            let fields = [
                                lossy(c.username),
                                lossy(c.accountname),
                                lossy(c.protocol),
                                hex(raw),
                                trust,
                            ];
                            let clean = fields
                                .iter()
                                .all(|s| !s.is_empty() && !s.contains(['\t', '\n', '\r']));
                            if clean {
                                out.push_str(&fields.join("\t"));
                                out.push('\n');
                            }
                        }
                        fp = f.next;
                    }
                }
                ctx = c.next;
            }
        }
        if self.paths.write_fingerprints(out.as_bytes()).is_err() {
            self.store_error = true;
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A C string from libotr, or `None` for null.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays valid and unchanged for `'a`.
unsafe fn unsafe_cstr<'a>(p: *const c_char) -> Option<&'a CStr> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null, and NUL-terminated and live for 'a by the caller's contract.
        Some(unsafe { CStr::from_ptr(p) })
    }
}

/// A C string from libotr as UTF-8 (lossy), empty for null.
///
/// # Safety
/// As [`unsafe_cstr`]: `p` is null or a NUL-terminated string valid for this call.
pub(crate) unsafe fn lossy(p: *const c_char) -> String {
    // SAFETY: the caller's contract is unsafe_cstr's.
    unsafe { unsafe_cstr(p) }
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// libotr's human fingerprint format: five groups of eight upper-case hex digits.
///
/// # Safety
/// `raw` is null or points to libotr's 20-byte binary fingerprint.
pub(crate) unsafe fn human_fingerprint(raw: *const u8) -> String {
    if raw.is_null() {
        return String::new();
    }
    let mut buf = [0 as c_char; sys::OTRL_PRIVKEY_FPRINT_HUMAN_LEN];
    // SAFETY: raw points to 20 bytes (the caller's contract), buf has the required length.
    unsafe { sys::otrl_privkey_hash_to_human(buf.as_mut_ptr(), raw) };
    // SAFETY: libotr wrote a NUL-terminated string into buf, which lives to the end of this fn.
    unsafe { lossy(buf.as_ptr()) }
}

/// Only OTR protocol messages may leave; queries are cut to the bare version tag so the
/// default query text (HTML, a link, our account name) is never sent.
pub(crate) fn sanitize_wire(body: &str) -> Option<String> {
    const PASS: [&str; 4] = ["?OTR:", "?OTR|", "?OTR,", "?OTR Error:"];
    if PASS.iter().any(|p| body.starts_with(p)) {
        return Some(body.to_string());
    }
    if let Some(rest) = body.strip_prefix("?OTRv") {
        let end = rest.find('?')?;
        let v = &rest[..end];
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("?OTRv{v}?"));
        }
    }
    None
}

fn clean_peer_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Our state behind libotr's `opdata`.
///
/// # Safety
/// `opdata` is null or the pointer a session method passed to libotr for this call: the
/// session's live [`Shared`], which nothing else borrows until the returned reference is
/// dropped (libotr calls us synchronously, on the owning thread, while the session method
/// holds no reference to it).
unsafe fn shared<'a>(opdata: *mut c_void) -> Option<&'a mut Shared> {
    // SAFETY: null or a live, unaliased `Shared`, by the caller's contract.
    unsafe { opdata.cast::<Shared>().as_mut() }
}

/// Runs `f` on our state (none: `default`); a panic is recorded and answered with `default`.
fn with<T>(shared: Option<&mut Shared>, default: T, f: impl FnOnce(&mut Shared) -> T) -> T {
    let Some(s) = shared else {
        return default;
    };
    match catch_unwind(AssertUnwindSafe(|| f(&mut *s))) {
        Ok(v) => v,
        Err(_) => {
            s.panicked = true;
            default
        }
    }
}

struct Ctx {
    account: AccountId,
    peer: String,
    instance: u32,
}

/// Who a libotr context is about.
///
/// # Safety
/// `ctx` is null or a live context of our userstate, whose strings are valid for this call.
unsafe fn ctx_info(s: &Shared, ctx: *mut sys::ConnContext) -> Option<Ctx> {
    // SAFETY: null or live, by the caller's contract.
    let c = unsafe { ctx.as_ref() }?;
    // SAFETY: a live context's strings are NUL-terminated and outlive this call.
    let (name, proto, peer) = unsafe {
        (
            unsafe_cstr(c.accountname),
            unsafe_cstr(c.protocol),
            lossy(c.username),
        )
    };
    let account = s.account_by_c(name, proto)?.cfg.id;
    Some(Ctx {
        account,
        peer,
        instance: c.their_instance,
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn policy(_op: *mut c_void, _ctx: *mut sys::ConnContext) -> sys::OtrlPolicy {
    // No state needed, and nothing here can panic: ALWAYS for every context.
    sys::OTRL_POLICY_ALWAYS
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn create_privkey(op: *mut c_void, account: *const c_char, proto: *const c_char) {
    // Generating here would block libotr's thread for the whole key generation; instead
    // the session starts it in the background once this call returns (this AKE fails, the
    // next one, after the key exists, succeeds).
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let (st, account, proto) = unsafe { (shared(op), unsafe_cstr(account), unsafe_cstr(proto)) };
    with(st, (), |s| {
        if let Some(id) = s.account_by_c(account, proto).map(|a| a.cfg.id) {
            s.keys_needed.push(id);
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn is_logged_in(
    op: *mut c_void,
    _a: *const c_char,
    _p: *const c_char,
    _r: *const c_char,
) -> c_int {
    // libotr asks only when ending a conversation, to decide whether to tell the peer.
    // We tell them exactly when the user ended it (`OtrSession::end`); other teardown
    // (shutdown, account removal) stays silent rather than messaging someone offline.
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, 0, |s| c_int::from(s.announce_end))
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn inject_message(
    op: *mut c_void,
    account: *const c_char,
    proto: *const c_char,
    recipient: *const c_char,
    message: *const c_char,
) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let (st, account, proto, to, body) = unsafe {
        (
            shared(op),
            unsafe_cstr(account),
            unsafe_cstr(proto),
            lossy(recipient),
            lossy(message),
        )
    };
    with(st, (), |s| {
        let Some(id) = s.account_by_c(account, proto).map(|a| a.cfg.id) else {
            s.refused_injections += 1;
            return;
        };
        match sanitize_wire(&body) {
            Some(body) => s.outgoing.push(Outgoing {
                account: id,
                to,
                body,
            }),
            None => s.refused_injections += 1,
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn update_context_list(_op: *mut c_void) {
    // Every state change that matters to the UI arrives as its own event (gone secure,
    // insecure, ended, new fingerprint), so the list itself needs no redraw signal.
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn new_fingerprint(
    op: *mut c_void,
    _us: sys::OtrlUserState,
    account: *const c_char,
    proto: *const c_char,
    username: *const c_char,
    fp: *mut u8,
) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let (st, account, proto, peer, fingerprint) = unsafe {
        (
            shared(op),
            unsafe_cstr(account),
            unsafe_cstr(proto),
            lossy(username),
            human_fingerprint(fp),
        )
    };
    with(st, (), |s| {
        if let Some(id) = s.account_by_c(account, proto).map(|a| a.cfg.id) {
            s.events.push(OtrEvent::NewFingerprint {
                account: id,
                peer,
                fingerprint,
            });
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn write_fingerprints(op: *mut c_void) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |s| s.write_verified_fingerprints())
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn gone_secure(op: *mut c_void, ctx: *mut sys::ConnContext) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |s| {
        // SAFETY: the module's contract: ctx is null or a live context.
        let Some(i) = (unsafe { ctx_info(s, ctx) }) else {
            return;
        };
        // SAFETY: non-null (ctx_info returned Some) and live.
        let c = unsafe { &*ctx };
        let (fingerprint, verified) = if c.active_fingerprint.is_null() {
            (String::new(), false)
        } else {
            // SAFETY: active_fingerprint points into this live context's fingerprint list,
            // whose binary fingerprint is 20 bytes (or null).
            unsafe {
                let f = &*c.active_fingerprint;
                let v = sys::otrl_context_is_fingerprint_trusted(c.active_fingerprint) != 0;
                (human_fingerprint(f.fingerprint), v)
            }
        };
        s.events.push(OtrEvent::GoneSecure {
            account: i.account,
            peer: i.peer.clone(),
            instance: i.instance,
            fingerprint,
            verified,
            version: c.protocol_version,
        });
        s.went_secure.push((i.account, i.peer));
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn gone_insecure(op: *mut c_void, ctx: *mut sys::ConnContext) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |s| {
        // SAFETY: the module's contract: ctx is null or a live context.
        if let Some(i) = unsafe { ctx_info(s, ctx) } {
            s.events.push(OtrEvent::GoneInsecure {
                account: i.account,
                peer: i.peer,
                instance: i.instance,
            });
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn still_secure(op: *mut c_void, ctx: *mut sys::ConnContext, _is_reply: c_int) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |s| {
        // SAFETY: the module's contract: ctx is null or a live context.
        if let Some(i) = unsafe { ctx_info(s, ctx) } {
            s.events.push(OtrEvent::StillSecure {
                account: i.account,
                peer: i.peer.clone(),
                instance: i.instance,
            });
            s.went_secure.push((i.account, i.peer));
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn max_message_size(op: *mut c_void, ctx: *mut sys::ConnContext) -> c_int {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, 0, |s| {
        // SAFETY: the module's contract: ctx is null or a live context.
        let Some(c) = (unsafe { ctx.as_ref() }) else {
            return 0;
        };
        // SAFETY: a live context's strings are NUL-terminated and outlive this call.
        let (name, proto) = unsafe { (unsafe_cstr(c.accountname), unsafe_cstr(c.protocol)) };
        let Some(a) = s.account_by_c(name, proto) else {
            return 0;
        };
        let size = a.cfg.max_message_size.unwrap_or(match a.cfg.protocol {
            Protocol::Irc => crate::IRC_MAX_MESSAGE_SIZE,
            Protocol::Xmpp => 0,
        });
        c_int::try_from(size).unwrap_or(0)
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn account_name(
    op: *mut c_void,
    account: *const c_char,
    _proto: *const c_char,
) -> *const c_char {
    // Used only in the query text, which sanitize_wire strips; still the account's own name
    // rather than anything about the user or the client.
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let (st, account) = unsafe { (shared(op), unsafe_cstr(account)) };
    with(st, ptr::null(), |_| {
        let name = account.map(CStr::to_owned).unwrap_or_default();
        name.into_raw().cast_const()
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn free_cstring(op: *mut c_void, p: *const c_char) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |_| {
        if !p.is_null() {
            // SAFETY: every string we hand libotr comes from CString::into_raw.
            drop(unsafe { CString::from_raw(p.cast_mut()) });
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn otr_error_message(
    op: *mut c_void,
    _ctx: *mut sys::ConnContext,
    code: sys::OtrlErrorCode,
) -> *const c_char {
    // Sent to the peer in clear inside "?OTR Error:": fixed text naming no client,
    // version, account or state beyond what the code already says.
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, ptr::null(), |_| {
        let text = match code {
            sys::OTRL_ERRCODE_ENCRYPTION_ERROR => "Encryption error.",
            sys::OTRL_ERRCODE_MSG_NOT_IN_PRIVATE => "No private conversation; restarting it.",
            sys::OTRL_ERRCODE_MSG_UNREADABLE => "Message could not be read.",
            sys::OTRL_ERRCODE_MSG_MALFORMED => "Malformed message.",
            _ => "Error.",
        };
        match CString::new(text) {
            Ok(c) => c.into_raw().cast_const(),
            Err(_) => ptr::null(),
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn resent_msg_prefix(
    op: *mut c_void,
    _ctx: *mut sys::ConnContext,
) -> *const c_char {
    // libotr never holds our messages (we only hand it text once encrypted), but if it ever
    // resends, the prefix is short and neutral.
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, ptr::null(), |_| match CString::new("[resent]") {
        Ok(c) => c.into_raw().cast_const(),
        Err(_) => ptr::null(),
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn handle_smp_event(
    op: *mut c_void,
    event: sys::OtrlSMPEvent,
    ctx: *mut sys::ConnContext,
    progress: c_ushort,
    question: *mut c_char,
) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let (st, question) = unsafe { (shared(op), lossy(question)) };
    with(st, (), |s| {
        // SAFETY: the module's contract: ctx is null or a live context.
        let Some(i) = (unsafe { ctx_info(s, ctx) }) else {
            return;
        };
        let ev = match event {
            sys::OTRL_SMPEVENT_ASK_FOR_ANSWER => {
                SmpEvent::AskedQuestion(clean_peer_text(&question))
            }
            sys::OTRL_SMPEVENT_ASK_FOR_SECRET => SmpEvent::AskedSecret,
            sys::OTRL_SMPEVENT_IN_PROGRESS => SmpEvent::InProgress(progress),
            sys::OTRL_SMPEVENT_SUCCESS => SmpEvent::Succeeded,
            sys::OTRL_SMPEVENT_FAILURE => SmpEvent::Failed,
            sys::OTRL_SMPEVENT_CHEATED | sys::OTRL_SMPEVENT_ERROR => {
                s.smp_to_abort.push((i.account, i.peer.clone(), i.instance));
                SmpEvent::Aborted
            }
            sys::OTRL_SMPEVENT_ABORT => SmpEvent::Aborted,
            _ => return,
        };
        s.events.push(OtrEvent::Smp {
            account: i.account,
            peer: i.peer,
            instance: i.instance,
            event: ev,
        });
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn handle_msg_event(
    op: *mut c_void,
    event: sys::OtrlMessageEvent,
    ctx: *mut sys::ConnContext,
    message: *const c_char,
    _err: sys::gcry_error_t,
) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let (st, message) = unsafe { (shared(op), lossy(message)) };
    with(st, (), |s| {
        // SAFETY: the module's contract: ctx is null or a live context.
        let Some(i) = (unsafe { ctx_info(s, ctx) }) else {
            return;
        };
        let problem = match event {
            sys::OTRL_MSGEVENT_CONNECTION_ENDED => {
                s.events.push(OtrEvent::SessionEnded {
                    account: i.account,
                    peer: i.peer,
                });
                return;
            }
            sys::OTRL_MSGEVENT_ENCRYPTION_REQUIRED | sys::OTRL_MSGEVENT_ENCRYPTION_ERROR => {
                Problem::EncryptionFailed
            }
            sys::OTRL_MSGEVENT_SETUP_ERROR => Problem::SetupFailed,
            sys::OTRL_MSGEVENT_MSG_REFLECTED => Problem::Reflected,
            sys::OTRL_MSGEVENT_RCVDMSG_NOT_IN_PRIVATE => {
                // The peer thinks we share a session (we restarted, or it did): libotr 4 sends
                // nothing back here, so we ask for a fresh AKE ourselves.
                s.requery.push((i.account, i.peer.clone()));
                Problem::NotInPrivate
            }
            sys::OTRL_MSGEVENT_RCVDMSG_UNREADABLE => Problem::Unreadable,
            sys::OTRL_MSGEVENT_RCVDMSG_MALFORMED => Problem::Malformed,
            sys::OTRL_MSGEVENT_RCVDMSG_GENERAL_ERR => Problem::PeerError(clean_peer_text(&message)),
            sys::OTRL_MSGEVENT_RCVDMSG_UNENCRYPTED => Problem::Unencrypted(message),
            sys::OTRL_MSGEVENT_RCVDMSG_UNRECOGNIZED => Problem::Unrecognized,
            sys::OTRL_MSGEVENT_RCVDMSG_FOR_OTHER_INSTANCE => Problem::ForOtherInstance,
            // Heartbeats and resends are routine; the UI has nothing to show for them.
            _ => return,
        };
        s.events.push(OtrEvent::Problem {
            account: i.account,
            peer: i.peer,
            problem,
        });
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn create_instag(op: *mut c_void, account: *const c_char, proto: *const c_char) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |s| {
        let us = s.us;
        let written = s.paths.replace(&s.paths.instags, |f| {
            // SAFETY: valid userstate, an open stream and NUL-terminated strings from libotr.
            unsafe { sys::otrl_instag_generate_FILEp(us, f, account, proto) }
        });
        if written != Ok(0) {
            s.store_error = true;
        }
    })
}

/// # Safety
/// Called by libotr only; see the module\'s safety contract.
unsafe extern "C" fn timer_control(op: *mut c_void, interval: c_uint) {
    // SAFETY: the module's contract for callbacks (libotr's opdata and arguments).
    let st = unsafe { shared(op) };
    with(st, (), |s| s.timer_interval = interval)
}

pub(crate) fn app_ops() -> sys::OtrlMessageAppOps {
    sys::OtrlMessageAppOps {
        policy: Some(policy),
        create_privkey: Some(create_privkey),
        is_logged_in: Some(is_logged_in),
        inject_message: Some(inject_message),
        update_context_list: Some(update_context_list),
        new_fingerprint: Some(new_fingerprint),
        write_fingerprints: Some(write_fingerprints),
        gone_secure: Some(gone_secure),
        gone_insecure: Some(gone_insecure),
        still_secure: Some(still_secure),
        max_message_size: Some(max_message_size),
        account_name: Some(account_name),
        account_name_free: Some(free_cstring),
        // No feature of timb uses OTR's extra symmetric key, so it is never requested or kept.
        received_symkey: None,
        otr_error_message: Some(otr_error_message),
        otr_error_message_free: Some(free_cstring),
        resent_msg_prefix: Some(resent_msg_prefix),
        resent_msg_prefix_free: Some(free_cstring),
        handle_smp_event: Some(handle_smp_event),
        handle_msg_event: Some(handle_msg_event),
        create_instag: Some(create_instag),
        // Messages are UTF-8 text end to end; nothing to convert.
        convert_msg: None,
        convert_free: None,
        timer_control: Some(timer_control),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_callback_returns_its_default_and_is_recorded() {
        let dir = std::env::temp_dir().join(format!("timb-otr-cb-{}", std::process::id()));
        let mut shared = Shared {
            us: ptr::null_mut(),
            paths: Paths::new(&dir).unwrap(),
            accounts: Vec::new(),
            outgoing: Vec::new(),
            events: Vec::new(),
            timer_interval: 0,
            went_secure: Vec::new(),
            smp_to_abort: Vec::new(),
            refused_injections: 0,
            keys_needed: Vec::new(),
            requery: Vec::new(),
            announce_end: false,
            panicked: false,
            store_error: false,
        };
        let op = ptr::addr_of_mut!(shared).cast::<c_void>();
        // SAFETY: op is the live `shared` above, not otherwise borrowed during the call.
        let st = unsafe { super::shared(op) };
        let v: c_int = with(st, 7, |_| panic!("test panic inside a callback"));
        assert_eq!(v, 7);
        assert!(shared.panicked);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_otr_messages_pass() {
        assert_eq!(sanitize_wire("hello").as_deref(), None);
        assert_eq!(sanitize_wire("?OTR:AAMD").as_deref(), Some("?OTR:AAMD"));
        assert_eq!(
            sanitize_wire("?OTR|1|2,1,2,x,").as_deref(),
            Some("?OTR|1|2,1,2,x,")
        );
        assert_eq!(
            sanitize_wire("?OTRv23?\n<b>me</b> has requested <a href=\"x\">OTR</a>").as_deref(),
            Some("?OTRv23?")
        );
        assert_eq!(sanitize_wire("?OTRvx? hi").as_deref(), None);
        assert_eq!(sanitize_wire(" ?OTR:x").as_deref(), None);
    }
}
