//! Account settings: validation of the form, and the optional profile file.
//!
//! Passwords never reach this file's types that are saved: [`SavedAccount`]
//! has no password field at all, so a password cannot be written by mistake.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use timb_core::Protocol;

/// The profile file that keeps account settings the user chose to remember.
pub const ACCOUNTS_FILE: &str = "accounts.toml";
/// Cap on remembered accounts; a damaged file cannot make us allocate without bound.
pub const MAX_ACCOUNTS: usize = 64;
const MAX_FILE_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Only the SPKI pin given (or bundled) is accepted.
    Pinned,
    /// The first key seen is remembered; a later change is a hard error.
    Tofu,
    /// Ordinary certificate validation against bundled web roots.
    WebPki,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordMode {
    /// Asked at every connect, forgotten once used.
    AskEachTime,
    /// Kept in memory until timb exits; never written.
    KeepForSession,
}

/// Settings safe to write to the profile: no password field exists here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedAccount {
    pub protocol: SavedProtocol,
    pub server: String,
    pub port: u16,
    pub tls: TlsMode,
    /// SPKI SHA-256 pin (hex) when `tls` is `Pinned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Bare JID for XMPP, nick for IRC.
    pub identity: String,
    pub password_mode: PasswordMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SavedProtocol {
    Xmpp,
    Irc,
}

impl From<SavedProtocol> for Protocol {
    fn from(p: SavedProtocol) -> Protocol {
        match p {
            SavedProtocol::Xmpp => Protocol::Xmpp,
            SavedProtocol::Irc => Protocol::Irc,
        }
    }
}

/// An account as the running program knows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub settings: SavedAccount,
    /// Only with `KeepForSession`; dropped with the account.
    pub password: Option<String>,
    /// Whether the user asked for this account to be kept in the profile.
    pub remember: bool,
    /// Create the account on the server (XMPP in-band registration) at the
    /// next connect. Never saved: once created, it is an ordinary account.
    pub create: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("settings", &self.settings)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("remember", &self.remember)
            .field("create", &self.create)
            .finish()
    }
}

impl Account {
    pub fn label(&self) -> String {
        let s = &self.settings;
        match s.protocol {
            SavedProtocol::Xmpp => s.identity.clone(),
            SavedProtocol::Irc => format!("{} @ {}", s.identity, s.server),
        }
    }
}

/// Which field is wrong; the window turns this into a translated sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    ServerEmpty,
    ServerInvalid,
    PortInvalid,
    IdentityEmpty,
    JidInvalid,
    NickInvalid,
    PinInvalid,
    PasswordEmpty,
}

/// The form exactly as typed.
#[derive(Debug, Clone, Default)]
pub struct FormInput {
    pub irc: bool,
    pub server: String,
    pub port: String,
    /// 0 pinned, 1 TOFU, 2 web PKI.
    pub tls: i32,
    pub pin: String,
    pub identity: String,
    /// 0 ask each time, 1 keep for the session.
    pub password_mode: i32,
    pub password: String,
    pub remember: bool,
    /// XMPP only: create the account on the server at the first connect.
    pub create: bool,
}

/// Checks the form; the first problem found is reported, in field order.
pub fn validate(f: &FormInput) -> Result<Account, FieldError> {
    let server = f.server.trim().trim_end_matches('.').to_ascii_lowercase();
    if server.is_empty() {
        return Err(FieldError::ServerEmpty);
    }
    if !valid_host(&server) {
        return Err(FieldError::ServerInvalid);
    }
    let port = match f.port.trim() {
        "" => default_port(f.irc),
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(FieldError::PortInvalid),
        },
    };
    let identity = f.identity.trim().to_owned();
    if identity.is_empty() {
        return Err(FieldError::IdentityEmpty);
    }
    if f.irc {
        if !valid_nick(&identity) {
            return Err(FieldError::NickInvalid);
        }
    } else if !valid_bare_jid(&identity) {
        return Err(FieldError::JidInvalid);
    }
    let tls = match f.tls {
        0 => TlsMode::Pinned,
        1 => TlsMode::Tofu,
        _ => TlsMode::WebPki,
    };
    let pin = if tls == TlsMode::Pinned {
        let hex: String = f
            .pin
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(FieldError::PinInvalid);
        }
        Some(hex.to_ascii_lowercase())
    } else {
        None
    };
    let password_mode = if f.password_mode == 1 {
        PasswordMode::KeepForSession
    } else {
        PasswordMode::AskEachTime
    };
    let password = match password_mode {
        PasswordMode::KeepForSession if f.password.is_empty() => {
            return Err(FieldError::PasswordEmpty)
        }
        PasswordMode::KeepForSession => Some(f.password.clone()),
        PasswordMode::AskEachTime => None,
    };
    Ok(Account {
        settings: SavedAccount {
            protocol: if f.irc {
                SavedProtocol::Irc
            } else {
                SavedProtocol::Xmpp
            },
            server,
            port,
            tls,
            pin,
            identity,
            password_mode,
        },
        password,
        remember: f.remember,
        create: f.create && !f.irc,
    })
}

