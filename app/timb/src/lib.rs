//! timb: the Tor Instant Messaging Bundle. The binary (`main.rs`) parses
//! arguments and calls [`run`]; the end-to-end GUI test drives the same
//! window, controller and network backend through [`attach`].

slint::include_modules!();

pub mod accounts;
pub mod backend;
pub mod controller;
mod i18n;
pub mod net;
mod state;
#[cfg(test)]
mod ui_tests;

use std::cell::RefCell;
use std::path::Path;

/// The version users see, also bound into the bundle's signature comment.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// Connects `window` to the real network backend (arti, XMPP/IRC, OTR) with
/// its files in `profile_root`. Nothing connects until the user asks.
pub fn attach(
    window: &MainWindow,
    profile_root: &Path,
    remembered: accounts::Remembered,
) -> std::io::Result<controller::Shared> {
    let backend = Box::new(net::Net::new(ui_sink(), profile_root)?);
    let app = controller::App::attach(window, backend, Some(profile_root.to_owned()), remembered);
    APP.with(|a| *a.borrow_mut() = Some(std::rc::Rc::downgrade(&app)));
    Ok(app)
}

/// Opens the window on the profile beside the program and runs until it closes.
pub fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Everything timb and its libraries (arti, libotr) create is owner-only.
    timb_core::profile::owner_only_files();
    let profile = timb_core::profile::Profile::locate()
        .map_err(|e| format!("cannot open the profile folder: {e}"))?;
    let remembered = accounts::load(profile.root()).unwrap_or_else(|e| {
        eprintln!("timb: ignoring unreadable account settings: {e}");
        accounts::Remembered::default()
    });
    let window = MainWindow::new()?;
    window.set_version(VERSION.into());
    let _app = attach(&window, profile.root(), remembered)?;
    window.run()?;
    Ok(())
}
