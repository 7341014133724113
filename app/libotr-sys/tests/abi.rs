//! The hand-written bindings must match libotr's headers as the C compiler sees them.

use std::mem::{align_of, offset_of, size_of};

use libotr_sys::*;

fn probe() -> Vec<usize> {
    let mut v = vec![0usize; 256];
    // SAFETY: the probe writes at most `v.len()` values into `v`.
    let n = unsafe { timb_otr_abi_probe(v.as_mut_ptr(), v.len()) };
    assert!(n <= v.len());
    v.truncate(n);
    v
}

#[test]
fn struct_layouts_match_c() {
    let c = probe();
    let rust = [
        size_of::<ConnContext>(),
        offset_of!(ConnContext, next),
        offset_of!(ConnContext, context_priv),
        offset_of!(ConnContext, username),
        offset_of!(ConnContext, accountname),
        offset_of!(ConnContext, protocol),
        offset_of!(ConnContext, m_context),
        offset_of!(ConnContext, recent_rcvd_child),
        offset_of!(ConnContext, recent_sent_child),
        offset_of!(ConnContext, recent_child),
        offset_of!(ConnContext, our_instance),
        offset_of!(ConnContext, their_instance),
        offset_of!(ConnContext, msgstate),
        offset_of!(ConnContext, auth),
        offset_of!(ConnContext, fingerprint_root),
        offset_of!(ConnContext, active_fingerprint),
        offset_of!(ConnContext, sessionid),
        offset_of!(ConnContext, sessionid_len),
        offset_of!(ConnContext, sessionid_half),
        offset_of!(ConnContext, protocol_version),
        offset_of!(ConnContext, otr_offer),
        offset_of!(ConnContext, app_data),
        offset_of!(ConnContext, app_data_free),
        offset_of!(ConnContext, smstate),
        size_of::<OtrlAuthInfo>(),
        align_of::<OtrlAuthInfo>(),
        size_of::<Fingerprint>(),
        offset_of!(Fingerprint, fingerprint),
        offset_of!(Fingerprint, context),
        offset_of!(Fingerprint, trust),
        size_of::<OtrlMessageAppOps>(),
        offset_of!(OtrlMessageAppOps, policy),
        offset_of!(OtrlMessageAppOps, inject_message),
        offset_of!(OtrlMessageAppOps, new_fingerprint),
        offset_of!(OtrlMessageAppOps, max_message_size),
        offset_of!(OtrlMessageAppOps, otr_error_message),
        offset_of!(OtrlMessageAppOps, handle_smp_event),
        offset_of!(OtrlMessageAppOps, handle_msg_event),
        offset_of!(OtrlMessageAppOps, create_instag),
        offset_of!(OtrlMessageAppOps, timer_control),
        size_of::<OtrlTLV>(),
        offset_of!(OtrlTLV, len),
        offset_of!(OtrlTLV, data),
        offset_of!(OtrlTLV, next),
        size_of::<s_OtrlUserState>(),
        size_of::<OtrlMessageState>(),
        size_of::<OtrlSMPEvent>(),
        size_of::<OtrlMessageEvent>(),
        size_of::<gcry_error_t>(),
        size_of::<otrl_instag_t>(),
    ];
    for (i, (r, c)) in rust.iter().zip(&c).enumerate() {
        assert_eq!(r, c, "layout probe #{i} differs (Rust {r}, C {c})");
    }
}

#[test]
fn constants_match_c() {
    let c = probe();
    let rust: [usize; 28] = [
        OTRL_POLICY_ALWAYS as usize,
        OTRL_POLICY_ALLOW_V2 as usize,
        OTRL_POLICY_ALLOW_V3 as usize,
        OTRL_POLICY_REQUIRE_ENCRYPTION as usize,
        OTRL_POLICY_SEND_WHITESPACE_TAG as usize,
        OTRL_MSGSTATE_PLAINTEXT as usize,
        OTRL_MSGSTATE_ENCRYPTED as usize,
        OTRL_MSGSTATE_FINISHED as usize,
        OTRL_MSGEVENT_ENCRYPTION_REQUIRED as usize,
        OTRL_MSGEVENT_CONNECTION_ENDED as usize,
        OTRL_MSGEVENT_RCVDMSG_UNREADABLE as usize,
        OTRL_MSGEVENT_RCVDMSG_FOR_OTHER_INSTANCE as usize,
        OTRL_SMPEVENT_ASK_FOR_ANSWER as usize,
        OTRL_SMPEVENT_SUCCESS as usize,
        OTRL_SMPEVENT_FAILURE as usize,
        OTRL_FRAGMENT_SEND_ALL as usize,
        OTRL_FRAGMENT_SEND_SKIP as usize,
        OTRL_INSTAG_BEST as usize,
        OTRL_INSTAG_RECENT_RECEIVED as usize,
        OTRL_TLV_DISCONNECTED as usize,
        OTRL_PRIVKEY_FPRINT_HUMAN_LEN,
        OTRL_ERRCODE_MSG_MALFORMED as usize,
        (OTRL_VERSION_MAJOR * 10000 + OTRL_VERSION_MINOR * 100 + OTRL_VERSION_SUB) as usize,
        OTRL_MIN_VALID_INSTAG as usize,
        OTRL_SMPEVENT_CHEATED as usize,
        OTRL_SMPEVENT_ABORT as usize,
        OTRL_MSGEVENT_RCVDMSG_UNENCRYPTED as usize,
        OTRL_AUTHSTATE_NONE as usize,
    ];
    assert_eq!(
        c.len(),
        50 + rust.len(),
        "probe and test disagree on the value count"
    );
    for (i, (r, c)) in rust.iter().zip(&c[50..]).enumerate() {
        assert_eq!(r, c, "constant probe #{} differs (Rust {r}, C {c})", 50 + i);
    }
    // The policy we rely on: v2+v3, encryption required, no whitespace tag advertised.
    assert_eq!(OTRL_POLICY_ALWAYS & OTRL_POLICY_SEND_WHITESPACE_TAG, 0);
    assert_eq!(OTRL_POLICY_ALWAYS & OTRL_POLICY_ALLOW_V1, 0);
}

#[test]
fn links_the_pinned_libotr() {
    // SAFETY: otrl_init only checks versions and initialises libgcrypt.
    let err = unsafe { otrl_init(OTRL_VERSION_MAJOR, OTRL_VERSION_MINOR, OTRL_VERSION_SUB) };
    assert_eq!(err, 0);
    // SAFETY: returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(otrl_version()) };
    assert_eq!(v.to_str().unwrap(), "4.1.1");
}
