//! The Bridges setting: which bridges the next Tor start takes, checked as the user types.
//!
//! Three choices, as Tor Browser offers them: none, lines the user pastes, or the obfs4
//! bridges compiled into timb (`default-bridges.txt`, offered only when it holds any).
//! Bridge lines are the user's settings like accounts: kept in memory, and in the
//! profile only when "Remember" is ticked. They are never logged (a bridge's address is
//! what a censor wants to learn).

use timb_tor::{Bridge, BridgeLineError};

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
