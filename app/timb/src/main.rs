//! timb: the Tor Instant Messaging Bundle.

slint::include_modules!();

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
            println!("timb {VERSION}: instant messaging over Tor with OTR.\n\nUsage: timb [--version | --help]\n\nThe profile lives in the 'profile' folder beside this program\n(or in $TIMB_PROFILE); nothing is written anywhere else.");
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

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let _profile = timb_core::profile::Profile::locate()
        .map_err(|e| format!("cannot open the profile folder: {e}"))?;
    let window = MainWindow::new()?;
    window.set_version(VERSION.into());
    let weak = window.as_weak();
    window.on_connect_tor(move || {
        if let Some(w) = weak.upgrade() {
            w.set_tor_status("The Tor transport is not part of this build yet.".into());
        }
    });
    window.run()?;
    Ok(())
}
