//! The portable bundle's layout, shared by the launcher (which version starts), the updater
//! (which installs one) and the app (which says it started):
//!
//! ```text
//! timb-0.2.0-linux-x86_64/
//!   timb                this launcher: reads app/current, starts app/<version>/timb
//!   app/current         one line: the version that starts. Renaming a new one over it is
//!                       the single commit point of an update.
//!   app/previous        one line: the version to go back to if the current one never starts
//!   app/0.1.0/ …        complete versions, renamed into place whole, never modified after
//!   update/             the updater's: TUF metadata, downloads, the launch record
//!   profile/            the user's; neither the launcher nor the updater touches it
//! ```
//!
//! Nothing here replaces a file that may be running or relies on POSIX-only semantics: a
//! version is a new folder, and the only file ever replaced is a pointer no process keeps
//! open (on Windows `std::fs::rename` replaces it with `MoveFileExW`).
// Shipped code handles its errors (clippy.toml lets tests unwrap).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod desktop;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The folder of complete versions and their pointers.
pub const APP_DIR: &str = "app";
/// The updater's state folder (and the launch record).
pub const STATE_DIR: &str = "update";
/// The user's profile, beside `app/`.
pub const PROFILE_DIR: &str = "profile";
/// The messenger inside a version folder. On macOS it is inside the version's own `.app`,
/// which an update installs whole: changing one file inside a signed `.app` breaks its
/// signature, and a new version folder never touches the running one.
pub const APP_EXE: &str = if cfg!(windows) {
    "timb.exe"
} else if cfg!(target_os = "macos") {
    "Timb.app/Contents/MacOS/timb"
} else {
    "timb"
};
/// The launcher in the bundle folder: the same path as the messenger in a version folder
/// (on macOS the executable of the bundle's own `Timb.app`, the one a user opens; the
/// profile stays beside it, in the portable folder).
pub const LAUNCHER_EXE: &str = APP_EXE;
/// Starts of a new version that never reach "window shown" before the launcher goes back
/// to the previous one.
pub const MAX_TRIES: u32 = 3;

const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
/// "VERSION TRIES": starts of a version not yet confirmed.
const LAUNCH: &str = "launch";
/// "VERSION": the last version whose window appeared.
const STARTED: &str = "started";
/// "FAILED BACK_TO [seen]": the launcher went back; the updater skips FAILED.
const FELL_BACK: &str = "fell-back";
/// Prefix of folders being written or removed: never a version, whatever a crash leaves.
pub const STAGING_PREFIX: &str = ".staging-";
const TRASH_PREFIX: &str = ".trash-";

/// Called before each write, rename and fsync, with what is about to happen. Only test
/// builds pass one (to stop the process there); the app passes `None`.
pub type StopHook<'a> = Option<&'a (dyn Fn(&str) + Sync)>;

