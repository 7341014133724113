//! Hand-written bindings for the part of libotr 4.1.1 timb uses.
//!
//! Written by hand (not bindgen) so builds need no libclang; `tests/abi.rs` compares every
//! struct layout and constant here with what the C compiler sees in libotr's own headers.
//! libotr, libgcrypt and libgpg-error are compiled from pinned sources by `build.rs` and
//! linked statically.

#![allow(non_camel_case_types, non_snake_case)]
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::os::raw::{c_char, c_int, c_uint, c_ushort, c_void};

pub type gcry_error_t = c_uint;
pub type otrl_instag_t = c_uint;
pub type OtrlPolicy = c_uint;
pub type OtrlUserState = *mut s_OtrlUserState;

/// C's stdio stream, opaque: the `*_FILEp` functions take one the caller opened (timb opens
/// them itself so that a Windows path is passed as UTF-16, not in the ANSI code page).
#[repr(C)]
pub struct FILE {
    _opaque: [u8; 0],
}

pub const OTRL_VERSION_MAJOR: c_uint = 4;
pub const OTRL_VERSION_MINOR: c_uint = 1;
pub const OTRL_VERSION_SUB: c_uint = 1;

pub const OTRL_POLICY_ALLOW_V1: OtrlPolicy = 0x01;
pub const OTRL_POLICY_ALLOW_V2: OtrlPolicy = 0x02;
pub const OTRL_POLICY_ALLOW_V3: OtrlPolicy = 0x04;
pub const OTRL_POLICY_REQUIRE_ENCRYPTION: OtrlPolicy = 0x08;
pub const OTRL_POLICY_SEND_WHITESPACE_TAG: OtrlPolicy = 0x10;
pub const OTRL_POLICY_WHITESPACE_START_AKE: OtrlPolicy = 0x20;
pub const OTRL_POLICY_ERROR_START_AKE: OtrlPolicy = 0x40;
pub const OTRL_POLICY_ALWAYS: OtrlPolicy = OTRL_POLICY_ALLOW_V2
    | OTRL_POLICY_ALLOW_V3
    | OTRL_POLICY_REQUIRE_ENCRYPTION
    | OTRL_POLICY_WHITESPACE_START_AKE
    | OTRL_POLICY_ERROR_START_AKE;

pub const OTRL_INSTAG_MASTER: otrl_instag_t = 0;
pub const OTRL_INSTAG_BEST: otrl_instag_t = 1;
pub const OTRL_INSTAG_RECENT: otrl_instag_t = 2;
pub const OTRL_INSTAG_RECENT_RECEIVED: otrl_instag_t = 3;
pub const OTRL_INSTAG_RECENT_SENT: otrl_instag_t = 4;
pub const OTRL_MIN_VALID_INSTAG: otrl_instag_t = 0x100;

pub const OTRL_TLV_PADDING: c_ushort = 0x0000;
pub const OTRL_TLV_DISCONNECTED: c_ushort = 0x0001;

pub const OTRL_PRIVKEY_FPRINT_HUMAN_LEN: usize = 45;

/// C enums are `int`-sized on every ABI timb targets; modelled as integers so an unknown
/// value from C can never be undefined behaviour on the Rust side.
pub type OtrlMessageState = c_uint;
pub const OTRL_MSGSTATE_PLAINTEXT: OtrlMessageState = 0;
pub const OTRL_MSGSTATE_ENCRYPTED: OtrlMessageState = 1;
pub const OTRL_MSGSTATE_FINISHED: OtrlMessageState = 2;

pub type OtrlAuthState = c_uint;
pub const OTRL_AUTHSTATE_NONE: OtrlAuthState = 0;

pub type OtrlErrorCode = c_uint;
pub const OTRL_ERRCODE_NONE: OtrlErrorCode = 0;
pub const OTRL_ERRCODE_ENCRYPTION_ERROR: OtrlErrorCode = 1;
pub const OTRL_ERRCODE_MSG_NOT_IN_PRIVATE: OtrlErrorCode = 2;
pub const OTRL_ERRCODE_MSG_UNREADABLE: OtrlErrorCode = 3;
pub const OTRL_ERRCODE_MSG_MALFORMED: OtrlErrorCode = 4;

pub type OtrlSMPEvent = c_uint;
pub const OTRL_SMPEVENT_NONE: OtrlSMPEvent = 0;
pub const OTRL_SMPEVENT_ERROR: OtrlSMPEvent = 1;
pub const OTRL_SMPEVENT_ABORT: OtrlSMPEvent = 2;
pub const OTRL_SMPEVENT_CHEATED: OtrlSMPEvent = 3;
pub const OTRL_SMPEVENT_ASK_FOR_ANSWER: OtrlSMPEvent = 4;
pub const OTRL_SMPEVENT_ASK_FOR_SECRET: OtrlSMPEvent = 5;
pub const OTRL_SMPEVENT_IN_PROGRESS: OtrlSMPEvent = 6;
pub const OTRL_SMPEVENT_SUCCESS: OtrlSMPEvent = 7;
pub const OTRL_SMPEVENT_FAILURE: OtrlSMPEvent = 8;

