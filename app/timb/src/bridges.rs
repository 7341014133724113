//! The Bridges setting: which bridges the next Tor start takes, checked as the user types.
//!
//! Three choices, as Tor Browser offers them: none, lines the user pastes, or the obfs4
//! bridges compiled into timb (`default-bridges.txt`, offered only when it holds any).
//! Bridge lines are the user's settings like accounts: kept in memory, and in the
//! profile only when "Remember" is ticked. They are never logged (a bridge's address is
//! what a censor wants to learn).

use std::path::Path;

use timb_tor::{Bridge, BridgeLineError};

use crate::backend::BridgeChoice;

use crate::slint_generatedMainWindow::BridgeProblem;

/// The bridge lines built into timb (comments and blank lines are not bridges).
const DEFAULT_BRIDGES: &str = include_str!("../default-bridges.txt");

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    None,
    Pasted,
    Bundled,
}

impl Mode {
    /// The Bridges dialog's choice index (bridges.slint: 0 none, 1 pasted, 2 bundled).
    pub fn index(self) -> i32 {
        match self {
            Mode::None => 0,
            Mode::Pasted => 1,
            Mode::Bundled => 2,
        }
    }

    pub fn from_index(i: i32) -> Mode {
        match i {
            1 => Mode::Pasted,
            2 if !bundled().is_empty() => Mode::Bundled,
            _ => Mode::None,
        }
    }

    /// How the profile names it ("" for none).
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "",
            Mode::Pasted => "pasted",
            Mode::Bundled => "bundled",
        }
    }

    pub fn from_name(name: &str) -> Mode {
        match name {
            "pasted" => Mode::Pasted,
            "bundled" => Mode::Bundled,
            _ => Mode::None,
        }
    }
}

/// The Bridges setting as the controller keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Setting {
    pub mode: Mode,
    /// The pasted lines, normalised ([`Bridge::line`]); kept when another mode is chosen.
    pub pasted: Vec<String>,
    pub remember: bool,
}

impl Setting {
    /// The bridges the next Tor start takes.
    pub fn in_use(&self) -> Vec<Bridge> {
        match self.mode {
            Mode::None => Vec::new(),
            Mode::Pasted => self
                .pasted
                .iter()
                .filter_map(|l| Bridge::parse(l).ok())
                .collect(),
            Mode::Bundled => bundled(),
        }
    }

    /// What the backend is told: with bridges chosen and none usable, Tor must not start.
    pub fn choice(&self) -> BridgeChoice {
        BridgeChoice {
            bridges: self.in_use(),
            chosen: self.mode != Mode::None,
            remember: self.remember,
        }
    }
}

/// The file that keeps the setting when "Remember" is ticked. Its own file, not
/// accounts.toml: an older timb (after a fallback) refuses fields it does not know and
/// would set the accounts aside.
const FILE: &str = "bridges.toml";
/// A bridges file larger than this is not one (64 lines of about 200 bytes).
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct BridgesFile {
    mode: String,
    #[serde(default)]
    lines: Vec<String>,
}

/// The remembered setting. No file: none. A file that cannot be read is set aside and
/// read as bridges chosen with none usable, so Tor does not start until the user chooses
/// again: reaching Tor directly is what someone who remembered bridges wanted to avoid.
/// The message names no bridge.
pub fn load(profile_root: &Path) -> (Setting, Option<String>) {
    let path = profile_root.join(FILE);
    let unreadable = |why: String| {
        let kept = path.with_extension("toml.unreadable");
        let _ = std::fs::rename(&path, &kept);
        let setting = Setting {
            mode: Mode::Pasted,
            pasted: Vec::new(),
            remember: true,
        };
        (
            setting,
            Some(format!("{FILE} {why}; it was kept as {FILE}.unreadable")),
        )
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Setting::default(), None),
        Err(e) => return unreadable(format!("cannot be read ({})", e.kind())),
        Ok(m) if m.len() > MAX_FILE_BYTES => return unreadable("is too large".into()),
        Ok(_) => {}
    }
    let parsed = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot be read ({})", e.kind()))
        .and_then(|t| {
            // The parser's message may quote a line: not shown.
            toml::from_str::<BridgesFile>(&t).map_err(|_| "is not valid".to_string())
        });
    let f = match parsed {
        Ok(f) => f,
        Err(why) => return unreadable(why),
    };
    let pasted: Vec<String> = f
        .lines
        .iter()
        .take(timb_tor::bridges::MAX_BRIDGES)
        .filter_map(|l| Bridge::parse(l).ok())
        .map(|b| b.line().to_owned())
        .collect();
    let setting = Setting {
        mode: match Mode::from_name(&f.mode) {
            // A mode this timb does not know: bridges were chosen all the same.
            Mode::None if !f.mode.is_empty() => Mode::Pasted,
            m => m,
        },
        pasted,
        remember: true,
    };
    let note = (setting.mode == Mode::Pasted && setting.pasted.len() < f.lines.len()).then(|| {
        format!(
            "{} remembered bridge lines no longer check and were left out",
            f.lines.len() - setting.pasted.len()
        )
    });
    (setting, note)
}

