//! The app's transport: every request through arti on circuits of the update check's own
//! isolation, HTTPS (timb-tls, web PKI) to clearnet mirrors, and plain HTTP only to
//! `.onion` mirrors — TUF gives integrity, and an onion address authenticates the server, so
//! only there may TLS be left out.

use crate::fetch::{Body, Fetch, FetchError, Scheme, Url};
use timb_tor::http::{self, Response};
use timb_tor::{Isolation, TlsPolicy, TorError, Transport};

pub struct TorFetcher {
    transport: Transport,
    isolation: Isolation,
}

impl std::fmt::Debug for TorFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TorFetcher")
    }
}

impl TorFetcher {
    /// Fetches through `transport`, on circuits no chat account uses.
    pub fn new(transport: Transport) -> TorFetcher {
        TorFetcher {
            transport,
            isolation: Isolation::new(),
        }
    }
}

/// A body from timb-tor's HTTP client.
pub struct HttpBody(Response);

impl Body for HttpBody {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, FetchError> {
        self.0
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| FetchError::Http(e.to_string()))
    }
}

impl HttpBody {
    /// A response to a `GET` from byte `from` as the updater takes it: 200 is the whole
    /// file, 206 the asked-for rest (its range must start at `from`), 403/404/410 "not there".
    pub fn from_response(r: Response, from: u64) -> Result<(HttpBody, u64), FetchError> {
        match r.status() {
            200 => Ok((HttpBody(r), 0)),
            206 if from > 0 && r.range_start() == Some(from) => Ok((HttpBody(r), from)),
            // Not kept as a transport hiccup: the kept part is dropped and the file asked for
            // whole next time, so such a mirror cannot stall an update for ever.
            206 => Err(FetchError::Refused(
                "the mirror sent a part of the file that was not asked for".into(),
            )),
            403 | 404 | 410 => Err(FetchError::NotFound),
            s => Err(FetchError::Status(s)),
        }
    }
}

fn tor_error(e: TorError) -> FetchError {
    FetchError::Connect(e.to_string())
}

impl Fetch for TorFetcher {
    type Body = HttpBody;

    async fn open(&self, url: &Url, from: u64) -> Result<(HttpBody, u64), FetchError> {
        let response = match url.scheme {
            Scheme::Http if !url.is_onion() => {
                return Err(FetchError::Refused(
                    "plain HTTP is used only for .onion mirrors; this mirror needs https://".into(),
                ))
            }
            Scheme::Http => {
                let s = self
                    .transport
                    .connect_isolated(&self.isolation, &url.host, url.port)
                    .await
                    .map_err(tor_error)?;
                http::get(s, &url.authority(), &url.path, from).await
            }
            Scheme::Https => {
                let s = self
                    .transport
                    .connect_tls_isolated(&self.isolation, &url.host, url.port, &TlsPolicy::WebPki)
                    .await
                    .map_err(tor_error)?;
                http::get(s, &url.authority(), &url.path, from).await
            }
        };
        HttpBody::from_response(response.map_err(|e| FetchError::Http(e.to_string()))?, from)
    }
}
