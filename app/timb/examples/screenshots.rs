//! `cargo xtask screenshots`: PNGs of each screen in English and Arabic,
//! written to the folder given as the first argument (docs/screenshots/).
//!
//! The real window, controller and network backend run on slint's event loop
//! with the software renderer (no display needed); the account really connects
//! over the private Tor network to a real prosody and really talks OTR with a
//! second account, so what the pictures show is what the program does.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use slint::{ComponentHandle, Model};
use support::*;
use timb::{ConnState, MainWindow, OtrState};
use timb_core::{Command, Event, MessageKind};
use timb_otr::wrap::ControlEvent;
use timb_otr::{OtrEvent, SmpEvent};
use timb_test_support::DOMAIN;
use timb_testnet::exit_port_index;

thread_local! {
    /// The controller, on the UI thread, for switching the language.
    static APP: std::cell::RefCell<Option<timb::controller::Shared>> = const { std::cell::RefCell::new(None) };
}

fn set_language(w: &slint::Weak<MainWindow>, lang: &'static str) {
    on_ui(w, move |_| {
        APP.with(|a| {
            if let Some(app) = a.borrow().as_ref() {
                app.borrow_mut().set_language(lang);
            }
        })
    });
}

fn save_png(w: &MainWindow, path: &Path) {
    let buf = w.window().take_snapshot().expect("snapshot");
    let file = std::fs::File::create(path).expect("create png");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), buf.width(), buf.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut data = Vec::with_capacity(buf.as_slice().len() * 3);
    for p in buf.as_slice() {
        data.extend_from_slice(&[p.r, p.g, p.b]);
    }
    let mut writer = enc.write_header().expect("png header");
    writer.write_image_data(&data).expect("png data");
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: screenshots OUT_DIR"));
    std::fs::create_dir_all(&out).unwrap();
    let world = XmppWorld::start(exit_port_index::GUI_BENCH.start + 1);
    let (exit_port, pin) = (world.exit_port, world.pin.clone());
    let (mut ben, mut ben_otr) = world.headless_peer("ben", "pw-ben");
    // ben answers ann's SMP question and greets her in Arabic and English.
    world.rt.spawn(async move {
        loop {
            tokio::select! {
                e = ben.events.recv() => match e {
                    Some(Event::Message { from, .. }) => {
                        for body in ["مرحبا آن! هذه رسالة خاصة.", "Hi Ann, see https://example.org/notes (links stay plain text)"] {
                            let _ = ben.commands.send(Command::Send {
                                to: from.clone(),
                                body: body.into(),
                                kind: MessageKind::Normal,
                            }).await;
                        }
                    }
                    Some(_) => {}
                    None => return,
                },
                e = ben_otr.events.recv() => match e {
                    Some(ControlEvent::Otr(OtrEvent::Smp { peer, event: SmpEvent::AskedQuestion(_), .. })) => {
                        let _ = ben_otr.smp_respond(&peer, "at the library").await;
                    }
                    Some(_) => {}
                    None => return,
                },
            }
        }
    });

    slint::platform::set_platform(Box::new(i_slint_backend_testing::TestingBackend::new(
        i_slint_backend_testing::TestingBackendOptions {
            mock_time: false,
            threading: true,
            renderer_name: Some("software".into()),
        },
    )))
    .unwrap();
    let (window, app) = world.open_window();
    window
        .window()
        .set_size(slint::LogicalSize::new(1000.0, 680.0));
    window.set_version(timb::VERSION.into());
    APP.with(|a| *a.borrow_mut() = Some(app.clone()));
    let w = window.as_weak();
    let out2 = out.clone();
    run_driven(move || drive(&w, exit_port, &pin, &out2));
    println!("screenshots written to {}", out.display());
}

fn drive(w: &slint::Weak<MainWindow>, exit_port: u16, pin: &str, out: &Path) {
    let jid = format!("ann@{DOMAIN}");
    let shot = |name: &str, lang: &str| {
        let path = out.join(format!("{name}-{lang}.png"));
        on_ui(w, move |w| save_png(w, &path));
    };
    // Before anything: the empty window, and the account form.
    for lang in ["en", "ar"] {
        set_language(w, lang);
        shot("start", lang);
        on_ui(w, |w| w.invoke_add_account());
        shot("add-account", lang);
        on_ui(w, |w| w.set_account_dialog_open(false));
    }
    set_language(w, "en");
    let (j, p) = (jid.clone(), pin.to_owned());
    on_ui(w, move |w| {
        add_xmpp_account(w, "127.0.0.1", exit_port, &j, &p);
        connect_with_password(w, &j, "pw-ann");
    });
    wait_ui(
        w,
        "connected",
        |w| {
            w.get_accounts()
                .row_data(0)
                .is_some_and(|a| a.state == ConnState::Connected)
        },
        state,
    );
    let ben = format!("ben@{DOMAIN}");
    on_ui(w, move |w| {
        let id = w.get_accounts().row_data(0).expect("account").id;
        w.invoke_add_contact(ben.clone().into());
        w.invoke_open_conversation(id, ben.into(), false);
        w.invoke_send("Hello Ben! Is this private?".into());
    });
    wait_ui(
        w,
        "private and answered",
        |w| {
            w.get_otr_state() == OtrState::PrivateUnverified
                && w.get_messages().iter().filter(|m| !m.outgoing).count() >= 2
        },
        state,
    );
    for lang in ["en", "ar"] {
        set_language(w, lang);
        shot("chat-unverified", lang);
        on_ui(w, |w| w.invoke_open_verify());
        shot("verify", lang);
        on_ui(w, |w| w.set_otr_open(false));
    }
    set_language(w, "en");
    on_ui(w, |w| {
        w.invoke_open_verify();
        w.invoke_start_smp("Where did we meet?".into(), "at the library".into());
    });
    wait_ui(
        w,
        "verified",
        |w| w.get_otr_state() == OtrState::PrivateVerified,
        state,
    );
    on_ui(w, |w| w.set_otr_open(false));
    for lang in ["en", "ar"] {
        set_language(w, lang);
        shot("chat-verified", lang);
    }
}