#[derive(Debug)]
pub enum LayoutError {
    /// The folder has no `app/current`: an old (0.1.0) bundle, or files missing.
    NotABundle(PathBuf),
    /// The pointer names a version whose folder is missing, and there is nothing to go back to.
    Missing(String),
    /// A pointer file holds something that is not a version name.
    BadPointer(&'static str),
    Io(&'static str, io::Error),
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::NotABundle(p) => write!(
                f,
                "{} is not a complete timb bundle (app/current is missing); download the bundle again",
                p.display()
            ),
            LayoutError::Missing(v) => write!(
                f,
                "the version this bundle points at ({v}) is missing and there is none to go back to; download the bundle again"
            ),
            LayoutError::BadPointer(which) => write!(
                f,
                "the bundle's app/{which} file is damaged; download the bundle again"
            ),
            LayoutError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for LayoutError {}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> LayoutError {
    move |e| LayoutError::Io(what, e)
}

/// A version folder's name: what a pointer may hold. Never a path (`/`, `..`) nor hidden.
pub fn valid_version(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// What the app shows once its window is up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// This start is the first of a new version: the one before it.
    pub updated_from: Option<String>,
    /// The launcher went back from this version, which never started.
    pub fell_back_from: Option<String>,
}

/// A bundle folder (the launcher's folder).
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn at(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The bundle a messenger binary belongs to: `ROOT/app/VERSION/timb` gives `ROOT` when
    /// `ROOT/app/current` exists; `None` for a binary run from elsewhere (a 0.1.0 bundle,
    /// a build tree).
    pub fn of_exe(exe: &Path) -> Option<Layout> {
        let version_dir = exe
            .ancestors()
            .nth(Path::new(APP_EXE).components().count())?;
        let app = version_dir.parent()?;
        if app.file_name()? != APP_DIR {
            return None;
        }
        let root = app.parent()?;
        root.join(APP_DIR)
            .join(CURRENT)
            .is_file()
            .then(|| Layout::at(root))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn app_dir(&self) -> PathBuf {
        self.root.join(APP_DIR)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn profile_dir(&self) -> PathBuf {
        self.root.join(PROFILE_DIR)
    }

    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.app_dir().join(version)
    }

    /// A version is installed when its folder holds the messenger: folders only ever
    /// appear under a version's name by a rename of a complete staging folder.
    pub fn installed(&self, version: &str) -> bool {
        valid_version(version) && self.version_dir(version).join(APP_EXE).is_file()
    }

    pub fn current(&self) -> Result<Option<String>, LayoutError> {
        read_pointer(&self.app_dir().join(CURRENT), CURRENT)
    }

    pub fn previous(&self) -> Result<Option<String>, LayoutError> {
        read_pointer(&self.app_dir().join(PREVIOUS), PREVIOUS)
    }

    /// Makes `version` (installed) the one that starts, keeping the current one as the
    /// fallback. The rename of `app/current` is the commit point: before it the old
    /// version starts, after it the new one.
    pub fn switch_to(&self, version: &str, stop: StopHook) -> Result<(), LayoutError> {
        if !self.installed(version) {
            return Err(LayoutError::Missing(version.to_string()));
        }
        let app = self.app_dir();
        if let Some(cur) = self.current()? {
            if cur == version {
                return Ok(());
            }
            write_atomic(&app, PREVIOUS, &format!("{cur}\n"), stop)?;
        }
        write_atomic(&app, CURRENT, &format!("{version}\n"), stop)
    }

    /// The launcher's choice: the current version, counted as one more start until the app
    /// confirms its window appeared; after [`MAX_TRIES`] unconfirmed starts (or when its
    /// folder is gone) the previous version, recorded so the app can say so and the updater
    /// does not install the failed one again. A read-only bundle still starts: the counting
    /// is skipped when it cannot be written.
    pub fn choose(&self) -> Result<String, LayoutError> {
        let cur = self
            .current()?
            .ok_or_else(|| LayoutError::NotABundle(self.root.clone()))?;
        let prev = self
            .previous()
            .ok()
            .flatten()
            .filter(|p| *p != cur && self.installed(p));
        if !self.installed(&cur) {
            return match prev {
                Some(p) => self.fall_back(&cur, p),
                None => Err(LayoutError::Missing(cur)),
            };
        }
        if self.started().as_deref() == Some(cur.as_str()) {
            return Ok(cur);
        }
        let state = self.state_dir();
        let tries = match read_small(&state.join(LAUNCH)) {
            Some(t) => match t.split_once(' ') {
                Some((v, n)) if v == cur => n.trim().parse::<u32>().unwrap_or(MAX_TRIES) + 1,
                _ => 1,
            },
            None => 1,
        };
        if tries > MAX_TRIES {
            if let Some(p) = prev {
                return self.fall_back(&cur, p);
            }
        }
        if create_private_dir(&state).is_ok() {
            let _ = write_atomic(&state, LAUNCH, &format!("{cur} {tries}\n"), None);
        }
        Ok(cur)
    }

    /// The current version without counting a start (runs that never open the window).
    pub fn choose_quietly(&self) -> Result<String, LayoutError> {
        let cur = self
            .current()?
            .ok_or_else(|| LayoutError::NotABundle(self.root.clone()))?;
        if self.installed(&cur) {
            return Ok(cur);
        }
        match self.previous()?.filter(|p| self.installed(p)) {
            Some(p) => Ok(p),
            None => Err(LayoutError::Missing(cur)),
        }
    }

    fn fall_back(&self, failed: &str, to: String) -> Result<String, LayoutError> {
        let state = self.state_dir();
        create_private_dir(&state).map_err(io_err("creating the update folder"))?;
        write_atomic(&state, FELL_BACK, &format!("{failed} {to}\n"), None)?;
        write_atomic(&self.app_dir(), CURRENT, &format!("{to}\n"), None)?;
        let _ = std::fs::remove_file(state.join(LAUNCH));
        Ok(to)
    }

    /// The last version whose window appeared.
    pub fn started(&self) -> Option<String> {
        read_small(&self.state_dir().join(STARTED)).filter(|v| valid_version(v))
    }

    /// A version the launcher had to leave: the updater does not install it again.
    pub fn failed_version(&self) -> Option<String> {
        let t = read_small(&self.state_dir().join(FELL_BACK))?;
        t.split(' ').next().map(str::to_string)
    }

    /// Called by the app once its window is shown: `version` started. Returns what to tell
    /// the user (each note once).
    pub fn confirm_started(&self, version: &str) -> Result<Notes, LayoutError> {
        let state = self.state_dir();
        create_private_dir(&state).map_err(io_err("creating the update folder"))?;
        let mut notes = Notes::default();
        let before = self.started();
        if before.as_deref() != Some(version) {
            write_atomic(&state, STARTED, &format!("{version}\n"), None)?;
            notes.updated_from = before;
        }
        let _ = std::fs::remove_file(state.join(LAUNCH));
        if let Some(t) = read_small(&state.join(FELL_BACK)) {
            let parts: Vec<&str> = t.split(' ').collect();
            if let [failed, to] = parts[..] {
                if to == version {
                    notes.fell_back_from = Some(failed.to_string());
                    notes.updated_from = None;
                    write_atomic(&state, FELL_BACK, &format!("{failed} {to} seen\n"), None)?;
                }
            }
        }
        Ok(notes)
    }

    /// Removes versions other than the current, the previous and `running`, and whatever a
    /// crash left half-written. A folder is first renamed out of the version names, so a
    /// half-removed version is never taken for a complete one.
    pub fn remove_old(&self, running: &str) -> Result<Vec<String>, LayoutError> {
        let keep = [self.current()?, self.previous()?, Some(running.to_string())];
        let app = self.app_dir();
        let mut removed = Vec::new();
        let entries = std::fs::read_dir(&app).map_err(io_err("reading the app folder"))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if !is_dir {
                continue;
            }
            let path = e.path();
            if name.starts_with(STAGING_PREFIX) || name.starts_with(TRASH_PREFIX) {
                let _ = std::fs::remove_dir_all(&path);
            } else if valid_version(&name) && !keep.iter().flatten().any(|k| *k == name) {
                let trash = app.join(format!("{TRASH_PREFIX}{name}"));
                std::fs::rename(&path, &trash).map_err(io_err("moving an old version away"))?;
                std::fs::remove_dir_all(&trash).map_err(io_err("removing an old version"))?;
                removed.push(name);
            }
        }
        Ok(removed)
    }
}

/// The bundle folder of the launcher `exe` (`launcher_exe`: [`LAUNCHER_EXE`], the path
/// inside it).
pub fn bundle_root<'a>(exe: &'a Path, launcher_exe: &str) -> Option<&'a Path> {
    exe.ancestors()
        .nth(Path::new(launcher_exe).components().count())
}

/// Whether macOS runs the bundle at `root` from a random read-only copy (App Translocation,
/// `/private/var/folders/…/AppTranslocation/ID/d/`), as it does for a downloaded app never
/// moved from where it was unpacked. The profile beside `Timb.app` could not be written
/// there; timb then says so ([`TRANSLOCATED`]) rather than write anywhere else.
pub fn translocated(root: &Path) -> bool {
    root.components()
        .any(|c| c.as_os_str() == "AppTranslocation")
}

/// What the launcher says when [`translocated`].
pub const TRANSLOCATED: &str = "macOS started timb from a read-only copy, because its folder is still where it was downloaded. Move the whole timb folder with the Finder to another place (your Documents folder, for example) and open Timb.app there: timb keeps your profile beside it and writes nowhere else.";

/// The launcher: starts the chosen version of the bundle at `root` with `args`. Only a
/// plain start (no arguments) opens the window, so only it counts towards the fallback.
pub fn launch(root: &Path, args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    if cfg!(target_os = "macos") && translocated(root) {
        return fail(TRANSLOCATED);
    }
    // The menu entry is the launcher's: the messenger does not start for it. It is a Linux
    // desktop entry; macOS and Windows users pin the app themselves (Dock, Start menu).
    match args.first().and_then(|a| a.to_str()) {
        Some("--register-app" | "--unregister-app")
            if args.len() == 1 && !cfg!(target_os = "linux") =>
        {
            return fail("--register-app and --unregister-app write a Linux menu entry; on this system, pin timb yourself (the Dock, the Start menu)");
        }
        Some("--register-app") if args.len() == 1 => {
            return match desktop::register(root, &desktop::Home::from_env()) {
                Ok(entry) => {
                    println!("timb: added to your applications menu: {}", entry.display());
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("could not add the menu entry: {e}")),
            };
        }
        Some("--unregister-app") if args.len() == 1 => {
            return match desktop::unregister(root, &desktop::Home::from_env()) {
                Ok(true) => {
                    println!("timb: removed from your applications menu");
                    std::process::ExitCode::SUCCESS
                }
                Ok(false) => {
                    println!("timb: this bundle had no menu entry");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("could not remove the menu entry: {e}")),
            };
        }
        _ => {}
    }
    let layout = Layout::at(root);
    let chosen = if args.is_empty() {
        layout.choose()
    } else {
        layout.choose_quietly()
    };
    let version = match chosen {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let mut cmd = std::process::Command::new(layout.version_dir(&version).join(APP_EXE));
    cmd.args(args);
    run(cmd)
}

/// Unix: the messenger replaces the launcher (same process: signals and exit status are its).
#[cfg(unix)]
fn run(mut cmd: std::process::Command) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    fail(&format!("cannot start the messenger: {e}"))
}

/// Elsewhere: a child whose exit status becomes the launcher's.
#[cfg(not(unix))]
fn run(mut cmd: std::process::Command) -> std::process::ExitCode {
    match cmd.status() {
        Ok(s) => std::process::ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => fail(&format!("cannot start the messenger: {e}")),
    }
}

/// On Windows both exes are GUI programs, so a double-click opens no console window; a
/// program started from a console then has nowhere to print until it attaches to its
/// parent's console. Called before printing for a command-line argument (`--version`,
/// `--help`, an error); harmless when there is no parent console (a double-click) and
/// unneeded when the output is redirected (the handles are inherited). Nothing elsewhere.
pub fn attach_parent_console() {
    #[cfg(windows)]
    {
        #[link(name = "kernel32")]
        extern "system" {
            fn AttachConsole(process_id: u32) -> i32;
        }
        const ATTACH_PARENT_PROCESS: u32 = u32::MAX;
        // SAFETY: AttachConsole takes a process id by value and reads or writes no memory of
        // ours; its failure (no parent console, one already attached) leaves things as they were.
        unsafe {
            AttachConsole(ATTACH_PARENT_PROCESS);
        }
    }
}

pub fn fail(msg: &str) -> std::process::ExitCode {
    eprintln!("timb: {msg}");
    #[cfg(target_os = "macos")]
    alert(msg);
    std::process::ExitCode::FAILURE
}

/// A double-clicked app has no terminal: on macOS the message also goes to a dialog, unless
/// stderr is a terminal that shows it. The text is osascript's argument, never script source.
#[cfg(target_os = "macos")]
fn alert(msg: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        return;
    }
    let script = [
        "on run argv",
        "display alert \"timb\" message (item 1 of argv) as critical",
        "end run",
    ];
    let mut cmd = std::process::Command::new("/usr/bin/osascript");
    for line in script {
        cmd.args(["-e", line]);
    }
    // Best effort: the message is on stderr already.
    let _ = cmd.arg(msg).status();
}