pub fn default_port(irc: bool) -> u16 {
    if irc {
        6697
    } else {
        5222
    }
}

/// A DNS name, `.onion` included, or an IPv4 literal; no URLs, no spaces.
fn valid_host(h: &str) -> bool {
    if h.len() > 253 || h.starts_with('.') {
        return false;
    }
    if let Some(label) = h.strip_suffix(".onion") {
        let svc = label.rsplit('.').next().unwrap_or_default();
        // v3 onion addresses: 56 base32 characters.
        return svc.len() == 56 && svc.chars().all(|c| matches!(c, 'a'..='z' | '2'..='7'));
    }
    h.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

fn valid_bare_jid(j: &str) -> bool {
    let Some((local, domain)) = j.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 1023
        && !local
            .chars()
            .any(|c| c.is_whitespace() || "\"&'/:<>@".contains(c))
        && !domain.contains('/')
        && valid_host(&domain.to_ascii_lowercase())
}

/// RFC 2812 nick characters; length is left to the server (many allow > 9).
fn valid_nick(n: &str) -> bool {
    let special = |c: char| "[]\\`_^{|}".contains(c);
    let mut chars = n.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    n.len() <= 32
        && (first.is_ascii_alphabetic() || special(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || special(c) || c == '-')
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    #[serde(default)]
    account: Vec<SavedAccount>,
    /// Interface language chosen in the settings ("" follows the system).
    #[serde(default)]
    language: String,
    /// "Check for updates" (on unless the user turned it off).
    #[serde(default = "on", skip_serializing_if = "is_on")]
    check_updates: bool,
}

fn on() -> bool {
    true
}

fn is_on(b: &bool) -> bool {
    *b
}

/// What the profile remembers: accounts without passwords, the language, the update setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub accounts: Vec<SavedAccount>,
    pub language: String,
    pub check_updates: bool,
}

impl Default for Remembered {
    fn default() -> Remembered {
        Remembered {
            accounts: Vec::new(),
            language: String::new(),
            check_updates: true,
        }
    }
}

pub fn file_path(profile_root: &Path) -> PathBuf {
    profile_root.join(ACCOUNTS_FILE)
}

/// Reads remembered settings; a missing file is an empty profile.
pub fn load(profile_root: &Path) -> io::Result<Remembered> {
    let path = file_path(profile_root);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Remembered::default()),
        Err(e) => return Err(e),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(io::Error::other("accounts.toml is too large"));
    }
    let text = std::fs::read_to_string(&path)?;
    let mut f: AccountsFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            // The parser's message quotes the offending line, which can name an account or a
            // server: say only where it is. Keep the file aside so the next save cannot
            // overwrite what the user had.
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map_or(0, |before| before.lines().count().max(1));
            let kept = path.with_extension("toml.unreadable");
            std::fs::rename(&path, &kept)?;
            return Err(io::Error::other(format!(
                "{ACCOUNTS_FILE} is not valid (near line {line}); it was kept as {}",
                kept.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )));
        }
    };
    f.account.truncate(MAX_ACCOUNTS);
    Ok(Remembered {
        accounts: f.account,
        language: f.language,
        check_updates: f.check_updates,
    })
}