pub type OtrlMessageEvent = c_uint;
pub const OTRL_MSGEVENT_NONE: OtrlMessageEvent = 0;
pub const OTRL_MSGEVENT_ENCRYPTION_REQUIRED: OtrlMessageEvent = 1;
pub const OTRL_MSGEVENT_ENCRYPTION_ERROR: OtrlMessageEvent = 2;
pub const OTRL_MSGEVENT_CONNECTION_ENDED: OtrlMessageEvent = 3;
pub const OTRL_MSGEVENT_SETUP_ERROR: OtrlMessageEvent = 4;
pub const OTRL_MSGEVENT_MSG_REFLECTED: OtrlMessageEvent = 5;
pub const OTRL_MSGEVENT_MSG_RESENT: OtrlMessageEvent = 6;
pub const OTRL_MSGEVENT_RCVDMSG_NOT_IN_PRIVATE: OtrlMessageEvent = 7;
pub const OTRL_MSGEVENT_RCVDMSG_UNREADABLE: OtrlMessageEvent = 8;
pub const OTRL_MSGEVENT_RCVDMSG_MALFORMED: OtrlMessageEvent = 9;
pub const OTRL_MSGEVENT_LOG_HEARTBEAT_RCVD: OtrlMessageEvent = 10;
pub const OTRL_MSGEVENT_LOG_HEARTBEAT_SENT: OtrlMessageEvent = 11;
pub const OTRL_MSGEVENT_RCVDMSG_GENERAL_ERR: OtrlMessageEvent = 12;
pub const OTRL_MSGEVENT_RCVDMSG_UNENCRYPTED: OtrlMessageEvent = 13;
pub const OTRL_MSGEVENT_RCVDMSG_UNRECOGNIZED: OtrlMessageEvent = 14;
pub const OTRL_MSGEVENT_RCVDMSG_FOR_OTHER_INSTANCE: OtrlMessageEvent = 15;

pub type OtrlConvertType = c_uint;

pub type OtrlFragmentPolicy = c_uint;
pub const OTRL_FRAGMENT_SEND_SKIP: OtrlFragmentPolicy = 0;
pub const OTRL_FRAGMENT_SEND_ALL: OtrlFragmentPolicy = 1;
pub const OTRL_FRAGMENT_SEND_ALL_BUT_FIRST: OtrlFragmentPolicy = 2;
pub const OTRL_FRAGMENT_SEND_ALL_BUT_LAST: OtrlFragmentPolicy = 3;

pub type OtrlSessionIdHalf = c_uint;

#[repr(C)]
pub struct s_OtrlUserState {
    pub context_root: *mut ConnContext,
    pub privkey_root: *mut c_void,
    pub instag_root: *mut c_void,
    pub pending_root: *mut c_void,
    pub timer_running: c_int,
}

/// libotr-internal AKE state, embedded by value in `ConnContext`; only its size and
/// alignment matter to us.
#[repr(C, align(8))]
pub struct OtrlAuthInfo {
    pub authstate: OtrlAuthState,
    _opaque: [u8; 252],
}

#[repr(C)]
pub struct Fingerprint {
    pub next: *mut Fingerprint,
    pub tous: *mut *mut Fingerprint,
    /// 20 bytes, or NULL for the list root.
    pub fingerprint: *mut u8,
    pub context: *mut ConnContext,
    /// NULL or "" means unverified; any other string is the trust label.
    pub trust: *mut c_char,
}

#[repr(C)]
pub struct ConnContext {
    pub next: *mut ConnContext,
    pub tous: *mut *mut ConnContext,
    pub context_priv: *mut c_void,
    pub username: *mut c_char,
    pub accountname: *mut c_char,
    pub protocol: *mut c_char,
    pub m_context: *mut ConnContext,
    pub recent_rcvd_child: *mut ConnContext,
    pub recent_sent_child: *mut ConnContext,
    pub recent_child: *mut ConnContext,
    pub our_instance: otrl_instag_t,
    pub their_instance: otrl_instag_t,
    pub msgstate: OtrlMessageState,
    pub auth: OtrlAuthInfo,
    pub fingerprint_root: Fingerprint,
    pub active_fingerprint: *mut Fingerprint,
    pub sessionid: [u8; 20],
    pub sessionid_len: usize,
    pub sessionid_half: OtrlSessionIdHalf,
    pub protocol_version: c_uint,
    pub otr_offer: c_uint,
    pub app_data: *mut c_void,
    pub app_data_free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub smstate: *mut c_void,
}

