//! The glibc versions a Linux executable asks for: the `GLIBC_x.y` names in its
//! `.gnu.version_r` section (the versions of the C library's symbols it was linked against;
//! the dynamic loader refuses to start it on an older glibc). The bundle step checks them
//! against the Linux target's baseline, so the bundle starts on the systems it promises.
//!
//! Our own reader, as for Mach-O (`macho.rs`): these few fields of a 64-bit little-endian
//! ELF are all that is needed, and an ELF crate would be a new dependency of every xtask
//! build for them.

use anyhow::{bail, Context, Result};

/// A glibc version, `(major, minor)`: `GLIBC_2.35` is `(2, 35)`.
pub type GlibcVersion = (u32, u32);

/// Every `GLIBC_x.y` the executable's version needs name, highest last.
pub fn glibc_versions(elf: &[u8]) -> Result<Vec<GlibcVersion>> {
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!("not an ELF file");
    }
    if elf.get(4..6) != Some([2u8, 1].as_slice()) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let shoff = usize::try_from(u64_at(elf, 0x28)?)?;
    let shentsize = usize::from(u16_at(elf, 0x3a)?);
    let shnum = usize::from(u16_at(elf, 0x3c)?);
    if shentsize < 64 {
        bail!("section headers of {shentsize} bytes");
    }
    let section = |i: usize| -> Result<Section> {
        let at = i
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .context("a section header past the end")?;
        Ok(Section {
            kind: u32_at(elf, at + 4)?,
            offset: usize::try_from(u64_at(elf, at + 24)?)?,
            size: usize::try_from(u64_at(elf, at + 32)?)?,
            link: usize::try_from(u32_at(elf, at + 40)?)?,
            info: u32_at(elf, at + 44)?,
        })
    };
    let mut found = Vec::new();
    for i in 0..shnum {
        let s = section(i)?;
        // SHT_GNU_verneed
        if s.kind != 0x6fff_fffe {
            continue;
        }
        let strings = section(s.link)?;
        let strtab = elf
            .get(strings.offset..strings.offset.saturating_add(strings.size))
            .context("a string table past the end")?;
        let mut need = s.offset;
        // sh_info: how many Verneed entries; each names a library and lists its versions.
        for _ in 0..s.info {
            let count = u16_at(elf, need + 2)?;
            let mut aux = need + usize::try_from(u32_at(elf, need + 8)?)?;
            for _ in 0..count {
                let name = cstr(strtab, usize::try_from(u32_at(elf, aux + 8)?)?)?;
                if let Some(v) = name.strip_prefix("GLIBC_").and_then(parse_version) {
                    found.push(v);
                }
                let next = usize::try_from(u32_at(elf, aux + 12)?)?;
                if next == 0 {
                    break;
                }
                aux += next;
            }
            let next = usize::try_from(u32_at(elf, need + 12)?)?;
            if next == 0 {
                break;
            }
            need += next;
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// `"2.35"` as `(2, 35)`; `GLIBC_PRIVATE` and the like are not versions.
pub fn parse_version(s: &str) -> Option<GlibcVersion> {
    let (major, minor) = s.split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// An error naming the highest version if `elf` asks for a glibc newer than `baseline`.
pub fn check_baseline(elf: &[u8], baseline: GlibcVersion) -> Result<()> {
    let versions = glibc_versions(elf)?;
    if let Some(&(major, minor)) = versions.last() {
        if (major, minor) > baseline {
            bail!(
                "needs GLIBC_{major}.{minor}, above the baseline GLIBC_{}.{}: it would not start on the systems the bundle promises",
                baseline.0,
                baseline.1
            );
        }
    }
    Ok(())
}

struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: usize,
    info: u32,
}

fn bytes<const N: usize>(d: &[u8], at: usize) -> Result<[u8; N]> {
    d.get(at..at.checked_add(N).context("an offset past the end")?)
        .and_then(|b| b.try_into().ok())
        .context("the ELF file ends early")
}

fn u16_at(d: &[u8], at: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(bytes(d, at)?))
}

fn u32_at(d: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(bytes(d, at)?))
}

fn u64_at(d: &[u8], at: usize) -> Result<u64> {
    Ok(u64::from_le_bytes(bytes(d, at)?))
}

fn cstr(table: &[u8], at: usize) -> Result<&str> {
    let rest = table.get(at..).context("a name past its string table")?;
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .context("an unterminated name")?;
    std::str::from_utf8(&rest[..end]).context("a name that is not text")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real executable of this machine (the test binary itself, linked against the host
    /// glibc): its versions are read, and raising the bar past the highest fails the check
    /// with a message naming it, as the bundle step would on a binary built for a newer glibc.
    #[test]
    fn versions_are_read_and_a_binary_above_the_baseline_is_refused() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let v = glibc_versions(&exe).unwrap();
        let highest = *v
            .last()
            .expect("a Rust test binary needs some GLIBC_ version");
        assert!(highest >= (2, 2), "{v:?}");
        check_baseline(&exe, highest).unwrap();
        let below = (highest.0, highest.1 - 1);
        let e = check_baseline(&exe, below).unwrap_err().to_string();
        assert!(
            e.contains(&format!("GLIBC_{}.{}", highest.0, highest.1)),
            "{e}"
        );
        // The same read as binutils'.
        let out = std::process::Command::new("objdump")
            .arg("-T")
            .arg(std::env::current_exe().unwrap())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let theirs = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .filter_map(|w| w.strip_prefix("GLIBC_").and_then(parse_version))
            .max()
            .unwrap();
        assert_eq!(highest, theirs);
        assert!(glibc_versions(b"\x7fELF\x01\x01").is_err());
        assert!(glibc_versions(b"MZ").is_err());
        assert!(glibc_versions(&exe[..100]).is_err());
        assert_eq!(parse_version("2.35"), Some((2, 35)));
        assert_eq!(parse_version("2.2.5"), Some((2, 2)));
        assert_eq!(parse_version("PRIVATE"), None);
    }
}
