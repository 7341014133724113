//! The bundle's `timb`: starts the version `app/current` names (lib.rs: the layout, the
//! fallback, [`timb_launcher::launch`]). No network, no dependencies.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// No console window on Windows; `attach_parent_console` gives a console user the output.
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        timb_launcher::attach_parent_console();
    }
    match std::env::current_exe() {
        Ok(exe) => match timb_launcher::bundle_root(&exe, timb_launcher::LAUNCHER_EXE) {
            Some(root) => timb_launcher::launch(root, std::env::args_os().skip(1).collect()),
            None => timb_launcher::fail("the launcher is not inside a bundle folder"),
        },
        Err(e) => timb_launcher::fail(&format!("cannot find the launcher's folder: {e}")),
    }
}
