//! Plain-Rust UI state: what the window shows, kept outside slint so it can be
//! reasoned about and tested without a display, and bounded so a chatty peer
//! cannot grow memory without limit.

use std::collections::VecDeque;

use timb_core::Target;
use timb_otr::SmpEvent;

/// Messages kept per conversation; older ones are forgotten (never written anywhere).
pub const SCROLLBACK: usize = 2_000;
/// Longest message body kept for display; the protocols bound lines far below this.
pub const MAX_BODY_CHARS: usize = 64 * 1024;
/// Members listed per group; a hostile server cannot make the list unbounded.
pub const MAX_MEMBERS: usize = 5_000;
/// Contacts and pending requests kept per account.
pub const MAX_CONTACTS: usize = 10_000;

/// The privacy state of a one-to-one conversation, as the banner says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// No OTR session yet: anything typed is held until encryption is up.
    NotPrivate,
    PrivateUnverified,
    PrivateVerified,
    /// Either side ended OTR: messages are held, and only the user (or the peer) starts a
    /// new session.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Received,
    Sent,
    /// Held by the OTR layer until the conversation is encrypted.
    Waiting,
    /// The OTR layer gave up on it; shown so the user knows it never left.
    Undelivered,
    /// Local notices (joins, errors); not from anyone.
    Notice,
    /// The peer sent it in the clear; shown with a warning, it was never private.
    Unencrypted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender: String,
    pub received_at: u64,
    pub body: String,
    pub status: Status,
    pub outgoing: bool,
}

/// One open conversation: a contact or a group, on one account.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub target: Target,
    pub messages: VecDeque<Message>,
    pub privacy: Privacy,
    pub their_fingerprint: Option<String>,
    /// Where OTR's shared-secret check (the socialist millionaires' protocol)
    /// stands: its last step, `None` before the first.
    pub smp: Option<SmpEvent>,
    pub members: Vec<String>,
    pub unread: u32,
    /// Held messages were given up on because the contact never answered
    /// the request for encryption: the window says why and what to do.
    pub unanswered: bool,
}

impl Conversation {
    pub fn new(target: Target) -> Self {
        Conversation {
            target,
            messages: VecDeque::new(),
            privacy: Privacy::NotPrivate,
            their_fingerprint: None,
            smp: None,
            members: Vec::new(),
            unread: 0,
            unanswered: false,
        }
    }

    /// Appends, dropping the oldest message beyond [`SCROLLBACK`]; returns how
    /// many were dropped so a view model can drop the same rows.
    pub fn push(&mut self, mut m: Message) -> usize {
        if m.body.chars().count() > MAX_BODY_CHARS {
            m.body = m.body.chars().take(MAX_BODY_CHARS).collect();
            m.body.push('…');
        }
        self.messages.push_back(m);
        let mut dropped = 0;
        while self.messages.len() > SCROLLBACK {
            self.messages.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Held messages went out once encryption came up.
    pub fn release_waiting(&mut self) -> bool {
        let mut changed = false;
        for m in self
            .messages
            .iter_mut()
            .filter(|m| m.status == Status::Waiting)
        {
            m.status = Status::Sent;
            changed = true;
        }
        changed
    }

    /// The newest `count` held messages were given up on: mark them, keep them visible.
    pub fn mark_undelivered(&mut self, count: usize) -> bool {
        let mut left = count;
        for m in self.messages.iter_mut().rev() {
            if left == 0 {
                break;
            }
            if m.status == Status::Waiting {
                m.status = Status::Undelivered;
                left -= 1;
            }
        }
        left != count
    }

    pub fn set_members(&mut self, mut members: Vec<String>) {
        members.truncate(MAX_MEMBERS);
        members.sort_by_key(|m| m.to_lowercase());
        members.dedup();
        self.members = members;
    }

    pub fn add_member(&mut self, nick: &str) {
        if self.members.len() < MAX_MEMBERS && !self.members.iter().any(|m| m == nick) {
            self.members.push(nick.to_owned());
            self.members.sort_by_key(|m| m.to_lowercase());
        }
    }

    pub fn remove_member(&mut self, nick: &str) {
        self.members.retain(|m| m != nick);
    }
}

/// Whether a paragraph should be laid out right-to-left: the first strong
/// directional character decides (the Unicode bidi "P2/P3" rule, simplified to
/// the scripts people write in).
pub fn is_rtl_text(s: &str) -> bool {
    for c in s.chars() {
        let u = c as u32;
        let rtl = matches!(u,
            0x0590..=0x08FF      // Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic, Arabic ext.
            | 0xFB1D..=0xFDFF    // Hebrew and Arabic presentation forms A
            | 0xFE70..=0xFEFF    // Arabic presentation forms B
            | 0x10800..=0x10FFF  // historic RTL scripts
            | 0x1E800..=0x1EFFF); // Mende Kikakui, Adlam, Arabic math
        if rtl {
            return true;
        }
        if c.is_alphabetic() {
            return false;
        }
    }
    false
}

/// Web-looking substrings, shown as copyable text: timb never opens links, so
/// this only helps the user copy them exactly.
pub fn find_links(s: &str) -> Vec<String> {
    const SCHEMES: [&str; 5] = ["https://", "http://", "xmpp:", "irc://", "ircs://"];
    const MAX_LINKS: usize = 8;
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let starts = SCHEMES.iter().any(|p| lower.starts_with(p))
            || (lower.contains(".onion") && lower.len() > ".onion".len());
        if starts {
            let trimmed =
                word.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '"', '\'', '>']);
            if !trimmed.is_empty() && !out.iter().any(|l| l == trimmed) {
                out.push(trimmed.to_owned());
            }
        }
        if out.len() >= MAX_LINKS {
            break;
        }
    }
    out
}

