//! The `timb` program: arguments, then the window (see lib.rs).
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]
// No console window on Windows; `--version` and `--help` attach to the console they were
// typed in (timb_launcher::attach_parent_console).
#![cfg_attr(windows, windows_subsystem = "windows")]

use timb::VERSION;

fn main() -> std::process::ExitCode {
    // Before anything can panic: a panic's message may quote what a peer sent,
    // and stderr ends up in the journal. Only the location is printed.
    timb_core::panic::install("timb");
    let mut args = std::env::args().skip(1);
    if args.len() > 0 {
        timb_launcher::attach_parent_console();
    }
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
    let exe = std::env::current_exe().ok();
    let bundle = exe.as_deref().and_then(timb_launcher::Layout::of_exe);
    // The bundle's own fonts, set while this is the only thread.
    if let Some(version_dir) = exe.as_deref().and_then(std::path::Path::parent) {
        if bundle.is_some() {
            timb::fonts::use_bundled(version_dir);
        }
    }
    // First, while this is the only thread, and before the sandbox forbids running
    // programs: the helper that starts the bundle again for "Restart to update".
    if let Some(bundle) = &bundle {
        timb::restart::start_helper(timb::update::launcher(bundle));
    }
    match timb::run(bundle) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timb: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
