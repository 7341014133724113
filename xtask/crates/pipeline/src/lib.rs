//! The core of timb's build pipeline, knowing no packaging: the rbm-projects format
//! ([`project`]), build ids and the output cache ([`build`]), what a step may see ([`env`]:
//! modules import one way, step -> env, build -> step), the registry of build steps
//! ([`step`]; packaging steps are registered by the `package` crate), the hermetic sandbox
//! ([`sandbox`]) over the pinned build container ([`container`], locked file by file by
//! [`lock`]), the machine's apt sources
//! ([`apt`], one parser for both of its users), the pinned-source fetcher ([`sources`]) and
//! the standard library's pinned source for cross targets ([`std_src`]).
//! See rbm-projects/README.md and containers/README.md.

pub mod apt;
pub mod build;
pub mod container;
pub mod env;
pub mod lock;
pub mod project;
pub mod provision;
pub mod sandbox;
pub mod sources;
pub mod std_src;
pub mod step;
pub mod util;

pub use build::Ctx;
pub use env::BuildEnv;
pub use project::{InputKind, Project};
pub use step::{Built, Step, StepCtx, Steps};
