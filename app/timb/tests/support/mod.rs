//! Driving the real window from another thread while slint's event loop runs
//! (shared by the GUI end-to-end test, `cargo xtask bench app` and
//! `cargo xtask screenshots`), and the world they run in.

#![allow(dead_code)] // each user takes what it needs

use std::time::{Duration, Instant};

use i_slint_backend_testing::{AccessibleRole, ElementHandle};
use slint::{ComponentHandle, Model};
use timb::MainWindow;

pub const WAIT: Duration = Duration::from_secs(180);

/// A test peer's way to prosody: a loopback socket (only the app under test uses Tor).
pub use timb_test_support::Loopback;

/// A size from this process's `/proc/self/status` (`"VmRSS:"`, `"VmHWM:"`), in KiB; 0 if
/// unreadable (the benchmarks' memory columns).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `f` on the UI thread and returns its result.
pub fn on_ui<R: Send + 'static>(
    w: &slint::Weak<MainWindow>,
    f: impl FnOnce(&MainWindow) -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let w = w.clone();
    slint::invoke_from_event_loop(move || {
        let w = w.upgrade().expect("window alive");
        let _ = tx.send(f(&w));
    })
    .expect("event loop running");
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the UI thread answered")
}

/// Polls the window until `ok` holds; on timeout, fails with `describe`.
pub fn wait_ui(
    w: &slint::Weak<MainWindow>,
    what: &str,
    ok: impl Fn(&MainWindow) -> bool + Send + Sync + Clone + 'static,
    describe: impl Fn(&MainWindow) -> String + Send + Sync + Clone + 'static,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let ok = ok.clone();
        if on_ui(w, move |w| ok(w)) {
            return;
        }
        if Instant::now() > deadline {
            let d = describe.clone();
            panic!("timed out waiting for {what}: {}", on_ui(w, move |w| d(w)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn find(w: &MainWindow, label: &str, role: AccessibleRole) -> ElementHandle {
    ElementHandle::find_by_accessible_label(w, label)
        .find(|e| e.accessible_role() == Some(role))
        .unwrap_or_else(|| panic!("no {role:?} labelled {label:?}"))
}

pub fn click(w: &MainWindow, label: &str) {
    find(w, label, AccessibleRole::Button).invoke_accessible_default_action();
}

pub fn type_into(w: &MainWindow, label: &str, text: &str) {
    find(w, label, AccessibleRole::TextInput).set_accessible_value(text);
}

pub fn state(w: &MainWindow) -> String {
    let accounts: Vec<String> = w
        .get_accounts()
        .iter()
        .map(|a| format!("{} {:?} {:?} {}", a.label, a.state, a.problem, a.detail))
        .collect();
    let messages: Vec<String> = w
        .get_messages()
        .iter()
        .map(|m| format!("{}: {} ({:?})", m.sender, m.body, m.status))
        .collect();
    format!(
        "tor {:?} {:?} {}; accounts {accounts:?}; otr {:?}; smp {:?}; messages {messages:?}",
        w.get_tor_state(),
        w.get_tor_phase(),
        w.get_tor_detail(),
        w.get_otr_state(),
        w.get_smp_state(),
    )
}

/// Fills in and saves the account form for an XMPP account pinned to `pin`
/// (web PKI when `pin` is empty).
pub fn add_xmpp_account(w: &MainWindow, server: &str, port: u16, jid: &str, pin: &str) {
    click(w, "Add account");
    type_into(w, "Server or .onion address", server);
    type_into(w, "Port", &port.to_string());
    type_into(w, "Your address (user@server)", jid);
    // The form starts on web PKI; choose "Pinned key" (the combo box's first
    // entry), which brings up the pin field. No pin: stay on web PKI.
    if !pin.is_empty() {
        let mut form = w.get_account_form();
        form.tls = 0;
        w.set_account_form(form);
        type_into(w, "Pinned key", pin);
    }
    click(w, "Save account");
    assert!(
        !w.get_account_dialog_open(),
        "form refused: {:?}",
        w.get_form_error()
    );
}

/// Clicks Connect and answers the password prompt.
pub fn connect_with_password(w: &MainWindow, label: &str, password: &str) {
    click(w, &format!("Connect {label}"));
    assert!(w.get_password_open(), "the password is asked at connect");
    type_into(w, "Password", password);
    w.invoke_password_submit();
}

/// A real prosody with accounts ann and ben, its STARTTLS port reachable from
/// the private Tor network's exit port `exit_index`; the runtime runs the
/// test's own side (the proxy, headless peers).
pub struct XmppWorld {
    pub net: &'static timb_testnet::TestNet,
    pub exit_port: u16,
    /// SPKI pin (hex) of prosody's certificate.
    pub pin: String,
    pub prosody: timb_test_support::Prosody,
    _proxy: timb_test_support::Proxy,
    pub tmp: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
}

impl XmppWorld {
    pub fn start(exit_index: usize) -> XmppWorld {
        let net = timb_testnet::TestNet::shared();
        let exit_port = net.info().exit_port(exit_index).expect("exit port");
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let prosody = timb_test_support::Prosody::start(&[("ann", "pw-ann"), ("ben", "pw-ben")]);
        let proxy = rt.block_on(timb_test_support::Proxy::start_on(
            exit_port,
            prosody.c2s_port,
        ));
        XmppWorld {
            net,
            exit_port,
            pin: prosody.leaf.spki_sha256().hex(),
            prosody,
            _proxy: proxy,
            tmp: tempfile::tempdir().expect("tempdir"),
            rt,
        }
    }

    /// A folder inside this world's temporary directory.
    pub fn dir(&self, name: &str) -> std::path::PathBuf {
        timb_test_support::scratch(self.tmp.path(), name)
    }

    /// A headless timb XMPP account wrapped in OTR, connecting to prosody
    /// over loopback: the test's peer, not the program under test.
    pub fn headless_peer(
        &self,
        user: &str,
        password: &str,
    ) -> (timb_core::AccountHandle, timb_otr::wrap::OtrControl) {
        let jid = format!("{user}@{}", timb_test_support::DOMAIN);
        let port = self.prosody.tls_port;
        let mut cfg = timb_xmpp::XmppConfig::new(&jid, password);
        cfg.server = Some(timb_xmpp::ServerAddr {
            host: "127.0.0.1".into(),
            port,
            tls: timb_xmpp::TlsMode::Direct,
        });
        let store = self.dir(&format!("{user}-otr"));
        let policy = self.prosody.policy();
        self.rt.block_on(async move {
            let h = timb_xmpp::spawn_account(
                timb_core::AccountId(99),
                cfg,
                std::sync::Arc::new(Loopback),
                std::sync::Arc::new(timb_xmpp::PolicyTls::new(policy, Some(port), true)),
            );
            h.commands
                .send(timb_core::Command::Connect)
                .await
                .expect("peer account running");
            timb_otr::wrap::wrap(h, &store, &jid).expect("peer OTR")
        })
    }

    /// The window and the real network backend, with this world's private
    /// Tor network. Call on the thread that will run slint's event loop.
    pub fn open_window(&self) -> (MainWindow, timb::controller::Shared) {
        open_window(self.net, &self.dir("profile"))
    }
}

/// The window and the real network backend on the private Tor network `net`, with its
/// profile in `profile`. Call on the thread that will run slint's event loop.
pub fn open_window(
    net: &timb_testnet::TestNet,
    profile: &std::path::Path,
) -> (MainWindow, timb::controller::Shared) {
    std::env::set_var(timb::net::PRIVATE_NETWORK_ENV, net.config_path());
    let window = MainWindow::new().expect("window");
    window.show().expect("show");
    let app = timb::attach(&window, profile, Default::default()).expect("attach the backend");
    app.borrow_mut().set_language("en");
    (window, app)
}

/// Runs `drive` on another thread while slint's event loop runs on this one,
/// then quits the loop and returns what `drive` returned (or re-raises its panic).
pub fn run_driven<R: Send + 'static>(drive: impl FnOnce() -> R + Send + 'static) -> R {
    let driver = std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(drive));
        let _ = slint::invoke_from_event_loop(|| {
            let _ = slint::quit_event_loop();
        });
        result
    });
    slint::run_event_loop_until_quit().expect("event loop");
    match driver.join().expect("driver thread") {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}