fn read_small(path: &Path) -> Option<String> {
    let t = std::fs::read_to_string(path).ok()?;
    let line = t.lines().next()?.trim().to_string();
    (line.len() <= 200).then_some(line)
}

fn read_pointer(path: &Path, which: &'static str) -> Result<Option<String>, LayoutError> {
    match std::fs::read(path) {
        Ok(b) => {
            let t = std::str::from_utf8(&b).map_err(|_| LayoutError::BadPointer(which))?;
            let v = t.strip_suffix('\n').unwrap_or(t);
            if valid_version(v) {
                Ok(Some(v.to_string()))
            } else {
                Err(LayoutError::BadPointer(which))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LayoutError::Io("reading a pointer file", e)),
    }
}

/// `dir/name` replaced by `text`: temp file, fsync, rename over, fsync the folder. After a
/// crash at any point the file holds the old text or the new one.
pub fn write_atomic(dir: &Path, name: &str, text: &str, stop: StopHook) -> Result<(), LayoutError> {
    let at = |what: &str| {
        if let Some(h) = stop {
            h(&format!("{name}: {what}"));
        }
    };
    let tmp = dir.join(format!(".{name}.tmp"));
    at("temp file created");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("writing a bundle file"))?;
    f.write_all(text.as_bytes())
        .map_err(io_err("writing a bundle file"))?;
    at("temp file written");
    f.sync_all().map_err(io_err("syncing a bundle file"))?;
    drop(f);
    at("temp file synced");
    std::fs::rename(&tmp, dir.join(name)).map_err(io_err("replacing a bundle file"))?;
    at("renamed");
    sync_dir(dir).map_err(io_err("syncing the bundle folder"))?;
    at("folder synced");
    Ok(())
}

