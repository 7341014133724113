//! mIRC formatting codes become plain text: the GUI shows text only, and
//! colour tricks (white on white, reversed text) can hide or fake content.

const BOLD: char = '\x02';
const COLOUR: char = '\x03';
const HEX_COLOUR: char = '\x04';
const RESET: char = '\x0f';
const MONOSPACE: char = '\x11';
const REVERSE: char = '\x16';
const ITALIC: char = '\x1d';
const STRIKE: char = '\x1e';
const UNDERLINE: char = '\x1f';

/// Removes formatting codes (with a colour code's digits) and every other C0
/// control character except tab, which is shown as a space.
pub fn strip_formatting(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            COLOUR => {
                // fg: up to 2 digits, then optional ",bg" with 1–2 digits.
                if skip_while_max(&mut chars, 2, |c| c.is_ascii_digit()) > 0 {
                    skip_comma_then(&mut chars, 2, |c| c.is_ascii_digit());
                }
            }
            HEX_COLOUR => {
                if skip_while_max(&mut chars, 6, |c| c.is_ascii_hexdigit()) > 0 {
                    skip_comma_then(&mut chars, 6, |c| c.is_ascii_hexdigit());
                }
            }
            BOLD | RESET | MONOSPACE | REVERSE | ITALIC | STRIKE | UNDERLINE => {}
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_while_max(
    it: &mut std::iter::Peekable<std::str::Chars<'_>>,
    max: usize,
    f: impl Fn(char) -> bool,
) -> usize {
    let mut n = 0;
    while n < max && it.peek().is_some_and(|&c| f(c)) {
        it.next();
        n += 1;
    }
    n
}

/// Skips ",<digits>" only when digits follow, so "\x034,hello" keeps its comma.
fn skip_comma_then(
    it: &mut std::iter::Peekable<std::str::Chars<'_>>,
    max: usize,
    f: impl Fn(char) -> bool + Copy,
) {
    if it.peek() != Some(&',') {
        return;
    }
    let mut look = it.clone();
    look.next();
    if look.peek().is_some_and(|&c| f(c)) {
        it.next();
        skip_while_max(it, max, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_codes() {
        assert_eq!(
            strip_formatting("\x02bold\x02 \x1fu\x1f \x1di\x0f"),
            "bold u i"
        );
        assert_eq!(strip_formatting("\x0304red\x03 \x034,12x\x03"), "red x");
        assert_eq!(strip_formatting("\x0312,hello"), ",hello");
        assert_eq!(strip_formatting("\x03,5x"), ",5x");
        assert_eq!(strip_formatting("\x04FF00AA,000000hex"), "hex");
        assert_eq!(strip_formatting("\x031234"), "34");
        assert_eq!(strip_formatting("a\tb\x07\x16c\x1e\x11"), "a bc");
        assert_eq!(strip_formatting("plain ünïcode ✓"), "plain ünïcode ✓");
    }
}
