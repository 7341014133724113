//! Waiting for a protocol account's events with a deadline; what was skipped is kept for the
//! panic message, so a timed-out test says what it saw instead.

use std::time::Duration;

use timb_core::{AccountHandle, Event};

/// Waits up to `within` for the first event matching `pred`, skipping others.
pub async fn wait_event(
    h: &mut AccountHandle,
    what: &str,
    within: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => seen.push(format!("{e:?}")),
            Ok(None) => panic!("account ended waiting for {what}; seen {seen:?}"),
            Err(_) => panic!("timed out waiting for {what}; seen {seen:?}"),
        }
    }
}

/// Every event that arrives within `d`.
pub async fn drain(h: &mut AccountHandle, d: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, h.events.recv()).await {
        out.push(e);
    }
    out
}
