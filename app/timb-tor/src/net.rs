//! THE networking module of timb: the only code that makes connections.
//!
//! Every byte timb sends leaves through the embedded arti client created
//! here. The workspace clippy.toml forbids std/tokio sockets and name lookups
//! everywhere; this module does not need them either (arti opens its own
//! ORPort connections), and it is the only place allowed to add them.
//! Hostnames are always sent to the exit to resolve; nothing is looked up
//! locally.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arti_client::status::{BlockageKind, BootstrapStatus};
use arti_client::{ErrorKind, HasKind, IntoTorAddr, IsolationToken, StreamPrefs, TorClient};
use futures::StreamExt;
use timb_core::AccountId;
use timb_tls::{ConnectOptions, TlsPolicy, TlsStream};
use tokio::sync::watch;

use crate::{ConnectError, TorConfig, TorError};

/// How long a connect waits for a usable path before failing. Generous:
/// on a slow or loaded machine, building the first exit circuits can take
/// tens of seconds, and failing then only makes the user click again.
const PATH_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// After arti's status changes, how long a connect waiting for a path lets the burst of
/// changes (a consensus, then its descriptors) settle before trying again.
const STATUS_SETTLE: Duration = Duration::from_millis(50);

/// A bootstrap that has not reached a single relay by then is given up: with no
/// network (or Tor blocked) arti would keep trying for minutes.
const NO_RELAY_WINDOW: Duration = Duration::from_secs(30);

/// The one sentence for "no relay could be reached", whatever arti said.
const NO_RELAY: &str = "Tor could not reach any relay. Check the network connection; if it works, Tor may be blocked on this network.";

/// A stream through Tor: tokio `AsyncRead + AsyncWrite`.
pub type TorStream = arti_client::DataStream;

/// What a bootstrap is doing, coarse enough for one plain sentence each (the
/// window words them; arti's own text names consensuses and handshakes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorPhase {
    /// Reaching the first relays (arti's connection share of the progress).
    #[default]
    Reaching,
    /// Fetching and checking the directory: what relays exist.
    Directory,
    /// The directory is nearly complete; the first paths are being built.
    Finishing,
}

impl TorPhase {
    /// arti gives 15% of its progress to reaching relays and 85% to the
    /// directory; its phases overlap, so the bands are approximate by design.
    pub fn from_percent(percent: u8) -> Self {
        match percent {
            0..=14 => TorPhase::Reaching,
            15..=89 => TorPhase::Directory,
            _ => TorPhase::Finishing,
        }
    }
}

/// Bootstrap state for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootstrapProgress {
    pub percent: u8,
    /// What it is doing, for one plain sentence.
    pub phase: TorPhase,
    /// Why it is stuck, in words a user can act on, if it is.
    pub blocked: Option<String>,
    pub ready: bool,
}

impl BootstrapProgress {
    fn from_status(s: &BootstrapStatus) -> Self {
        let frac = s.as_frac().clamp(0.0, 1.0);
        let percent = (frac * 100.0).round() as u8;
        BootstrapProgress {
            percent,
            phase: TorPhase::from_percent(percent),
            blocked: s
                .blocked()
                .map(|b| readable_blockage(&b.kind(), &b.to_string())),
            ready: s.ready_for_traffic(),
        }
    }
}

fn readable_blockage(kind: &BlockageKind, detail: &str) -> String {
    match kind {
        BlockageKind::ClockSkewed => format!(
            "This computer's clock seems wrong, so Tor cannot trust the network's documents. Set the correct date, time and time zone. ({detail})"
        ),
        BlockageKind::Offline => {
            "This computer seems to be offline. Check the network connection.".to_owned()
        }
        BlockageKind::Filtering => format!(
            "The connection to Tor seems to be blocked or filtered on this network; a bridge may be needed. ({detail})"
        ),
        BlockageKind::CantReachTor => {
            format!("Tor relays cannot be reached from this network. ({detail})")
        }
        _ => format!("Tor cannot start: {detail}"),
    }
}

