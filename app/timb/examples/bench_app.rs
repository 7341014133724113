//! `cargo xtask bench app`: the program's start-up time and memory, printed
//! as a Markdown table.
//!
//! - cold start to first frame: the release `timb` binary ($TIMB_BIN) under
//!   Xvfb, from spawn until its window is mapped (xdotool), on a fresh profile;
//! - idle RSS after connecting two XMPP accounts over the private Tor network
//!   (real window, controller and network backend; this process's VmRSS);
//! - RSS after 10,000 and 20,000 messages in one conversation (scrollback is
//!   bounded, so the second 10,000 should add next to nothing).
//!
//! Each memory measurement runs in its own child process so they do not mix.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slint::{ComponentHandle, Model};
use support::*;
use timb::backend::{Backend, Request, UiEvent};
use timb::{ConnState, MainWindow};
use timb_core::{AccountId, Event, MessageKind, Target};

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--messages") => messages(),
        Some("--accounts") => accounts(),
        _ => table(),
    }
}

fn child(flag: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(flag)
        .stderr(Stdio::inherit())
        .output()
        .expect("child");
    assert!(out.status.success(), "{flag} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn table() {
    let start = startup();
    let msgs = child("--messages");
    let accts = child("--accounts");
    println!("| measurement | value |\n|---|---|");
    print!("{start}{msgs}{accts}");
}

/// Spawn to mapped window, five runs on a fresh profile each.
fn startup() -> String {
    let bin = std::env::var("TIMB_BIN").expect("TIMB_BIN names the release timb binary");
    let display = ":77";
    let mut xvfb = Command::new("Xvfb")
        .args([display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb");
    std::thread::sleep(Duration::from_secs(1));
    let mut runs = Vec::new();
    for _ in 0..5 {
        let profile = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let mut app = Command::new(&bin)
            .env("DISPLAY", display)
            .env("TIMB_PROFILE", profile.path())
            .env("LANG", "en_US.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("timb");
        let pid = app.id().to_string();
        let mapped = loop {
            let found = Command::new("xdotool")
                .args(["search", "--onlyvisible", "--pid", &pid])
                .env("DISPLAY", display)
                .stderr(Stdio::null())
                .output()
                .map(|o| o.status.success() && !o.stdout.is_empty())
                .unwrap_or(false);
            if found {
                break t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no window");
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = app.kill();
        let _ = app.wait();
        runs.push(mapped.as_secs_f64() * 1000.0);
    }
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    let first = runs[0];
    runs.sort_by(f64::total_cmp);
    format!(
        "| start to first mapped window, first run | {first:.0} ms |\n| start to first mapped window, median of 5 | {:.0} ms |\n",
        runs[2]
    )
}

struct Quiet;
impl Backend for Quiet {
    fn request(&mut self, _: Request) {}
}

fn messages() {
    i_slint_backend_testing::init_no_event_loop();
    let w = MainWindow::new().unwrap();
    w.show().unwrap();
    let app = timb::controller::App::attach(&w, Box::new(Quiet), None, Default::default());
    let id = AccountId(1);
    support::add_xmpp_account(&w, "example.org", 5222, "alice@example.org", "");
    app.borrow_mut()
        .open_conversation(id, Target::Direct("bob@example.org".into()));
    let feed = |n: usize| {
        for i in 0..n {
            app.borrow_mut().handle(UiEvent::Account(
                id,
                Event::Message {
                    from: Target::Direct("bob@example.org".into()),
                    sender: None,
                    body: format!("message {i}: {}", "lorem ipsum dolor sit amet ".repeat(4)),
                    kind: MessageKind::Normal,
                    received_at: i as u64,
                },
            ));
        }
    };
    let before = rss_kib();
    feed(10_000);
    let k10 = rss_kib();
    feed(10_000);
    let k20 = rss_kib();
    println!(
        "| RSS, window open, before any message | {} |\n| RSS after 10,000 messages in one conversation | {} |\n| RSS after 20,000 messages | {} (rows kept: {}) |",
        mib(before),
        mib(k10),
        mib(k20),
        w.get_messages().row_count()
    );
}

fn accounts() {
    use timb_test_support::DOMAIN;
    use timb_testnet::exit_port_index;

    let world = XmppWorld::start(exit_port_index::GUI_BENCH.start + 3);
    let (exit_port, pin) = (world.exit_port, world.pin.clone());
    i_slint_backend_testing::init_integration_test_with_system_time();
    let (window, _app) = world.open_window();
    let w = window.as_weak();
    let (before, connect, idle) = run_driven(move || {
        let before = on_ui(&w, |_| rss_kib());
        for (user, pw) in [("ann", "pw-ann"), ("ben", "pw-ben")] {
            let (jid, pin) = (format!("{user}@{DOMAIN}"), pin.clone());
            on_ui(&w, move |w| {
                add_xmpp_account(w, "127.0.0.1", exit_port, &jid, &pin);
                connect_with_password(w, &jid, pw);
            });
        }
        let t = Instant::now();
        wait_ui(
            &w,
            "both accounts connected",
            |w| {
                w.get_accounts().row_count() == 2
                    && w.get_accounts()
                        .iter()
                        .all(|a| a.state == ConnState::Connected)
            },
            state,
        );
        let connect = t.elapsed();
        std::thread::sleep(Duration::from_secs(10));
        let idle = on_ui(&w, |_| rss_kib());
        (before, connect, idle)
    });
    println!(
        "| RSS before connecting (window open) | {} |\n| Tor bootstrap + two accounts connected (private network) | {:.1} s |\n| idle RSS, two accounts connected, 10 s later | {} |",
        mib(before),
        connect.as_secs_f64(),
        mib(idle)
    );
}
