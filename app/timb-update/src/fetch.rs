//! The transport seam: [`Fetch`] opens a `GET`, [`Body`] yields chunks. The updater's byte
//! caps and timeouts are applied here, around any fetcher, so the app's Tor transport and a
//! test's loopback one are held to the same limits.

use std::future::Future;
use std::time::Duration;

/// Why a file could not be fetched (not whether its bytes are trusted: that is TUF's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the mirror does not have it (HTTP 404)")]
    NotFound,
    #[error("the mirror answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Refused(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the mirror's HTTP is broken: {0}")]
    Http(String),
    #[error("the mirror sent more than the {max} bytes allowed (endless data); stopped reading")]
    TooLarge { max: u64 },
    #[error("the mirror sent nothing for {0} s (slow retrieval); gave up")]
    ReadTimeout(u64),
    #[error("the download took longer than {0} s (slow retrieval); gave up")]
    RequestTimeout(u64),
    #[error("{0} is not a mirror address timb understands")]
    BadUrl(String),
}

/// A response body, read chunk by chunk.
pub trait Body: Send {
    /// The next chunk, `None` at the end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send;
}

/// Something that can `GET` a URL: the app's [`crate::TorFetcher`], or a test's.
pub trait Fetch: Sync {
    type Body: Body;
    /// Opens `url` from byte `from` on (0: the whole file; more: a resumed download). Gives the
    /// body and the offset it really starts at: `from` when the mirror sent that range (206),
    /// 0 when it sent the whole file (200). [`FetchError::NotFound`] for 403/404/410.
    fn open(
        &self,
        url: &Url,
        from: u64,
    ) -> impl Future<Output = Result<(Self::Body, u64), FetchError>> + Send;
}

/// How long a mirror may make the updater wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Between two chunks (and for the response to start).
    pub per_read: Duration,
    /// For one whole file.
    pub per_request: Duration,
}

impl Default for Timeouts {
    /// Generous for Tor (an onion circuit can take tens of seconds), short enough that a
    /// mirror that stalls on purpose is left for the next one.
    fn default() -> Timeouts {
        Timeouts {
            per_read: Duration::from_secs(60),
            per_request: Duration::from_secs(600),
        }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A mirror's base address or a file on it: `scheme://host[:port]/path`. No user info, no
/// query, no fragment: a mirror is a static folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, FetchError> {
        let bad = || FetchError::BadUrl(clip(text));
        let (scheme, rest) = if let Some(r) = text.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (Scheme::Https, r)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, default),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let path_ok = path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !host_ok || !path_ok || port == 0 {
            return Err(bad());
        }
        Ok(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
        })
    }

    /// `name` (a repository path such as `3.root.json` or `linux/HASH.timb-….tar.xz`) under
    /// this base; bytes outside the unreserved set and `/` are percent-encoded.
    pub fn join(&self, name: &str) -> Url {
        let mut path = self.path.trim_end_matches('/').to_string();
        path.push('/');
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                path.push(char::from(b));
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
        Url {
            path,
            ..self.clone()
        }
    }

    /// `host` or `host:port` for the `Host` header.
    pub fn authority(&self) -> String {
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn is_onion(&self) -> bool {
        self.host.ends_with(".onion")
    }
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// One read under the per-read timeout.
async fn timed<T>(
    t: &Timeouts,
    f: impl Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    tokio::time::timeout(t.per_read, f)
        .await
        .map_err(|_| FetchError::ReadTimeout(secs(t.per_read)))?
}

/// The whole of `url`, at most `max` bytes: reading stops at the first byte past the cap, so
/// an endless response costs `max` bytes and no more.
pub(crate) async fn get_capped<F: Fetch>(
    f: &F,
    url: &Url,
    max: u64,
    t: &Timeouts,
) -> Result<Vec<u8>, FetchError> {
    let all = async {
        let (mut body, _) = timed(t, f.open(url, 0)).await?;
        let mut out = Vec::new();
        while let Some(chunk) = timed(t, body.chunk()).await? {
            let total = u64::try_from(out.len() + chunk.len()).unwrap_or(u64::MAX);
            if total > max {
                return Err(FetchError::TooLarge { max });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    tokio::time::timeout(t.per_request, all)
        .await
        .map_err(|_| FetchError::RequestTimeout(secs(t.per_request)))?
}

/// What a streaming download hands its sink: first where the body really starts (0 when the
/// mirror ignored the range), then its chunks.
pub(crate) enum Piece<'a> {
    Start(u64),
    Chunk(&'a [u8]),
}

/// Streams `url` from byte `from` on into `sink` under the timeouts; `sink` stops the
/// download by returning an error (a target past its listed length, a disk error).
pub(crate) async fn get_streaming<F: Fetch, E>(
    f: &F,
    url: &Url,
    from: u64,
    t: &Timeouts,
    mut sink: impl FnMut(Piece<'_>) -> Result<(), E> + Send,
) -> Result<Result<(), E>, FetchError> {
    let all = async {
        let (mut body, at) = timed(t, f.open(url, from)).await?;
        if let Err(e) = sink(Piece::Start(at)) {
            return Ok(Err(e));
        }
        while let Some(chunk) = timed(t, body.chunk()).await? {
            if let Err(e) = sink(Piece::Chunk(&chunk)) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    };
    tokio::time::timeout(t.per_request, all)
        .await
        .map_err(|_| FetchError::RequestTimeout(secs(t.per_request)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_joined() {
        let u = Url::parse("https://Mirror.example:8443/timb/metadata/").unwrap();
        assert_eq!(u.host, "mirror.example");
        assert_eq!(u.authority(), "mirror.example:8443");
        assert_eq!(u.join("3.root.json").path, "/timb/metadata/3.root.json");
        assert_eq!(u.join("a b").path, "/timb/metadata/a%20b");
        let o = Url::parse("http://abc.onion").unwrap();
        assert!(o.is_onion());
        assert_eq!((o.port, o.path.as_str()), (80, "/"));
        for bad in [
            "ftp://x/",
            "http://",
            "http://user@host/",
            "http://h:0/",
            "http://h:99999/",
            "http://h/?q",
            "http://[::1]/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    struct Endless;
    struct Zeros;
    impl Body for Zeros {
        async fn chunk(&mut self) -> Result<Option<Vec<u8>>, FetchError> {
            Ok(Some(vec![0; 1000]))
        }
    }
    impl Fetch for Endless {
        type Body = Zeros;
        async fn open(&self, _: &Url, _: u64) -> Result<(Zeros, u64), FetchError> {
            Ok((Zeros, 0))
        }
    }

    struct Stall;
    impl Body for Stall {
        async fn chunk(&mut self) -> Result<Option<Vec<u8>>, FetchError> {
            std::future::pending().await
        }
    }
    struct Slow;
    impl Fetch for Slow {
        type Body = Stall;
        async fn open(&self, _: &Url, _: u64) -> Result<(Stall, u64), FetchError> {
            Ok((Stall, 0))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn endless_and_stalled_bodies_are_cut() {
        let u = Url::parse("http://x.onion/").unwrap();
        let t = Timeouts::default();
        assert_eq!(
            get_capped(&Endless, &u, 5000, &t).await,
            Err(FetchError::TooLarge { max: 5000 })
        );
        assert_eq!(
            get_capped(&Slow, &u, 5000, &t).await,
            Err(FetchError::ReadTimeout(60))
        );
    }
}
