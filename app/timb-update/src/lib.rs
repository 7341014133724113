//! timb's updater client, the half that does I/O: fetch TUF metadata and targets from
//! mirrors, offer each file to timb-release's [`TrustedSet`](timb_release::tuf::TrustedSet)
//! in the order of the spec's client workflow, persist what it accepts, and write a target
//! only once TUF *and* its minisign signature vouch for it.
//!
//! | module | what |
//! |---|---|
//! | `apply.rs` | [`install`]: a verified archive becomes the bundle's new version |
//! | `store.rs` | [`Store`]: the trusted metadata files, each write crash-safe |
//! | `fetch.rs` | [`Fetch`]: the transport seam; [`Url`]; byte caps and timeouts while reading |
//! | `tor.rs` | [`TorFetcher`]: the app's transport, HTTPS or `.onion` HTTP through arti |
//! | `updater.rs` | [`Updater`]: refresh (spec §5.2–5.6) and download, mirrors in order |
//! | `minisig.rs` | [`BundleTrust`]: the bundle keys and policy the bundle ships, the minisign check |
//! | `error.rs` | [`UpdateError`]: which check failed, in words a user can read |
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod apply;
mod error;
mod fetch;
mod minisig;
mod store;
mod tor;
mod updater;

pub use apply::{install, ApplyError, Limits};
pub use error::{Failure, Problem, UpdateError};
pub use fetch::{Body, Fetch, FetchError, Scheme, Timeouts, Url};
pub use minisig::{BundleTrust, SIGNING_DIR};
pub use store::{Store, StoreError, WriteHook, WriteStep};
pub use tor::{HttpBody, TorFetcher};
pub use updater::{newest_update, Progress, Running, StopPoint, Updater};
