//! The byte-level line layer: a hostile server must not be able to make us
//! buffer without limit, and bytes that are not UTF-8 must not stop a session.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line we keep, CR LF included: RFC 1459's 512 bytes plus the 8191
/// bytes IRCv3 allows for message tags. Anything longer is skipped whole.
pub const MAX_LINE_BYTES: usize = 8191 + 512;

/// What one read from the server produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line, CR LF and NUL bytes removed, decoded lossily.
    Text(String),
    /// A line longer than [`MAX_LINE_BYTES`]; its bytes were dropped as they
    /// arrived, so it never occupied more than the bound.
    TooLong,
}

/// Reads CR LF (or bare LF) terminated lines with a hard size bound.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Inside an overlong line: drop bytes until the next LF.
    discarding: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(512),
            discarding: false,
        }
    }

    /// The next line, or `None` at end of stream (a partial last line is
    /// dropped: a server that closes mid-line has not sent a message).
    ///
    /// Cancel-safe: bytes are moved into our own buffer before `consume`, so a
    /// `select!` that drops this future loses nothing.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let avail = self.inner.fill_buf().await?;
            if avail.is_empty() {
                self.buf.clear();
                return Ok(None);
            }
            let newline = avail.iter().position(|&b| b == b'\n');
            let take = newline.map_or(avail.len(), |p| p + 1);
            if self.discarding {
                self.inner.consume(take);
                if newline.is_some() {
                    self.discarding = false;
                    return Ok(Some(Line::TooLong));
                }
                continue;
            }
            if self.buf.len() + take > MAX_LINE_BYTES {
                self.buf.clear();
                self.buf.shrink_to(512);
                self.inner.consume(take);
                if newline.is_some() {
                    return Ok(Some(Line::TooLong));
                }
                self.discarding = true;
                continue;
            }
            self.buf.extend_from_slice(&avail[..take]);
            self.inner.consume(take);
            if newline.is_some() {
                let text = decode_line(&self.buf);
                self.buf.clear();
                return Ok(Some(Line::Text(text)));
            }
        }
    }
}

/// Strips the terminator and NULs, replacing invalid UTF-8 with U+FFFD
/// instead of guessing a legacy charset (a guess can mangle text silently).
pub fn decode_line(raw: &[u8]) -> String {
    let mut end = raw.len();
    while end > 0 && (raw[end - 1] == b'\n' || raw[end - 1] == b'\r') {
        end -= 1;
    }
    let s = String::from_utf8_lossy(&raw[..end]);
    if s.contains(['\0', '\r']) {
        s.chars().filter(|&c| c != '\0' && c != '\r').collect()
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn read_all(input: &[u8], cap: usize) -> Vec<Line> {
        let mut r = LineReader::new(BufReader::with_capacity(cap, input));
        let mut out = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn splits_crlf_and_lf() {
        let lines = read_all(b"PING :a\r\nPING :b\nPING :c\r\npartial", 4).await;
        assert_eq!(
            lines,
            vec![
                Line::Text("PING :a".into()),
                Line::Text("PING :b".into()),
                Line::Text("PING :c".into()),
            ]
        );
    }

    #[tokio::test]
    async fn overlong_line_is_skipped_and_reading_resumes() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 10];
        input.extend_from_slice(b"\r\nPING :ok\r\n");
        for cap in [7, 512, 64 * 1024] {
            let lines = read_all(&input, cap).await;
            assert_eq!(lines, vec![Line::TooLong, Line::Text("PING :ok".into())]);
        }
    }

    #[tokio::test]
    async fn line_at_the_bound_is_kept() {
        let mut input = vec![b'y'; MAX_LINE_BYTES - 2];
        input.extend_from_slice(b"\r\n");
        let lines = read_all(&input, 100).await;
        assert!(matches!(&lines[..], [Line::Text(t)] if t.len() == MAX_LINE_BYTES - 2));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_chars() {
        assert_eq!(
            decode_line(b"caf\xe9 \xff\xfe ok\0\r\n"),
            "caf\u{fffd} \u{fffd}\u{fffd} ok"
        );
        assert_eq!(decode_line("ünï\r\n".as_bytes()), "ünï");
    }
}