/// HH:MM in UTC: local time would need the host's timezone database, and a
/// fixed zone keeps screenshots and tests deterministic.
pub fn format_time(unix: u64) -> String {
    let secs = unix % 86_400;
    format!("{:02}:{:02}", secs / 3600, (secs % 3600) / 60)
}

/// libotr's human fingerprint: five groups of eight upper-case hex digits.
pub fn human_fingerprint(fp: &str) -> String {
    let hex: String = fp
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if hex.len() != 40 {
        return fp.trim().to_owned();
    }
    hex.as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Strips control characters (bidi overrides included) a peer could use to
/// make a message or name render as something it is not.
pub fn sanitize(s: &str) -> String {
    let bidi_override = |c: char| matches!(c as u32, 0x202A..=0x202E | 0x2066..=0x2069);
    let control = |c: char| c.is_control() && c != '\n' && c != '\t';
    s.chars()
        .filter(|&c| !bidi_override(c) && !control(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize, status: Status) -> Message {
        Message {
            sender: "a".into(),
            received_at: 0,
            body: format!("m{n}"),
            status,
            outgoing: true,
        }
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut c = Conversation::new(Target::Direct("x".into()));
        for i in 0..SCROLLBACK + 500 {
            c.push(msg(i, Status::Received));
        }
        assert_eq!(c.messages.len(), SCROLLBACK);
        assert_eq!(c.messages.front().unwrap().body, "m500");
    }

    #[test]
    fn undelivered_marks_newest_waiting_only() {
        let mut c = Conversation::new(Target::Direct("x".into()));
        c.push(msg(0, Status::Waiting));
        c.push(msg(1, Status::Waiting));
        c.push(msg(2, Status::Received));
        assert!(c.mark_undelivered(1));
        let s: Vec<_> = c.messages.iter().map(|m| m.status).collect();
        assert_eq!(s, [Status::Waiting, Status::Undelivered, Status::Received]);
        assert!(c.release_waiting());
        assert_eq!(c.messages[0].status, Status::Sent);
        assert_eq!(c.messages[1].status, Status::Undelivered);
    }

    #[test]
    fn direction_and_links() {
        assert!(is_rtl_text("  123 مرحبا hello"));
        assert!(is_rtl_text("سلام"));
        assert!(!is_rtl_text("hello مرحبا"));
        assert!(!is_rtl_text("123"));
        assert_eq!(
            find_links("see https://example.org/a, and abc.onion."),
            ["https://example.org/a", "abc.onion"]
        );
        assert!(find_links("no links here").is_empty());
    }

    #[test]
    fn fingerprints_and_time() {
        assert_eq!(
            human_fingerprint("0123456789abcdef0123456789abcdef01234567"),
            "01234567 89ABCDEF 01234567 89ABCDEF 01234567"
        );
        assert_eq!(format_time(3600 * 25 + 61), "01:01");
        assert_eq!(sanitize("a\u{202E}b\u{7}c\nd"), "abc\nd");
    }
}
