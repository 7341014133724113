//! Tor Messenger's CTCP policy. CTCP lets anyone who knows a nick query the
//! client directly; each answer can identify the user or their machine:
//! PING measures their latency, TIME leaks their time zone, FINGER and
//! USERINFO their account, CLIENTINFO/SOURCE/VERSION details the software,
//! and DCC makes a direct connection that bypasses Tor. So only TIME (always
//! in UTC) and VERSION (one string every timb user shares) are answered, and
//! rate limited so a flood cannot get us disconnected for excess flood.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The one VERSION answer every timb user gives, so it identifies nothing
/// beyond "uses timb".
pub const VERSION_REPLY: &str = "timb";

const DELIM: char = '\x01';

/// A CTCP message found in a PRIVMSG or NOTICE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctcp<'a> {
    /// Upper-cased command, e.g. `ACTION`, `VERSION`, `DCC`.
    pub command: String,
    pub params: &'a str,
}

/// Parses a body that is a CTCP message (starts with `\x01`; the closing
/// `\x01` is optional as many clients omit it). Text outside a leading CTCP
/// block is not CTCP: mixed bodies are treated as plain text.
pub fn parse(body: &str) -> Option<Ctcp<'_>> {
    let inner = body.strip_prefix(DELIM)?;
    let inner = inner.strip_suffix(DELIM).unwrap_or(inner);
    let (command, params) = match inner.split_once(' ') {
        Some((c, p)) => (c, p),
        None => (inner, ""),
    };
    if command.is_empty() {
        return None;
    }
    Some(Ctcp {
        command: command.to_ascii_uppercase(),
        params,
    })
}

/// What to do with an incoming PRIVMSG/NOTICE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Not CTCP: an ordinary message.
    Text,
    /// `/me` action with its text.
    Action(String),
    /// Answer with this NOTICE body (CTCP-framed) to the sender.
    Reply(String),
    /// Dropped silently: refused request, CTCP reply, DCC, or over the rate.
    Ignore,
}

/// Token bucket: `capacity` replies at once, then one per `refill`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: u32,
    tokens: u32,
    refill: Duration,
    last: Instant,
}

impl TokenBucket {
    pub fn new(capacity: u32, refill: Duration, now: Instant) -> Self {
        TokenBucket {
            capacity,
            tokens: capacity,
            refill,
            last: now,
        }
    }

    /// When the next token is earned (now, if one is already available).
    pub fn ready_at(&self) -> Instant {
        if self.tokens > 0 {
            self.last
        } else {
            self.last + self.refill
        }
    }

