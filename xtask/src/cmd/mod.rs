//! One module per `cargo xtask` command.

pub mod bench;
pub mod build;
pub mod build_unsigned;
pub mod builders;
pub mod bundle;
pub mod container;
pub mod fetch;
pub mod fuzz;
pub mod macos_sign;
pub mod rebuild;
pub mod release;
pub mod screenshots;
pub mod test;
pub mod verify;