/// The running Tor client, shared by all accounts. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    client: Arc<TorClient<runtime::TimbRuntime>>,
    isolation: Arc<Mutex<HashMap<AccountId, IsolationToken>>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}

impl Transport {
    /// Starts arti and waits until circuits can be built, reporting progress
    /// through `progress` (latest value wins, so a slow GUI never makes it
    /// buffer). Must be called inside a tokio runtime.
    pub async fn bootstrap(
        config: TorConfig,
        progress: watch::Sender<BootstrapProgress>,
    ) -> Result<Transport, TorError> {
        timb_tls::install_crypto_provider();
        let rt = runtime::current().map_err(|e| TorError::Config(e.to_string()))?;
        let client = TorClient::with_runtime(rt)
            .config(config.arti.clone())
            .create_unbootstrapped()
            .map_err(|e| TorError::Config(e.to_string()))?;

        let mut events = client.bootstrap_events();
        let last = Arc::new(Mutex::new(client.bootstrap_status()));
        let last_w = last.clone();
        let progress = Arc::new(progress);
        let progress_w = progress.clone();
        let reporter = tokio::spawn(async move {
            while let Some(status) = events.next().await {
                let p = BootstrapProgress::from_status(&status);
                *last_w.lock().unwrap_or_else(|p| p.into_inner()) = status;
                progress_w.send_replace(p);
            }
        });

        // Gives up early when nothing at all was reached within the window.
        let no_relay = {
            let last = last.clone();
            async move {
                tokio::time::sleep(NO_RELAY_WINDOW).await;
                let s = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if BootstrapProgress::from_status(&s).percent > 0 {
                    // Some progress: the overall timeout decides from here on.
                    std::future::pending::<()>().await;
                }
            }
        };
        let result = tokio::select! {
            r = tokio::time::timeout(config.bootstrap_timeout, client.bootstrap()) => r.ok(),
            () = no_relay => None,
        };
        let status = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let outcome = match result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(bootstrap_error(&status, Some(&e))),
            None => Err(bootstrap_error(&status, None)),
        };
        // Later status changes (e.g. losing the network) matter less than
        // not leaking a task per bootstrap: stop reporting either way.
        reporter.abort();
        if let Err(e) = outcome {
            progress.send_replace(BootstrapProgress {
                blocked: Some(e.to_string()),
                ..BootstrapProgress::from_status(&status)
            });
            return Err(e);
        }
        progress.send_replace(BootstrapProgress {
            percent: 100,
            ready: true,
            ..BootstrapProgress::from_status(&client.bootstrap_status())
        });
        Ok(Transport {
            client,
            isolation: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn prefs(&self, account: AccountId) -> StreamPrefs {
        let token = *self
            .isolation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(account)
            .or_insert_with(IsolationToken::new);
        let mut prefs = StreamPrefs::new();
        prefs.set_isolation(token);
        prefs
    }

    /// A stream to `host:port` for `account`. The exit resolves `host`;
    /// `.onion` names go to the onion service. Two accounts never share a
    /// circuit.
    pub async fn connect(
        &self,
        account: AccountId,
        host: &str,
        port: u16,
    ) -> Result<TorStream, ConnectError> {
        self.connect_prefs(host, port, &self.prefs(account)).await
    }

    /// The stream under the given isolation, shared by accounts' and the
    /// update check's streams so both wait for a path the same way.
    pub(super) async fn connect_prefs(
        &self,
        host: &str,
        port: u16,
        prefs: &StreamPrefs,
    ) -> Result<TorStream, ConnectError> {
        let addr = (host, port)
            .into_tor_addr()
            .map_err(|_| ConnectError::BadAddress)?;
        // Right after bootstrap (or after the consensus changes) arti can
        // briefly lack the descriptors for any usable path; that is local
        // and transient, so wait for directory information a little before
        // reporting it. Nothing was sent to the destination in that case.
        // The next try comes when arti's status changes (a consensus or
        // descriptors arrived, a relay was reached), or after a pause that
        // doubles up to 4 s if nothing changes: a path missing for want of
        // directory information is retried the moment it could exist.
        let give_up = tokio::time::Instant::now() + PATH_RETRY_BUDGET;
        let mut pause = Duration::from_millis(500);
        let mut changes = self.client.bootstrap_events();
        // The stream starts with the status as it is now: not a change.
        let _ = futures::FutureExt::now_or_never(changes.next());
        loop {
            match self.client.connect_with_prefs(addr.clone(), prefs).await {
                Ok(stream) => return Ok(stream),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NoPath | ErrorKind::NoExit | ErrorKind::TorDirectoryUnusable
                    ) && tokio::time::Instant::now() + pause < give_up =>
                {
                    tokio::select! {
                        Some(_) = changes.next() => {
                            // Several changes come in a burst: let it settle.
                            tokio::time::sleep(STATUS_SETTLE).await;
                            while let Some(Some(_)) =
                                futures::FutureExt::now_or_never(changes.next())
                            {}
                        }
                        () = tokio::time::sleep(pause) => {
                            pause = (pause * 2).min(Duration::from_secs(4));
                        }
                    }
                }
                Err(e) => return Err(connect_error(e.kind())),
            }
        }
    }

    /// [`Self::connect`] then TLS under `policy`; the TOFU key is `host:port`.
    pub async fn connect_tls(
        &self,
        account: AccountId,
        host: &str,
        port: u16,
        policy: &TlsPolicy,
    ) -> Result<TlsStream<TorStream>, TorError> {
        self.connect_tls_with(account, host, port, policy, ConnectOptions::default())
            .await
    }

    /// [`Self::connect_tls`] with a client certificate and/or ALPN.
    pub async fn connect_tls_with(
        &self,
        account: AccountId,
        host: &str,
        port: u16,
        policy: &TlsPolicy,
        mut options: ConnectOptions,
    ) -> Result<TlsStream<TorStream>, TorError> {
        let stream = self.connect(account, host, port).await?;
        options.port = Some(port);
        Ok(timb_tls::connect_with(stream, host, policy, &options).await?)
    }

    /// Gives `account` fresh circuits from now on (after a reconnect or a
    /// "new identity" request); existing streams keep theirs.
    pub fn new_circuits_for(&self, account: AccountId) {
        self.isolation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account, IsolationToken::new());
    }

