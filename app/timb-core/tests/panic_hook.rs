//! The panic hook prints where a panic happened, never what it carried.
//!
//! The child test panics with a secret message text; the parent runs it as a
//! separate process (this same test binary) and reads its stderr.

use std::process::Command;

const SECRET: &str = "meet me at the north gate at 6, bring the papers";
const CHILD: &str = "child_panics_with_a_message_text";

/// Run only by `a_panic_does_not_print_its_message`, in its own process.
#[test]
#[ignore = "child process of a_panic_does_not_print_its_message"]
fn child_panics_with_a_message_text() {
    timb_core::panic::install("timb");
    // As a parser's slicing panic would: the payload quotes the peer's text.
    let said = String::from(SECRET);
    let n = said.len() + 1;
    let _ = &said[..n];
}

#[test]
fn a_panic_does_not_print_its_message() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The child really ran and really panicked ...
    assert!(
        stdout.contains("1 failed") || stdout.contains("FAILED"),
        "the child test did not run and fail:\n{stdout}\n{stderr}"
    );
    // ... the hook said where ...
    assert!(
        stderr.contains("timb: panic at tests/panic_hook.rs:")
            || stderr.contains("timb: panic at app/timb-core/tests/panic_hook.rs:"),
        "no location in:\n{stderr}"
    );
    assert!(stderr.contains(timb_core::panic::GENERIC_LINE), "{stderr}");
    // ... and nothing of what was said reached stderr or stdout.
    for part in [SECRET, "north gate", "papers"] {
        assert!(
            !stderr.contains(part),
            "the secret leaked to stderr:\n{stderr}"
        );
        assert!(
            !stdout.contains(part),
            "the secret leaked to stdout:\n{stdout}"
        );
    }
}

/// The same check in process, over every panic payload type: a formatted
/// message, a `&str`, and a `String`.
#[test]
fn the_report_never_contains_the_payload() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        sink.lock()
            .unwrap()
            .push(timb_core::panic::report("timb", info));
    }));
    let _ = std::panic::catch_unwind(|| panic!("{SECRET}"));
    let _ = std::panic::catch_unwind(|| std::panic::panic_any(SECRET));
    let _ = std::panic::catch_unwind(|| std::panic::panic_any(SECRET.to_owned()));
    std::panic::set_hook(prev);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for r in seen.iter() {
        assert!(r.contains("panic_hook.rs:"), "{r}");
        assert!(!r.contains("north gate"), "{r}");
    }
}
