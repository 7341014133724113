/* Reports the C compiler's view of libotr's ABI so a Rust test can compare it with the
 * hand-written bindings (src/lib.rs). Only referenced by tests; the linker drops it otherwise. */
#include <stddef.h>
#include <gcrypt.h>
#include "proto.h"
#include "message.h"
#include "context.h"
#include "privkey.h"
#include "userstate.h"
#include "instag.h"
#include "tlv.h"
#include "sm.h"

#define N(x) (size_t)(x)
static const size_t values[] = {
    /* 0 */ sizeof(ConnContext),
    offsetof(ConnContext, next),
    offsetof(ConnContext, context_priv),
    offsetof(ConnContext, username),
    offsetof(ConnContext, accountname),
    offsetof(ConnContext, protocol),
    offsetof(ConnContext, m_context),
    offsetof(ConnContext, recent_rcvd_child),
    offsetof(ConnContext, recent_sent_child),
    offsetof(ConnContext, recent_child),
    /* 10 */ offsetof(ConnContext, our_instance),
    offsetof(ConnContext, their_instance),
    offsetof(ConnContext, msgstate),
    offsetof(ConnContext, auth),
    offsetof(ConnContext, fingerprint_root),
    offsetof(ConnContext, active_fingerprint),
    offsetof(ConnContext, sessionid),
    offsetof(ConnContext, sessionid_len),
    offsetof(ConnContext, sessionid_half),
    offsetof(ConnContext, protocol_version),
    /* 20 */ offsetof(ConnContext, otr_offer),
    offsetof(ConnContext, app_data),
    offsetof(ConnContext, app_data_free),
    offsetof(ConnContext, smstate),
    sizeof(OtrlAuthInfo),
    _Alignof(OtrlAuthInfo),
    sizeof(Fingerprint),
    offsetof(Fingerprint, fingerprint),
    offsetof(Fingerprint, context),
    offsetof(Fingerprint, trust),
    /* 30 */ sizeof(OtrlMessageAppOps),
    offsetof(OtrlMessageAppOps, policy),
    offsetof(OtrlMessageAppOps, inject_message),
    offsetof(OtrlMessageAppOps, new_fingerprint),
    offsetof(OtrlMessageAppOps, max_message_size),
    offsetof(OtrlMessageAppOps, otr_error_message),
    offsetof(OtrlMessageAppOps, handle_smp_event),
    offsetof(OtrlMessageAppOps, handle_msg_event),
    offsetof(OtrlMessageAppOps, create_instag),
    offsetof(OtrlMessageAppOps, timer_control),
    /* 40 */ sizeof(OtrlTLV),
    offsetof(OtrlTLV, len),
    offsetof(OtrlTLV, data),
    offsetof(OtrlTLV, next),
    sizeof(struct s_OtrlUserState),
    sizeof(OtrlMessageState),
    sizeof(OtrlSMPEvent),
    sizeof(OtrlMessageEvent),
    sizeof(gcry_error_t),
    sizeof(otrl_instag_t),
    /* 50 */ N(OTRL_POLICY_ALWAYS),
    N(OTRL_POLICY_ALLOW_V2),
    N(OTRL_POLICY_ALLOW_V3),
    N(OTRL_POLICY_REQUIRE_ENCRYPTION),
    N(OTRL_POLICY_SEND_WHITESPACE_TAG),
    N(OTRL_MSGSTATE_PLAINTEXT),
    N(OTRL_MSGSTATE_ENCRYPTED),
    N(OTRL_MSGSTATE_FINISHED),
    N(OTRL_MSGEVENT_ENCRYPTION_REQUIRED),
    N(OTRL_MSGEVENT_CONNECTION_ENDED),
    /* 60 */ N(OTRL_MSGEVENT_RCVDMSG_UNREADABLE),
    N(OTRL_MSGEVENT_RCVDMSG_FOR_OTHER_INSTANCE),
    N(OTRL_SMPEVENT_ASK_FOR_ANSWER),
    N(OTRL_SMPEVENT_SUCCESS),
    N(OTRL_SMPEVENT_FAILURE),
    N(OTRL_FRAGMENT_SEND_ALL),
    N(OTRL_FRAGMENT_SEND_SKIP),
    N(OTRL_INSTAG_BEST),
    N(OTRL_INSTAG_RECENT_RECEIVED),
    N(OTRL_TLV_DISCONNECTED),
    /* 70 */ N(OTRL_PRIVKEY_FPRINT_HUMAN_LEN),
    N(OTRL_ERRCODE_MSG_MALFORMED),
    N(OTRL_VERSION_MAJOR * 10000 + OTRL_VERSION_MINOR * 100 + OTRL_VERSION_SUB),
    N(OTRL_MIN_VALID_INSTAG),
    N(OTRL_SMPEVENT_CHEATED),
    N(OTRL_SMPEVENT_ABORT),
    N(OTRL_MSGEVENT_RCVDMSG_UNENCRYPTED),
    N(OTRL_AUTHSTATE_NONE),
};

size_t timb_otr_abi_probe(size_t *out, size_t n) {
    size_t count = sizeof(values) / sizeof(values[0]);
    for (size_t i = 0; i < n && i < count; i++) out[i] = values[i];
    return count;
}