    /// The underlying arti client, for benchmarks and diagnostics.
    pub fn arti(&self) -> &Arc<TorClient<runtime::TimbRuntime>> {
        &self.client
    }
}

fn bootstrap_error(status: &BootstrapStatus, err: Option<&arti_client::Error>) -> TorError {
    let clock = status
        .blocked()
        .is_some_and(|b| matches!(b.kind(), BlockageKind::ClockSkewed))
        || err.is_some_and(|e| e.kind() == ErrorKind::ClockSkew);
    // Not one relay reached: the same words every time, whatever arti reported.
    if !clock && BootstrapProgress::from_status(status).percent == 0 {
        return TorError::NoNetwork(NO_RELAY.to_owned());
    }
    if let Some(b) = status.blocked() {
        let kind = b.kind();
        let text = readable_blockage(&kind, &b.to_string());
        return match kind {
            BlockageKind::ClockSkewed => TorError::ClockSkew(text),
            BlockageKind::Offline => TorError::NoNetwork(text),
            BlockageKind::Filtering | BlockageKind::CantReachTor => TorError::Blocked(text),
            _ => TorError::Bootstrap(text),
        };
    }
    match err {
        Some(e) if e.kind() == ErrorKind::ClockSkew => TorError::ClockSkew(readable_blockage(
            &BlockageKind::ClockSkewed,
            &e.to_string(),
        )),
        Some(e) if e.kind() == ErrorKind::LocalNetworkError => {
            TorError::NoNetwork(readable_blockage(&BlockageKind::Offline, &e.to_string()))
        }
        Some(e) => TorError::Bootstrap(format!("Tor could not start: {e}")),
        None => {
            let percent = BootstrapProgress::from_status(status).percent;
            TorError::Bootstrap(format!("Tor did not finish starting in time (stuck at {percent}%); the network may be slow or filtered."))
        }
    }
}

