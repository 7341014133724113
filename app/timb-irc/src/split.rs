//! Outgoing text to protocol lines: within the 512-byte limit after the
//! server adds its prefix, cut on character boundaries only, and never able
//! to smuggle a second command (CR/LF) or a CTCP request (0x01) like DCC.

/// RFC 1459 line limit, CR LF included.
pub const IRC_LINE_LIMIT: usize = 512;
/// Longest user and host parts we assume in the `:nick!user@host` prefix the
/// server puts in front of our line when relaying it. Hosts are up to 63
/// bytes on most networks; cloaks and IPv6 can be long, so be generous.
const ASSUMED_USER: usize = 12;
const ASSUMED_HOST: usize = 72;

/// Bytes of body that fit in one relayed `command target :body` line.
pub fn body_budget(our_nick: &str, command: &str, target: &str, ctcp_action: bool) -> usize {
    // ":" nick "!" user "@" host " " command " " target " :" body "\r\n"
    let overhead = 1
        + our_nick.len()
        + 1
        + ASSUMED_USER
        + 1
        + ASSUMED_HOST
        + 1
        + command.len()
        + 1
        + target.len()
        + 2
        + 2
        + if ctcp_action {
            "\x01ACTION \x01".len()
        } else {
            0
        };
    IRC_LINE_LIMIT.saturating_sub(overhead).max(16)
}

/// Cuts `text` into pieces of at most `budget` bytes, in order. A cut goes
/// at a space in the last quarter of the piece when there is one, and that
/// space is dropped (servers strip trailing spaces, and each piece shows as
/// its own line anyway); otherwise at a character boundary, never inside a
/// UTF-8 sequence. Pieces never end in a space.
pub fn split_on_chars(text: &str, budget: usize) -> Vec<&str> {
    let budget = budget.max(4); // one UTF-8 sequence always fits
    let mut out = Vec::new();
    let mut rest = text.trim_end_matches(' ');
    while !rest.is_empty() {
        if rest.len() <= budget {
            out.push(rest);
            break;
        }
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, next) = if rest.as_bytes()[cut] == b' ' {
            (&rest[..cut], &rest[cut + 1..])
        } else {
            match rest[..cut].rfind(' ') {
                Some(p) if p >= cut * 3 / 4 => (&rest[..p], &rest[p + 1..]),
                _ => (&rest[..cut], &rest[cut..]),
            }
        };
        let piece = piece.trim_end_matches(' ');
        if !piece.is_empty() {
            out.push(piece);
        }
        rest = next;
    }
    out
}

/// Body text to the pieces we send: one IRC line per input line (a newline
/// in a message cannot be carried any other way), empty lines dropped, and
/// CR, NUL and the CTCP delimiter removed.
pub fn outgoing_lines(body: &str, budget: usize) -> Vec<String> {
    body.split('\n')
        .map(|l| l.replace(['\r', '\0', '\x01'], ""))
        .filter(|l| !l.is_empty())
        .flat_map(|l| {
            split_on_chars(&l, budget)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A nick or channel we are about to put on the wire: anything that could end
/// the line or shift the parameters is refused rather than escaped.
pub fn valid_target(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 200
        && !t.starts_with(':')
        && !t.contains([' ', ',', '\r', '\n', '\0', '\x01', '\x07'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_cuts_inside_a_char() {
        let text = "aé€😀".repeat(200);
        for budget in [4, 5, 7, 100, 399] {
            let parts = split_on_chars(&text, budget);
            assert!(parts.iter().all(|p| p.len() <= budget && !p.is_empty()));
            assert_eq!(parts.concat(), text);
        }
    }

    #[test]
    fn prefers_spaces_and_never_ends_in_one() {
        let text = (0..300)
            .map(|i| format!("w{i}é€"))
            .collect::<Vec<_>>()
            .join(" ");
        for budget in [10, 37, 100, 399] {
            let parts = split_on_chars(&text, budget);
            assert!(parts.iter().all(|p| p.len() <= budget && !p.ends_with(' ')));
            assert_eq!(parts.join(" "), text, "budget {budget}");
        }
        assert_eq!(split_on_chars("ab  cd", 3), vec!["ab", "cd"]);
        assert_eq!(split_on_chars("abc   ", 100), vec!["abc"]);
        assert!(split_on_chars("     ", 2).is_empty());
    }

    #[test]
    fn budget_leaves_room_for_the_relay_prefix() {
        let nick = "alice_with_long_nick";
        let target = "#some-channel";
        let b = body_budget(nick, "PRIVMSG", target, false);
        let host = "h".repeat(63);
        let relayed = format!(
            ":{nick}!~alice12@{host} PRIVMSG {target} :{}\r\n",
            "x".repeat(b)
        );
        assert!(relayed.len() <= IRC_LINE_LIMIT, "{}", relayed.len());
        assert!(body_budget(nick, "PRIVMSG", target, true) < b);
    }

    #[test]
    fn newlines_and_control_bytes_cannot_inject() {
        let lines = outgoing_lines("hi\r\nQUIT :x\n\n\x01DCC SEND f 1 2 3\x01", 400);
        assert_eq!(lines, vec!["hi", "QUIT :x", "DCC SEND f 1 2 3"]);
        assert!(!valid_target("#a b"));
        assert!(!valid_target("nick\r\nQUIT"));
        assert!(!valid_target(":x"));
        assert!(valid_target("#chan"));
        assert!(valid_target("bob"));
    }
}
