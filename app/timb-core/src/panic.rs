//! A panic hook that never prints the panic's message.
//!
//! The default hook writes the payload to stderr, and a payload can quote what
//! a peer sent (a slicing panic in a parser shows the string it sliced), while
//! desktop launchers send stderr to the journal. [`install`] replaces it with
//! one that prints only where the panic happened and a fixed sentence. Every
//! binary that handles what a user or a peer says installs it first thing in
//! `main`; tests may install it too (see `tests/panic_hook.rs`).

use std::io::Write;
use std::panic::PanicHookInfo;

/// The fixed sentence printed for every panic.
pub const GENERIC_LINE: &str =
    "internal error (a bug); its details are not shown because they may contain what was said";

/// What the hook prints for a panic at `location`: `program`, the location,
/// the generic line. Nothing taken from the panic's payload.
pub fn report(program: &str, info: &PanicHookInfo<'_>) -> String {
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_else(|| "an unknown location".to_owned());
    format!("{program}: panic at {location}: {GENERIC_LINE}\n")
}

/// Replaces the process's panic hook with one that prints [`report`] to
/// stderr: never the payload, never a backtrace (whose frames are fine, but
/// `RUST_BACKTRACE` would also bring the default hook's message back).
pub fn install(program: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let line = report(program, info);
        // One write of the whole line; nothing to do if stderr is gone.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }));
}
