//! `cargo xtask release`: the TUF repository timb's updater trusts, published as a static
//! folder that any web server or onion service can serve.
//!
//! | file | what |
//! |---|---|
//! | `keyfile.rs` | role keys at rest: an ed25519 seed sealed under a password (scrypt) |
//! | `repo.rs` | make a repository, add a release's bundles, re-sign the timestamp, rotate keys |
//!
//! The verifying side is `timb_release::tuf`; every repository state written here is read
//! back through it, from `1.root.json` on, before a command reports success.

pub mod keyfile;
pub mod repo;