/// Writes remembered settings atomically (temp file + rename), owner-only.
/// With nothing to remember the file is removed rather than left empty.
pub fn save(profile_root: &Path, r: &Remembered) -> io::Result<()> {
    let path = file_path(profile_root);
    if r.accounts.is_empty() && r.language.is_empty() && r.check_updates {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let body = toml::to_string(&AccountsFile {
        account: r.accounts.clone(),
        language: r.language.clone(),
        check_updates: r.check_updates,
    })
    .map_err(io::Error::other)?;
    crate::profile::write_settings(
        &path,
        "# timb account settings. Passwords are never stored here.\n",
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xmpp() -> FormInput {
        FormInput {
            irc: false,
            server: "chat.example.org".into(),
            port: "".into(),
            tls: 2,
            identity: "alice@example.org".into(),
            ..Default::default()
        }
    }

    #[test]
    fn validation_reports_each_field() {
        assert_eq!(validate(&xmpp()).unwrap().settings.port, 5222);
        let mut f = xmpp();
        f.server = "  ".into();
        assert_eq!(validate(&f), Err(FieldError::ServerEmpty));
        f.server = "http://x.org".into();
        assert_eq!(validate(&f), Err(FieldError::ServerInvalid));
        f.server = "abc.onion".into();
        assert_eq!(validate(&f), Err(FieldError::ServerInvalid));
        f.server = format!("{}.onion", "a".repeat(56));
        assert!(validate(&f).is_ok());
        f.port = "70000".into();
        assert_eq!(validate(&f), Err(FieldError::PortInvalid));
        f.port = "5223".into();
        f.identity = "alice".into();
        assert_eq!(validate(&f), Err(FieldError::JidInvalid));
        f.identity = "alice@example.org".into();
        f.tls = 0;
        assert_eq!(validate(&f), Err(FieldError::PinInvalid));
        f.pin = "AB:".repeat(32);
        assert_eq!(validate(&f).unwrap().settings.pin.unwrap(), "ab".repeat(32));
        f.password_mode = 1;
        assert_eq!(validate(&f), Err(FieldError::PasswordEmpty));
        f.password = "pw".into();
        assert_eq!(validate(&f).unwrap().password.as_deref(), Some("pw"));
    }

    #[test]
    fn irc_nick_rules() {
        let mut f = xmpp();
        f.irc = true;
        f.identity = "9lives".into();
        assert_eq!(validate(&f), Err(FieldError::NickInvalid));
        f.identity = "[alice]".into();
        assert_eq!(validate(&f).unwrap().settings.port, 6697);
    }

    #[test]
    fn saved_file_has_no_password() {
        let dir = std::env::temp_dir().join(format!("timb-gui-acc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = xmpp();
        f.password_mode = 1;
        f.password = "hunter2-secret".into();
        let acc = validate(&f).unwrap();
        let r = Remembered {
            accounts: vec![acc.settings.clone()],
            language: "fa".into(),
            check_updates: true,
        };
        save(&dir, &r).unwrap();
        let text = std::fs::read_to_string(file_path(&dir)).unwrap();
        assert!(!text.contains("hunter2"));
        assert_eq!(load(&dir).unwrap(), r);
        // Turning update checks off is remembered, even with nothing else to remember.
        let off = Remembered {
            check_updates: false,
            ..Remembered::default()
        };
        save(&dir, &off).unwrap();
        assert_eq!(load(&dir).unwrap(), off);
        save(&dir, &Remembered::default()).unwrap();
        assert!(!file_path(&dir).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A damaged accounts file is kept aside, and the error names neither account nor server.
    #[test]
    fn an_unreadable_file_is_kept_and_its_contents_not_quoted() {
        let dir = std::env::temp_dir().join(format!("timb-gui-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = "[[account]]\nidentity = \"alice@secret.example\nserver = 3\n";
        std::fs::write(file_path(&dir), bad).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(!e.contains("alice") && !e.contains("secret"), "{e}");
        assert!(e.contains("line"), "{e}");
        assert!(!file_path(&dir).exists());
        let kept = std::fs::read_to_string(dir.join("accounts.toml.unreadable")).unwrap();
        assert_eq!(kept, bad, "nothing lost");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