#[repr(C)]
pub struct OtrlTLV {
    pub type_: c_ushort,
    pub len: c_ushort,
    pub data: *mut u8,
    pub next: *mut OtrlTLV,
}

pub type AddAppData = Option<unsafe extern "C" fn(data: *mut c_void, context: *mut ConnContext)>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct OtrlMessageAppOps {
    pub policy: Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext) -> OtrlPolicy>,
    pub create_privkey: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char)>,
    pub is_logged_in: Option<
        unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *const c_char) -> c_int,
    >,
    pub inject_message: Option<
        unsafe extern "C" fn(
            *mut c_void,
            *const c_char,
            *const c_char,
            *const c_char,
            *const c_char,
        ),
    >,
    pub update_context_list: Option<unsafe extern "C" fn(*mut c_void)>,
    pub new_fingerprint: Option<
        unsafe extern "C" fn(
            *mut c_void,
            OtrlUserState,
            *const c_char,
            *const c_char,
            *const c_char,
            *mut u8,
        ),
    >,
    pub write_fingerprints: Option<unsafe extern "C" fn(*mut c_void)>,
    pub gone_secure: Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext)>,
    pub gone_insecure: Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext)>,
    pub still_secure: Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext, c_int)>,
    pub max_message_size: Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext) -> c_int>,
    pub account_name:
        Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *const c_char>,
    pub account_name_free: Option<unsafe extern "C" fn(*mut c_void, *const c_char)>,
    pub received_symkey: Option<
        unsafe extern "C" fn(*mut c_void, *mut ConnContext, c_uint, *const u8, usize, *const u8),
    >,
    pub otr_error_message:
        Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext, OtrlErrorCode) -> *const c_char>,
    pub otr_error_message_free: Option<unsafe extern "C" fn(*mut c_void, *const c_char)>,
    pub resent_msg_prefix:
        Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext) -> *const c_char>,
    pub resent_msg_prefix_free: Option<unsafe extern "C" fn(*mut c_void, *const c_char)>,
    pub handle_smp_event: Option<
        unsafe extern "C" fn(*mut c_void, OtrlSMPEvent, *mut ConnContext, c_ushort, *mut c_char),
    >,
    pub handle_msg_event: Option<
        unsafe extern "C" fn(
            *mut c_void,
            OtrlMessageEvent,
            *mut ConnContext,
            *const c_char,
            gcry_error_t,
        ),
    >,
    pub create_instag: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char)>,
    pub convert_msg: Option<
        unsafe extern "C" fn(
            *mut c_void,
            *mut ConnContext,
            OtrlConvertType,
            *mut *mut c_char,
            *const c_char,
        ),
    >,
    pub convert_free: Option<unsafe extern "C" fn(*mut c_void, *mut ConnContext, *mut c_char)>,
    pub timer_control: Option<unsafe extern "C" fn(*mut c_void, c_uint)>,
}

/// libgcrypt's progress callback: `(data, what, printchar, current, total)`.
pub type gcry_handler_progress_t =
    Option<unsafe extern "C" fn(*mut c_void, *const c_char, c_int, c_int, c_int)>;

