//! timb: the Tor Instant Messaging Bundle.

slint::include_modules!();

mod accounts;
mod backend;
mod controller;
mod i18n;
mod state;
#[cfg(test)]
mod ui_tests;

use std::cell::RefCell;

/// The version users see, also bound into the bundle's signature comment.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => {}
        Some("--version" | "-V") => {
            println!("timb {VERSION}");
            return std::process::ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            println!("timb {VERSION}: instant messaging over Tor with OTR.\n\nUsage: timb [--version | --help]\n\nThe profile lives in the 'profile' folder beside this program\n(or in $TIMB_PROFILE); nothing is written anywhere else.\nThe interface language follows LANGUAGE/LC_ALL/LC_MESSAGES/LANG\nunless chosen in the window.");
            return std::process::ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("timb: unknown argument '{other}' (try --help)");
            return std::process::ExitCode::from(2);
        }
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timb: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

thread_local! {
    /// The controller, reachable from closures the event loop runs on this
    /// (the UI) thread; backends on other threads only ever post events.
    static APP: RefCell<Option<std::rc::Weak<RefCell<controller::App>>>> = const { RefCell::new(None) };
}

/// Events from any thread are queued onto the UI thread, never handled in place.
fn ui_sink() -> backend::Sink {
    backend::Sink::new(|e| {
        let _ = slint::invoke_from_event_loop(move || {
            let app = APP.with(|a| a.borrow().as_ref().and_then(|w| w.upgrade()));
            if let Some(app) = app {
                app.borrow_mut().handle(e);
            }
        });
    })
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let profile = timb_core::profile::Profile::locate()
        .map_err(|e| format!("cannot open the profile folder: {e}"))?;
    let remembered = accounts::load(profile.root()).unwrap_or_else(|e| {
        eprintln!("timb: ignoring unreadable account settings: {e}");
        accounts::Remembered::default()
    });
    let window = MainWindow::new()?;
    window.set_version(VERSION.into());
    // Nothing connects here: Tor starts when the user connects an account.
    let backend = Box::new(backend::Unwired { sink: ui_sink() });
    let app = controller::App::attach(
        &window,
        backend,
        Some(profile.root().to_owned()),
        remembered,
    );
    APP.with(|a| *a.borrow_mut() = Some(std::rc::Rc::downgrade(&app)));
    window.run()?;
    Ok(())
}