/// arti's error kind, sorted into the classes timb decides on. The address is
/// not kept: the caller knows which account it is, and the words are shown.
fn connect_error(kind: ErrorKind) -> ConnectError {
    match kind {
        ErrorKind::RemoteHostNotFound | ErrorKind::RemoteHostResolutionFailed => {
            ConnectError::HostNotFound
        }
        ErrorKind::RemoteConnectionRefused => ConnectError::Refused,
        ErrorKind::ExitPolicyRejected | ErrorKind::ForbiddenStreamTarget => ConnectError::Forbidden,
        ErrorKind::OnionServiceAddressInvalid | ErrorKind::InvalidStreamTarget => {
            ConnectError::BadAddress
        }
        ErrorKind::OnionServiceMissingClientAuth | ErrorKind::OnionServiceWrongClientAuth => {
            ConnectError::OnionAuth
        }
        ErrorKind::OnionServiceNotFound
        | ErrorKind::OnionServiceNotRunning
        | ErrorKind::OnionServiceConnectionFailed
        | ErrorKind::OnionServiceProtocolViolation => ConnectError::OnionUnreachable,
        ErrorKind::RemoteNetworkTimeout | ErrorKind::TorNetworkTimeout | ErrorKind::ExitTimeout => {
            ConnectError::Timeout
        }
        ErrorKind::NoPath
        | ErrorKind::NoExit
        | ErrorKind::TorDirectoryUnusable
        | ErrorKind::TorAccessFailed
        | ErrorKind::CircuitCollapse
        | ErrorKind::RelayTooBusy
        | ErrorKind::TransientFailure
        | ErrorKind::RemoteStreamClosed
        | ErrorKind::RemoteStreamReset
        | ErrorKind::RemoteStreamError
        | ErrorKind::RemoteNetworkFailed => ConnectError::Circuit,
        ErrorKind::ClockSkew => ConnectError::ClockSkew,
        ErrorKind::LocalNetworkError => ConnectError::NoNetwork,
        _ => ConnectError::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// arti's kinds keep their class: a missing host or a forbidden port is
    /// not retried, a slow or broken circuit is.
    #[test]
    fn arti_error_kinds_keep_their_class() {
        for k in [
            ErrorKind::RemoteHostNotFound,
            ErrorKind::ExitPolicyRejected,
            ErrorKind::ForbiddenStreamTarget,
            ErrorKind::OnionServiceAddressInvalid,
            ErrorKind::ClockSkew,
            ErrorKind::Internal,
        ] {
            assert!(!connect_error(k).is_transient(), "{k:?}");
        }
        for k in [
            ErrorKind::TorNetworkTimeout,
            ErrorKind::RemoteNetworkTimeout,
            ErrorKind::NoExit,
            ErrorKind::CircuitCollapse,
            ErrorKind::RemoteConnectionRefused,
            ErrorKind::OnionServiceNotFound,
            ErrorKind::LocalNetworkError,
        ] {
            assert!(connect_error(k).is_transient(), "{k:?}");
        }
        assert_eq!(
            connect_error(ErrorKind::RemoteHostNotFound),
            ConnectError::HostNotFound
        );
        assert_eq!(
            connect_error(ErrorKind::ExitPolicyRejected),
            ConnectError::Forbidden
        );
    }
}

// Connections for the update check, on circuits of their own.
mod isolated;
pub mod runtime;
pub use isolated::Isolation;