    /// Takes a token if one is available. A zero refill interval means no
    /// limit (and never a wake-up time in the past with no token to take).
    pub fn take(&mut self, now: Instant) -> bool {
        if self.refill.is_zero() {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        let earned = (elapsed.as_nanos() / self.refill.as_nanos()).min(u32::MAX as u128) as u32;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.capacity);
            // Keep the remainder so slow, steady requests still refill.
            self.last += self.refill * earned;
            if self.tokens == self.capacity {
                self.last = now;
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// The policy with its flood limiter.
#[derive(Debug, Clone)]
pub struct CtcpPolicy {
    bucket: TokenBucket,
}

/// Replies allowed in a burst before the rate limit applies.
pub const REPLY_BURST: u32 = 4;
/// One more reply is allowed per this interval.
pub const REPLY_REFILL: Duration = Duration::from_secs(5);

impl CtcpPolicy {
    pub fn new(now: Instant) -> Self {
        Self::with_limit(REPLY_BURST, REPLY_REFILL, now)
    }

    pub fn with_limit(burst: u32, refill: Duration, now: Instant) -> Self {
        CtcpPolicy {
            bucket: TokenBucket::new(burst, refill, now),
        }
    }

    /// Decides what a body means and whether it gets an answer.
    ///
    /// `is_notice`: NOTICEs never get an answer (RFC 1459), and CTCP inside a
    /// NOTICE is someone's reply, which we never asked for. `to_channel`:
    /// requests sent to a whole channel are not answered, which keeps a single
    /// line from making every timb user in a channel reply at once.
    pub fn incoming(
        &mut self,
        body: &str,
        is_notice: bool,
        to_channel: bool,
        now: Instant,
        wall: SystemTime,
    ) -> Incoming {
        let Some(ctcp) = parse(body) else {
            return Incoming::Text;
        };
        if ctcp.command == "ACTION" {
            return if is_notice {
                Incoming::Ignore
            } else {
                Incoming::Action(ctcp.params.to_owned())
            };
        }
        if is_notice || to_channel {
            return Incoming::Ignore;
        }
        let reply = match ctcp.command.as_str() {
            "TIME" => format!("{DELIM}TIME {}{DELIM}", rfc2822_utc(wall)),
            "VERSION" => format!("{DELIM}VERSION {VERSION_REPLY}{DELIM}"),
            // PING, FINGER, USERINFO, SOURCE, CLIENTINFO, DCC and anything
            // unknown: silence, which is indistinguishable from a client that
            // does not implement CTCP at all.
            _ => return Incoming::Ignore,
        };
        if self.bucket.take(now) {
            Incoming::Reply(reply)
        } else {
            Incoming::Ignore
        }
    }
}

/// `Mon, 23 Nov 2026 17:45:50 +0000`: RFC 2822 in UTC, whatever the local
/// zone (which would otherwise narrow down where the user is).
pub fn rfc2822_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (era-based
/// arithmetic, valid for any day count a u64 of seconds can produce).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ask(p: &mut CtcpPolicy, body: &str) -> Incoming {
        p.incoming(body, false, false, Instant::now(), at(1_700_000_000))
    }

    #[test]
    fn time_is_rfc2822_utc() {
        assert_eq!(rfc2822_utc(at(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822_utc(at(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            rfc2822_utc(at(1_700_000_000)),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            rfc2822_utc(at(4_102_444_799)),
            "Thu, 31 Dec 2099 23:59:59 +0000"
        );
        let now = SystemTime::now();
        let parsed = chrono::DateTime::parse_from_rfc2822(&rfc2822_utc(now)).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), 0);
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(parsed.timestamp(), secs);
    }

    #[test]
    fn answers_only_time_and_version() {
        let mut p = CtcpPolicy::with_limit(100, Duration::from_secs(1), Instant::now());
        assert_eq!(
            ask(&mut p, "\x01VERSION\x01"),
            Incoming::Reply("\x01VERSION timb\x01".into())
        );
        assert_eq!(
            ask(&mut p, "\x01time\x01"),
            Incoming::Reply("\x01TIME Tue, 14 Nov 2023 22:13:20 +0000\x01".into())
        );
        for refused in [
            "\x01PING 12345\x01",
            "\x01FINGER\x01",
            "\x01USERINFO\x01",
            "\x01SOURCE\x01",
            "\x01CLIENTINFO\x01",
            "\x01CLIENTINFO PING\x01",
            "\x01DCC SEND file 2130706433 5000 100\x01",
            "\x01DCC CHAT chat 2130706433 5001\x01",
            "\x01ERRMSG x\x01",
            "\x01XYZZY\x01",
        ] {
            assert_eq!(ask(&mut p, refused), Incoming::Ignore, "{refused:?}");
        }
    }

    #[test]
    fn action_passes_through_and_text_is_text() {
        let mut p = CtcpPolicy::new(Instant::now());
        assert_eq!(
            ask(&mut p, "\x01ACTION waves\x01"),
            Incoming::Action("waves".into())
        );
        assert_eq!(
            ask(&mut p, "\x01ACTION waves"),
            Incoming::Action("waves".into())
        );
        assert_eq!(ask(&mut p, "hello \x01VERSION\x01"), Incoming::Text);
        assert_eq!(ask(&mut p, "\x01\x01"), Incoming::Text);
    }

    #[test]
    fn notices_and_channel_requests_get_no_reply() {
        let mut p = CtcpPolicy::new(Instant::now());
        let now = Instant::now();
        let wall = SystemTime::now();
        assert_eq!(
            p.incoming("\x01VERSION\x01", true, false, now, wall),
            Incoming::Ignore
        );
        assert_eq!(
            p.incoming("\x01VERSION\x01", false, true, now, wall),
            Incoming::Ignore
        );
        assert_eq!(
            p.incoming("\x01ACTION x\x01", false, true, now, wall),
            Incoming::Action("x".into())
        );
    }

    #[test]
    fn zero_refill_means_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, Duration::ZERO, t0);
        assert!((0..100).all(|_| b.take(t0)));
        assert!(b.ready_at() <= t0);
    }

    #[test]
    fn replies_are_rate_limited() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut p = CtcpPolicy::with_limit(4, Duration::from_secs(5), t0);
        let replies = (0..100)
            .filter(|_| {
                matches!(
                    p.incoming("\x01VERSION\x01", false, false, t0, wall),
                    Incoming::Reply(_)
                )
            })
            .count();
        assert_eq!(replies, 4);
        let t1 = t0 + Duration::from_secs(11);
        let more = (0..10)
            .filter(|_| {
                matches!(
                    p.incoming("\x01VERSION\x01", false, false, t1, wall),
                    Incoming::Reply(_)
                )
            })
            .count();
        assert_eq!(more, 2);
    }
}
