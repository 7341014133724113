//! Reading what a macOS executable says about itself, to check the cross-built Mach-O files
//! (`rbm-projects/macos-launcher`) without a Mac: the architecture, the minimum macOS version,
//! the libraries it loads, and its code signature, whose page hashes are checked against the
//! file's bytes. Only 64-bit little-endian Mach-O (arm64, x86_64), what timb ships; a fat
//! (universal) file or anything else is refused with a clear error.
//!
//! Our own reader (about 200 lines) rather than a crate: the checks need six load commands
//! and the CodeDirectory layout (Apple's `cs_blobs.h`), and goblin or object would add a
//! parser of every other format to the build tools.

use anyhow::{bail, ensure, Context, Result};
use timb_release::Sha256;

const MH_MAGIC_64: u32 = 0xfeed_facf;
const FAT_MAGIC: u32 = 0xcafe_babe;
const CPU_TYPE_X86_64: u32 = 0x0100_0007;
const CPU_TYPE_ARM64: u32 = 0x0100_000c;
const MH_EXECUTE: u32 = 2;
const LC_LOAD_DYLIB: u32 = 0xc;
const LC_LOAD_WEAK_DYLIB: u32 = 0x8000_0018;
const LC_REEXPORT_DYLIB: u32 = 0x8000_001f;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const LC_VERSION_MIN_MACOSX: u32 = 0x24;
const LC_BUILD_VERSION: u32 = 0x32;
const PLATFORM_MACOS: u32 = 1;
/// Signature blobs are big-endian (cs_blobs.h).
const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CSSLOT_CODEDIRECTORY: u32 = 0;
const CS_HASHTYPE_SHA256: u8 = 2;
/// The CodeDirectory flag of a signature without a certificate.
pub const CS_ADHOC: u32 = 0x2;
/// The flag of a signature the linker made (ad-hoc, replaceable by a real one).
pub const CS_LINKER_SIGNED: u32 = 0x2_0000;

/// The facts a test checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachO {
    /// `arm64` or `x86_64`.
    pub arch: &'static str,
    /// The minimum macOS version, e.g. `11.0`.
    pub min_macos: String,
    /// The install names of the libraries it loads.
    pub dylibs: Vec<String>,
    pub signature: Option<Signature>,
}

/// An embedded code signature whose CodeDirectory page hashes all match the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub identifier: String,
    pub flags: u32,
    /// How many pages the hashes cover.
    pub pages: usize,
}

impl Signature {
    pub fn is_adhoc(&self) -> bool {
        self.flags & CS_ADHOC != 0
    }
}

