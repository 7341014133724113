//! libotr 4.1.1's `otrl_context_forget` frees a context but not its private part (728 bytes
//! each; found by the `otr_inbound` fuzz target under LeakSanitizer). libotr makes a context
//! for every sender it hears from, so a hostile server inventing senders grew timb's memory
//! by that much per sender and session. timb patches it (patches/): contexts made and
//! forgotten must leave nothing allocated, as glibc's allocator counts it.

use std::ffi::CString;
use std::ptr::null_mut;

use libotr_sys::*;

/// Bytes the allocator has handed out and not got back.
fn allocated() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().uordblks }
}

#[test]
fn a_forgotten_context_is_freed_whole() {
    // SAFETY: the libotr calls below follow its API: initialised once, a user state owned
    // by this test, contexts found (made) and forgotten while PLAINTEXT, strings that
    // outlive each call.
    unsafe {
        assert_eq!(
            otrl_init(OTRL_VERSION_MAJOR, OTRL_VERSION_MINOR, OTRL_VERSION_SUB),
            0
        );
        let us = otrl_userstate_create();
        let (account, protocol) = (c"me@example.test", c"xmpp");
        let cycle = |i: usize| {
            let user = CString::new(format!("sender{i}@evil.test")).unwrap();
            let context = otrl_context_find(
                us,
                user.as_ptr(),
                account.as_ptr(),
                protocol.as_ptr(),
                OTRL_INSTAG_MASTER,
                1,
                null_mut(),
                None,
                null_mut(),
            );
            assert!(!context.is_null(), "libotr made no context");
            assert_eq!(
                otrl_context_forget(context),
                0,
                "a PLAINTEXT context is forgotten"
            );
        };
        // The first ones may allocate what libgcrypt and libotr keep for good.
        (0..10).for_each(cycle);
        let before = allocated();
        const N: usize = 2_000;
        (10..10 + N).for_each(cycle);
        let grown = allocated().saturating_sub(before);
        otrl_userstate_free(us);
        // Unpatched, this is N × 728 bytes (1.4 MB); a few hundred bytes of allocator
        // noise are allowed, one leaked byte per context is not.
        assert!(
            grown < N,
            "{N} contexts made and forgotten left {grown} bytes allocated ({} per context)",
            grown / N
        );
    }
}