/// Makes a rename or a new file in `dir` durable. Windows has no folder fsync (NTFS journals
/// its metadata); there it is a no-op.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// A folder only its owner can enter (on Unix; Windows: the profile's ACL issue).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(versions: &[&str], current: &str) -> (tempfile::TempDir, Layout) {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::at(d.path());
        for v in versions {
            std::fs::create_dir_all(l.version_dir(v)).unwrap();
            std::fs::write(l.version_dir(v).join(APP_EXE), v).unwrap();
        }
        std::fs::write(l.app_dir().join(CURRENT), format!("{current}\n")).unwrap();
        (d, l)
    }

    #[test]
    fn version_names_are_never_paths() {
        for ok in ["0.1.0", "0.2.0-alpha.1", "1.0.0+b"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".x",
            "a/b",
            "a\\b",
            "/0.1",
            "0.1 0",
            "0.1\n",
            &"9".repeat(65),
        ] {
            assert!(!valid_version(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_launcher_finds_its_bundle_folder_on_every_platform() {
        let root = Path::new("/x/timb-0.1.0-macos-aarch64");
        let mac = root.join("Timb.app/Contents/MacOS/timb");
        assert_eq!(
            bundle_root(&mac, "Timb.app/Contents/MacOS/timb"),
            Some(root)
        );
        assert_eq!(bundle_root(&root.join("timb"), "timb"), Some(root));
        assert_eq!(
            bundle_root(&root.join(LAUNCHER_EXE), LAUNCHER_EXE),
            Some(root)
        );
        assert_eq!(
            bundle_root(Path::new("timb"), "Timb.app/Contents/MacOS/timb"),
            None
        );
    }

    #[test]
    fn a_translocated_bundle_is_recognised() {
        assert!(translocated(Path::new(
            "/private/var/folders/ab/cd/T/AppTranslocation/0A1B-2C3D/d"
        )));
        assert!(!translocated(Path::new("/Users/ann/Documents/timb-0.1.0")));
        assert!(!translocated(Path::new(
            "/Users/ann/AppTranslocationNotes/timb"
        )));
    }

    #[test]
    fn the_binary_finds_its_bundle() {
        let (_d, l) = bundle(&["0.1.0"], "0.1.0");
        let exe = l.version_dir("0.1.0").join(APP_EXE);
        assert_eq!(Layout::of_exe(&exe).unwrap().root(), l.root());
        assert!(Layout::of_exe(&l.root().join("timb")).is_none());
        std::fs::remove_file(l.app_dir().join(CURRENT)).unwrap();
        assert!(Layout::of_exe(&exe).is_none());
    }

    #[test]
    fn a_switch_keeps_the_old_version_as_fallback() {
        let (_d, l) = bundle(&["0.1.0", "0.2.0"], "0.1.0");
        assert!(matches!(
            l.switch_to("0.3.0", None),
            Err(LayoutError::Missing(_))
        ));
        assert_eq!(l.current().unwrap().as_deref(), Some("0.1.0"));
        l.switch_to("0.2.0", None).unwrap();
        assert_eq!(l.current().unwrap().as_deref(), Some("0.2.0"));
        assert_eq!(l.previous().unwrap().as_deref(), Some("0.1.0"));
        assert_eq!(l.choose().unwrap(), "0.2.0");
    }

    #[test]
    fn a_version_that_never_starts_falls_back_once_and_is_remembered() {
        let (_d, l) = bundle(&["0.1.0", "0.2.0"], "0.1.0");
        assert_eq!(l.choose().unwrap(), "0.1.0");
        assert_eq!(l.confirm_started("0.1.0").unwrap(), Notes::default());
        l.switch_to("0.2.0", None).unwrap();
        for _ in 0..MAX_TRIES {
            assert_eq!(l.choose().unwrap(), "0.2.0");
        }
        assert_eq!(
            l.choose().unwrap(),
            "0.1.0",
            "no fallback after {MAX_TRIES} tries"
        );
        assert_eq!(l.current().unwrap().as_deref(), Some("0.1.0"));
        assert_eq!(l.failed_version().as_deref(), Some("0.2.0"));
        let notes = l.confirm_started("0.1.0").unwrap();
        assert_eq!(notes.fell_back_from.as_deref(), Some("0.2.0"));
        assert_eq!(notes.updated_from, None);
        assert_eq!(
            l.confirm_started("0.1.0").unwrap(),
            Notes::default(),
            "shown twice"
        );
        assert_eq!(l.failed_version().as_deref(), Some("0.2.0"), "forgotten");
    }

    #[test]
    fn a_confirmed_update_is_announced_once_and_never_counted_again() {
        let (_d, l) = bundle(&["0.1.0", "0.2.0"], "0.1.0");
        l.confirm_started("0.1.0").unwrap();
        l.switch_to("0.2.0", None).unwrap();
        assert_eq!(l.choose().unwrap(), "0.2.0");
        let n = l.confirm_started("0.2.0").unwrap();
        assert_eq!(n.updated_from.as_deref(), Some("0.1.0"));
        for _ in 0..MAX_TRIES + 2 {
            assert_eq!(l.choose().unwrap(), "0.2.0");
        }
        assert_eq!(l.confirm_started("0.2.0").unwrap(), Notes::default());
    }

    #[test]
    fn a_missing_version_folder_falls_back_and_without_one_is_a_clear_error() {
        let (_d, l) = bundle(&["0.1.0", "0.2.0"], "0.1.0");
        l.switch_to("0.2.0", None).unwrap();
        std::fs::remove_dir_all(l.version_dir("0.2.0")).unwrap();
        assert_eq!(l.choose().unwrap(), "0.1.0");
        std::fs::remove_dir_all(l.version_dir("0.1.0")).unwrap();
        assert!(matches!(l.choose(), Err(LayoutError::Missing(v)) if v == "0.1.0"));
        std::fs::write(l.app_dir().join(CURRENT), "../../etc\n").unwrap();
        assert!(matches!(
            l.choose(),
            Err(LayoutError::BadPointer("current"))
        ));
        let empty = tempfile::tempdir().unwrap();
        let e = Layout::at(empty.path()).choose().unwrap_err();
        assert!(e.to_string().contains("not a complete timb bundle"), "{e}");
    }

    #[test]
    fn old_versions_go_but_never_the_running_current_or_previous() {
        let (_d, l) = bundle(&["0.1.0", "0.2.0", "0.3.0", "0.4.0"], "0.1.0");
        l.switch_to("0.2.0", None).unwrap();
        l.switch_to("0.3.0", None).unwrap();
        std::fs::create_dir_all(l.app_dir().join(".staging-0.5.0/x")).unwrap();
        // Running 0.4.0 (started before the switches): 0.1.0 alone may go.
        assert_eq!(l.remove_old("0.4.0").unwrap(), ["0.1.0"]);
        assert!(!l.app_dir().join(".staging-0.5.0").exists());
        assert_eq!(l.remove_old("0.3.0").unwrap(), ["0.4.0"]);
        for v in ["0.2.0", "0.3.0"] {
            assert!(l.installed(v), "{v} removed");
        }
        assert!(!l.installed("0.1.0") && !l.installed("0.4.0"));
    }

    #[test]
    fn a_switch_reports_every_write_rename_and_fsync() {
        let (_d, l) = bundle(&["0.1.0", "0.2.0"], "0.1.0");
        let steps = std::sync::Mutex::new(Vec::new());
        let hook = |s: &str| steps.lock().unwrap().push(s.to_string());
        l.switch_to("0.2.0", Some(&hook)).unwrap();
        let steps = steps.into_inner().unwrap();
        assert_eq!(steps.len(), 10, "{steps:?}");
        assert!(steps[9].starts_with("current: folder synced"));
    }
}