/// Keeps the setting when "Remember" is ticked and bridges are chosen; otherwise removes
/// any kept one. Written whole, owner-only.
pub fn save(profile_root: &Path, s: &Setting) -> std::io::Result<()> {
    let path = profile_root.join(FILE);
    if !s.remember || s.mode == Mode::None {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let body = toml::to_string(&BridgesFile {
        mode: s.mode.name().into(),
        lines: if s.mode == Mode::Pasted {
            s.pasted.clone()
        } else {
            Vec::new()
        },
    })
    .map_err(std::io::Error::other)?;
    crate::profile::write_settings(
        &path,
        "# timb bridges, kept because Remember was ticked.\n",
        &body,
    )
}

/// The built-in bridges. A line that does not parse is skipped (a test makes sure none does).
pub fn bundled() -> Vec<Bridge> {
    DEFAULT_BRIDGES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| Bridge::parse(l).ok())
        .collect()
}

/// Checks pasted text: its bridges, or the first refused line (from 1) and why.
pub fn check(text: &str) -> Result<Vec<Bridge>, (usize, BridgeProblem)> {
    Bridge::parse_lines(text).map_err(|(line, e)| (line, problem_of(&e)))
}

/// The window's sentence for a refusal (translated there; the Rust message is English).
fn problem_of(e: &BridgeLineError) -> BridgeProblem {
    use BridgeLineError as E;
    match e {
        E::Address(_) | E::NoAddress | E::PortZero(_) => BridgeProblem::Address,
        E::Name(_) => BridgeProblem::Name,
        E::NoFingerprint | E::Fingerprint(_) => BridgeProblem::Fingerprint,
        E::TransportName(_) | E::UnknownTransport(_) => BridgeProblem::Transport,
        E::Setting(_)
        | E::SettingWithoutTransport(_)
        | E::NoCert
        | E::Cert
        | E::NoIatMode
        | E::IatMode(_)
        | E::Twice(_) => BridgeProblem::Settings,
        E::TooMany => BridgeProblem::TooMany,
        E::Empty | E::TooLong | E::Arti(_) => BridgeProblem::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "192.0.2.3:443 0123456789ABCDEF0123456789ABCDEF01234567";

    #[test]
    fn the_shipped_list_has_no_line_that_is_not_a_bridge() {
        for line in DEFAULT_BRIDGES.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                assert!(Bridge::parse(line).is_ok(), "default-bridges.txt: {line}");
            }
        }
        // Without any, the dialog does not offer them.
        assert_eq!(Mode::from_index(2) == Mode::Bundled, !bundled().is_empty());
    }

    #[test]
    fn each_refusal_has_its_sentence() {
        for (text, line, want) in [
            ("192.0.2.3 0123", 1, BridgeProblem::Address),
            (
                "bridge.example.org:443 0123456789ABCDEF0123456789ABCDEF01234567",
                1,
                BridgeProblem::Name,
            ),
            ("\n192.0.2.3:443 0123", 2, BridgeProblem::Fingerprint),
            (
                "meek 192.0.2.3:443 0123456789ABCDEF0123456789ABCDEF01234567",
                1,
                BridgeProblem::Transport,
            ),
            (
                "obfs4 192.0.2.3:443 0123456789ABCDEF0123456789ABCDEF01234567 iat-mode=0",
                1,
                BridgeProblem::Settings,
            ),
        ] {
            assert_eq!(check(text).map(|_| ()), Err((line, want)), "{text:?}");
        }
        let many: String = (1..=65)
            .map(|i| format!("192.0.2.{i}:443 0123456789ABCDEF0123456789ABCDEF01234567\n"))
            .collect();
        assert_eq!(check(&many).map(|_| ()), Err((65, BridgeProblem::TooMany)));
        assert_eq!(check(PLAIN).map(|b| b.len()), Ok(1));
    }

    #[test]
    fn remembered_only_when_ticked_and_unusable_never_means_direct() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let mut s = Setting {
            mode: Mode::Pasted,
            pasted: vec![PLAIN.into()],
            remember: false,
        };
        save(dir.path(), &s).unwrap();
        assert!(!file.exists());
        s.remember = true;
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()), (s.clone(), None));
        // A line that no longer checks is left out, and said (without the line).
        std::fs::write(
            &file,
            format!("mode = \"pasted\"\nlines = [\"{PLAIN}\", \"x 1.2.3.4:5\"]\n"),
        )
        .unwrap();
        let (again, note) = load(dir.path());
        assert_eq!(again.in_use().len(), 1);
        assert!(note.unwrap().starts_with("1 remembered"));
        // None left, or a file that is not one: bridges chosen, none usable.
        for body in [
            "mode = \"pasted\"\nlines = [\"x\"]\n",
            "mode = [",
            "mode = \"meek\"\n",
        ] {
            std::fs::write(&file, body).unwrap();
            let (bad, _) = load(dir.path());
            let c = bad.choice();
            assert!(c.chosen && c.bridges.is_empty(), "{body:?}: {c:?}");
        }
        assert!(dir.path().join("bridges.toml.unreadable").exists());
        // "bundled" in a timb that has none: chosen, none usable.
        std::fs::write(&file, "mode = \"bundled\"\n").unwrap();
        let c = load(dir.path()).0.choice();
        assert!(c.chosen && c.bridges.len() == bundled().len());
        // Choosing none removes the file.
        s.mode = Mode::None;
        save(dir.path(), &s).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn only_the_chosen_mode_is_used() {
        let mut s = Setting {
            mode: Mode::Pasted,
            pasted: vec![PLAIN.into()],
            remember: false,
        };
        assert_eq!(s.in_use().len(), 1);
        s.mode = Mode::None;
        assert!(s.in_use().is_empty());
        for m in [Mode::None, Mode::Pasted, Mode::Bundled] {
            assert_eq!(Mode::from_name(m.name()), m);
        }
    }
}