fn u32_le(b: &[u8], at: usize) -> Result<u32> {
    let s = b
        .get(at..at + 4)
        .with_context(|| format!("the file ends inside a field at {at}"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u32_be(b: &[u8], at: usize) -> Result<u32> {
    let s = b
        .get(at..at + 4)
        .with_context(|| format!("the signature ends inside a field at {at}"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn u8_at(b: &[u8], at: usize) -> Result<u8> {
    b.get(at)
        .copied()
        .with_context(|| format!("the signature ends at {at}"))
}

/// A NUL-terminated string starting at `at`.
fn c_str(b: &[u8], at: usize) -> Result<String> {
    let rest = b.get(at..).context("a name outside the file")?;
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .context("a name without its end")?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// `xxxx.yy.zz` packed in nibbles, as Mach-O stores versions: `11.0` or `10.13.4`.
fn version(v: u32) -> String {
    let (major, minor, patch) = (v >> 16, (v >> 8) & 0xff, v & 0xff);
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

/// Reads `file`; an error names what is wrong with it.
pub fn parse(file: &[u8]) -> Result<MachO> {
    let magic = u32_le(file, 0).context("not a Mach-O file")?;
    if magic.swap_bytes() == FAT_MAGIC {
        bail!("a universal (fat) Mach-O: check each architecture's file");
    }
    ensure!(
        magic == MH_MAGIC_64,
        "not a 64-bit Mach-O file (magic {magic:#x})"
    );
    let arch = match u32_le(file, 4)? {
        CPU_TYPE_ARM64 => "arm64",
        CPU_TYPE_X86_64 => "x86_64",
        other => bail!("an unexpected CPU type {other:#x}"),
    };
    let file_type = u32_le(file, 12)?;
    ensure!(
        file_type == MH_EXECUTE,
        "not an executable (file type {file_type})"
    );
    let ncmds = u32_le(file, 16)?;
    let mut at = 32usize;
    let (mut min_macos, mut dylibs, mut signature) = (None, Vec::new(), None);
    for _ in 0..ncmds {
        let cmd = u32_le(file, at)?;
        let size = u32_le(file, at + 4)? as usize;
        ensure!(
            size >= 8 && at + size <= file.len(),
            "a load command at {at} runs past the file"
        );
        match cmd {
            LC_BUILD_VERSION => {
                ensure!(
                    u32_le(file, at + 8)? == PLATFORM_MACOS,
                    "built for another Apple platform than macOS"
                );
                min_macos = Some(version(u32_le(file, at + 12)?));
            }
            LC_VERSION_MIN_MACOSX => min_macos = Some(version(u32_le(file, at + 8)?)),
            LC_LOAD_DYLIB | LC_LOAD_WEAK_DYLIB | LC_REEXPORT_DYLIB => {
                let name = u32_le(file, at + 8)? as usize;
                ensure!(name < size, "a library name outside its load command");
                dylibs.push(c_str(&file[..at + size], at + name)?);
            }
            LC_CODE_SIGNATURE => {
                let off = u32_le(file, at + 8)? as usize;
                let len = u32_le(file, at + 12)? as usize;
                let blob = file
                    .get(off..off + len)
                    .context("the code signature lies outside the file")?;
                signature = Some(check_signature(&file[..off], blob)?);
            }
            _ => {}
        }
        at += size;
    }
    Ok(MachO {
        arch,
        min_macos: min_macos.context("no minimum macOS version (LC_BUILD_VERSION)")?,
        dylibs,
        signature,
    })
}

/// Finds the CodeDirectory in the SuperBlob `sig` and checks every code page's SHA-256
/// against `code`, everything before the signature, which the hashes must cover whole.
fn check_signature(code: &[u8], sig: &[u8]) -> Result<Signature> {
    ensure!(
        u32_be(sig, 0)? == CSMAGIC_EMBEDDED_SIGNATURE,
        "the code signature is not an embedded signature"
    );
    let count = u32_be(sig, 8)? as usize;
    let mut cd = None;
    for i in 0..count {
        if u32_be(sig, 12 + i * 8)? == CSSLOT_CODEDIRECTORY {
            cd = Some(u32_be(sig, 16 + i * 8)? as usize);
        }
    }
    let base = cd.context("the code signature has no CodeDirectory")?;
    let cd = sig
        .get(base..)
        .context("the CodeDirectory lies outside the signature")?;
    ensure!(
        u32_be(cd, 0)? == CSMAGIC_CODEDIRECTORY,
        "the CodeDirectory's magic is wrong"
    );
    let flags = u32_be(cd, 12)?;
    let hash_offset = u32_be(cd, 16)? as usize;
    let ident_offset = u32_be(cd, 20)? as usize;
    let code_slots = u32_be(cd, 28)? as usize;
    let code_limit = u32_be(cd, 32)? as usize;
    let hash_size = usize::from(u8_at(cd, 36)?);
    let hash_type = u8_at(cd, 37)?;
    let page_shift = u8_at(cd, 39)?;
    ensure!(
        hash_type == CS_HASHTYPE_SHA256 && hash_size == 32,
        "the CodeDirectory hashes with type {hash_type}, not SHA-256"
    );
    ensure!(
        (12..=16).contains(&page_shift),
        "a page size of 2^{page_shift}"
    );
    ensure!(
        code_limit == code.len(),
        "the signature covers {code_limit} bytes, not the {} before it",
        code.len()
    );
    let page = 1usize << page_shift;
    ensure!(
        code_slots == code_limit.div_ceil(page),
        "{code_slots} page hashes for {code_limit} bytes"
    );
    for i in 0..code_slots {
        let bytes = &code[i * page..((i + 1) * page).min(code_limit)];
        let want = cd
            .get(hash_offset + i * 32..hash_offset + (i + 1) * 32)
            .context("a page hash lies outside the CodeDirectory")?;
        ensure!(
            Sha256::of(bytes).as_bytes() == want,
            "page {i} of the code does not match its signed hash"
        );
    }
    Ok(Signature {
        identifier: c_str(cd, ident_offset)?,
        flags,
        pages: code_slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal arm64 executable: header, LC_BUILD_VERSION, LC_LOAD_DYLIB, and (when
    /// `signed`) LC_CODE_SIGNATURE over one 4 KiB page, as linkers lay them out.
    fn exe(signed: bool) -> Vec<u8> {
        let le = |v: u32| v.to_le_bytes();
        let mut cmds = Vec::new();
        cmds.extend(le(LC_BUILD_VERSION));
        cmds.extend(le(24));
        cmds.extend(le(PLATFORM_MACOS));
        cmds.extend(le(0x000b_0000)); // minos 11.0
        cmds.extend(le(0x000e_0000)); // sdk 14.0
        cmds.extend(le(0)); // no tools
        let lib = b"/usr/lib/libSystem.B.dylib\0\0\0\0\0\0";
        cmds.extend(le(LC_LOAD_DYLIB));
        cmds.extend(le(24 + lib.len() as u32));
        cmds.extend(le(24));
        cmds.extend([0; 12]);
        cmds.extend(lib);
        let ncmds = if signed { 3 } else { 2 };
        let sig_cmd_len = if signed { 16 } else { 0 };
        let code_limit = 4096u32;
        let mut f = Vec::new();
        f.extend(le(MH_MAGIC_64));
        f.extend(le(CPU_TYPE_ARM64));
        f.extend(le(0));
        f.extend(le(MH_EXECUTE));
        f.extend(le(ncmds));
        f.extend(le(cmds.len() as u32 + sig_cmd_len));
        f.extend(le(0));
        f.extend(le(0));
        f.extend(&cmds);
        if !signed {
            return f;
        }
        f.extend(le(LC_CODE_SIGNATURE));
        f.extend(le(16));
        f.extend(le(code_limit));
        let ident = b"timb\0";
        let cd_len = 44 + ident.len() + 32;
        f.extend(le((12 + 8 + cd_len) as u32));
        f.resize(code_limit as usize, 0x5a);
        let page_hash = Sha256::of(&f);
        let be = |v: u32| v.to_be_bytes();
        let mut cd = Vec::new();
        cd.extend(be(CSMAGIC_CODEDIRECTORY));
        cd.extend(be(cd_len as u32));
        cd.extend(be(0x20001)); // the header without scatter or team fields
        cd.extend(be(CS_ADHOC | CS_LINKER_SIGNED));
        cd.extend(be(44 + ident.len() as u32)); // hashOffset
        cd.extend(be(44)); // identOffset
        cd.extend(be(0)); // special slots
        cd.extend(be(1)); // code slots
        cd.extend(be(code_limit));
        cd.extend([32, CS_HASHTYPE_SHA256, 0, 12]);
        cd.extend([0; 4]);
        cd.extend(ident);
        cd.extend(page_hash.as_bytes());
        f.extend(be(CSMAGIC_EMBEDDED_SIGNATURE));
        f.extend(be((12 + 8 + cd.len()) as u32));
        f.extend(be(1));
        f.extend(be(CSSLOT_CODEDIRECTORY));
        f.extend(be(20));
        f.extend(cd);
        f
    }

    #[test]
    fn the_header_the_libraries_and_a_valid_signature_are_read() {
        let m = parse(&exe(true)).unwrap();
        assert_eq!(m.arch, "arm64");
        assert_eq!(m.min_macos, "11.0");
        assert_eq!(m.dylibs, ["/usr/lib/libSystem.B.dylib"]);
        let s = m.signature.unwrap();
        assert!(s.is_adhoc());
        assert_eq!((s.identifier.as_str(), s.pages), ("timb", 1));
        assert_eq!(parse(&exe(false)).unwrap().signature, None);
    }

    #[test]
    fn a_changed_byte_or_a_bad_file_is_an_error() {
        let mut f = exe(true);
        f[200] ^= 1;
        let e = parse(&f).unwrap_err().to_string();
        assert!(e.contains("page 0 of the code does not match"), "{e}");
        let f = exe(true);
        for cut in [0, 3, 20, 60, 4100] {
            assert!(parse(&f[..cut]).is_err(), "cut at {cut}");
        }
        let e = parse(b"\xca\xfe\xba\xbe\0\0\0\x02")
            .unwrap_err()
            .to_string();
        assert!(e.contains("universal"), "{e}");
        let e = parse(b"\x7fELF\x02\x01\x01\0").unwrap_err().to_string();
        assert!(e.contains("not a 64-bit Mach-O"), "{e}");
        assert_eq!(version(0x000a_0d04), "10.13.4");
    }
}