extern "C" {
    pub fn otrl_init(ver_major: c_uint, ver_minor: c_uint, ver_sub: c_uint) -> gcry_error_t;
    pub fn otrl_version() -> *const c_char;

    pub fn otrl_userstate_create() -> OtrlUserState;
    pub fn otrl_userstate_free(us: OtrlUserState);

    pub fn otrl_privkey_fingerprint(
        us: OtrlUserState,
        fingerprint: *mut c_char,
        accountname: *const c_char,
        protocol: *const c_char,
    ) -> *mut c_char;
    pub fn otrl_privkey_hash_to_human(human: *mut c_char, hash: *const u8);
    pub fn otrl_privkey_generate_start(
        us: OtrlUserState,
        accountname: *const c_char,
        protocol: *const c_char,
        newkeyp: *mut *mut c_void,
    ) -> gcry_error_t;
    pub fn otrl_privkey_generate_calculate(newkey: *mut c_void) -> gcry_error_t;
    pub fn otrl_privkey_generate_cancelled(us: OtrlUserState, newkey: *mut c_void);
    // Only the stream forms of libotr's file functions are bound: the path forms call
    // fopen, which on Windows reads the path in the ANSI code page (timb opens the files,
    // timb-otr's store.rs).
    pub fn otrl_privkey_read_FILEp(us: OtrlUserState, privf: *mut FILE) -> gcry_error_t;
    /// `privf` must be open for reading and writing: libotr writes every key into it, then
    /// reads the file back.
    pub fn otrl_privkey_generate_finish_FILEp(
        us: OtrlUserState,
        newkey: *mut c_void,
        privf: *mut FILE,
    ) -> gcry_error_t;
    pub fn otrl_privkey_read_fingerprints_FILEp(
        us: OtrlUserState,
        storef: *mut FILE,
        add_app_data: AddAppData,
        data: *mut c_void,
    ) -> gcry_error_t;
    pub fn otrl_instag_read_FILEp(us: OtrlUserState, instf: *mut FILE) -> gcry_error_t;
    pub fn otrl_instag_generate_FILEp(
        us: OtrlUserState,
        instf: *mut FILE,
        accountname: *const c_char,
        protocol: *const c_char,
    ) -> gcry_error_t;

    pub fn otrl_message_free(message: *mut c_char);
    pub fn otrl_message_sending(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        accountname: *const c_char,
        protocol: *const c_char,
        recipient: *const c_char,
        instag: otrl_instag_t,
        original_msg: *const c_char,
        tlvs: *mut OtrlTLV,
        messagep: *mut *mut c_char,
        frag_policy: OtrlFragmentPolicy,
        contextp: *mut *mut ConnContext,
        add_appdata: AddAppData,
        data: *mut c_void,
    ) -> gcry_error_t;
    pub fn otrl_message_receiving(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        accountname: *const c_char,
        protocol: *const c_char,
        sender: *const c_char,
        message: *const c_char,
        newmessagep: *mut *mut c_char,
        tlvsp: *mut *mut OtrlTLV,
        contextp: *mut *mut ConnContext,
        add_appdata: AddAppData,
        data: *mut c_void,
    ) -> c_int;
    pub fn otrl_message_disconnect(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        accountname: *const c_char,
        protocol: *const c_char,
        username: *const c_char,
        instance: otrl_instag_t,
    );
    pub fn otrl_message_disconnect_all_instances(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        accountname: *const c_char,
        protocol: *const c_char,
        username: *const c_char,
    );
    pub fn otrl_message_initiate_smp(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        context: *mut ConnContext,
        secret: *const u8,
        secretlen: usize,
    );
    pub fn otrl_message_initiate_smp_q(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        context: *mut ConnContext,
        question: *const c_char,
        secret: *const u8,
        secretlen: usize,
    );
    pub fn otrl_message_respond_smp(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        context: *mut ConnContext,
        secret: *const u8,
        secretlen: usize,
    );
    pub fn otrl_message_abort_smp(
        us: OtrlUserState,
        ops: *const OtrlMessageAppOps,
        opdata: *mut c_void,
        context: *mut ConnContext,
    );
    pub fn otrl_message_poll_get_default_interval(us: OtrlUserState) -> c_uint;
    pub fn otrl_message_poll(us: OtrlUserState, ops: *const OtrlMessageAppOps, opdata: *mut c_void);

    pub fn otrl_context_find(
        us: OtrlUserState,
        user: *const c_char,
        accountname: *const c_char,
        protocol: *const c_char,
        their_instance: otrl_instag_t,
        add_if_missing: c_int,
        addedp: *mut c_int,
        add_app_data: AddAppData,
        data: *mut c_void,
    ) -> *mut ConnContext;
    /// Forgets a PLAINTEXT context (and its children); 0 on success. timb's patch makes it
    /// free the context's private part too (patches/).
    pub fn otrl_context_forget(context: *mut ConnContext) -> c_int;
    pub fn otrl_context_is_fingerprint_trusted(fprint: *mut Fingerprint) -> c_int;
    pub fn otrl_context_set_trust(fprint: *mut Fingerprint, trust: *const c_char);
    pub fn otrl_context_find_fingerprint(
        context: *mut ConnContext,
        fingerprint: *mut u8,
        add_if_missing: c_int,
        addedp: *mut c_int,
    ) -> *mut Fingerprint;

    pub fn otrl_tlv_find(tlvs: *mut OtrlTLV, type_: c_ushort) -> *mut OtrlTLV;
    pub fn otrl_tlv_free(tlv: *mut OtrlTLV);

    pub fn gcry_set_progress_handler(cb: gcry_handler_progress_t, cb_data: *mut c_void);
    pub fn gcry_strerror(err: gcry_error_t) -> *const c_char;

    /// Test-only probe from csrc/abi_probe.c: the C compiler's sizes, offsets and constants.
    pub fn timb_otr_abi_probe(out: *mut usize, n: usize) -> usize;
}

/// `gcry_err_code`: the low 16 bits of a gcrypt error (libgcrypt defines it inline).
pub fn gcry_err_code(err: gcry_error_t) -> c_uint {
    err & 0xffff
}
