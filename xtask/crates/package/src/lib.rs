//! timb's packaging: how a built program becomes a bundle. The bundle's layout and its steps
//! ([`portable`]: the Linux, Windows and macOS portable folders; [`macos`]: the macOS `.app`, checked
//! by [`macho`]; [`native`]: the macOS binaries compiled on a Mac; [`deb`]: files from a pinned Debian package; [`wheel`]: tools PyPI ships, unpacked for the sandbox), the licence collection
//! ([`licences`]) and deterministic archives ([`archive`]). The pipeline core never names
//! these steps: [`register`] adds them to its step registry.

pub mod archive;
pub mod deb;
pub mod elf;
pub mod licences;
pub mod macho;
pub mod macos;
pub mod native;
pub mod pe;
pub mod portable;
pub mod wheel;

use pipeline::Steps;

/// Adds every packaging step to `steps`, under the names rbm-projects/ definitions use.
pub fn register(steps: &mut Steps) -> anyhow::Result<()> {
    steps.register("portable-bundle", Box::new(portable::PortableBundle))?;
    steps.register("macos-app", Box::new(macos::MacosApp))?;
    steps.register("macos-native", Box::new(native::MacosNative))?;
    steps.register("unpack-deb", Box::new(deb::UnpackDeb))?;
    steps.register("unpack-wheel", Box::new(wheel::UnpackWheel))
}

/// The pipeline's own steps and every packaging step: what xtask builds with.
pub fn all_steps() -> anyhow::Result<Steps> {
    let mut steps = Steps::new();
    register(&mut steps)?;
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::{project, util};

    /// Every step a definition in rbm-projects/ names is one xtask can run.
    #[test]
    fn every_definitions_step_is_registered() {
        let steps = all_steps().unwrap();
        let root = util::repo_root();
        let names = project::list_projects(&root).unwrap();
        assert!(names.iter().any(|n| n == "linux-bundle"));
        for n in names {
            let p = project::load_project(&root, &n).unwrap();
            steps.get(&n, &p.def.build.step).unwrap();
        }
        // Registering twice is refused, not a silent replacement.
        let mut again = all_steps().unwrap();
        assert!(register(&mut again).is_err());
    }
}
