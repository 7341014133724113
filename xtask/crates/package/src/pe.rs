//! Windows executables in the form Authenticode signing can be undone to.
//!
//! Reproducibility is judged on the unsigned build, as Tor does: `verify` strips the
//! signature from a published exe (`osslsigncode remove-signature`) and compares it with its
//! own build. Signing pads the file to a multiple of 8 bytes before appending the
//! certificate table and rewrites the PE checksum; stripping keeps both. So the build writes
//! each exe in that form already — zero-padded to 8 bytes, checksum set — and then
//! strip(sign(exe)) is exe, byte for byte (`tests/bundle` checks it with osslsigncode).
//! No crate does this one transformation; it is the PE/COFF specification's checksum.

use anyhow::{bail, Result};

/// Offset of the PE header's pointer, and of the checksum and the certificate table's data
/// directory inside the optional header (PE32+).
const PE_POINTER: usize = 0x3c;
const OPTIONAL_HEADER: usize = 24;
const CHECKSUM: usize = 64;
const PE32_PLUS: u16 = 0x20b;
const CERTIFICATE_TABLE: usize = 144;

/// `exe` zero-padded to a multiple of 8 bytes with its PE checksum recomputed. Refuses a file
/// that is not a PE32+ image or already carries a signature.
pub fn canonical_unsigned(mut exe: Vec<u8>) -> Result<Vec<u8>> {
    let u16_at = |d: &[u8], at: usize| d.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |d: &[u8], at: usize| {
        d.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if exe.get(..2) != Some(b"MZ".as_slice()) {
        bail!("not a Windows executable (no MZ header)");
    }
    let pe = u32_at(&exe, PE_POINTER).map_or(usize::MAX, |p| p as usize);
    if exe.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0".as_slice()) {
        bail!("not a Windows executable (no PE header)");
    }
    let opt = pe + OPTIONAL_HEADER;
    if u16_at(&exe, opt) != Some(PE32_PLUS) {
        bail!("not a 64-bit (PE32+) Windows executable");
    }
    match u32_at(&exe, opt + CERTIFICATE_TABLE + 4) {
        Some(0) => {}
        Some(_) => bail!("the executable is already signed (it has a certificate table)"),
        None => bail!("truncated Windows executable"),
    }
    exe.resize(exe.len().next_multiple_of(8), 0);
    let at = opt + CHECKSUM;
    exe[at..at + 4].fill(0);
    let sum = checksum(&exe);
    exe[at..at + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(exe)
}

/// The PE checksum: the file's 16-bit little-endian words added with end-around carry, then
/// the file's length (the checksum field itself counted as zero).
fn checksum(d: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for w in d.chunks(2) {
        let word = u32::from(w[0]) | u32::from(w.get(1).copied().unwrap_or(0)) << 8;
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    // A PE file is far below 4 GiB; the length wraps as the format's 32-bit field would.
    sum.wrapping_add(d.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest PE32+ shape the function reads: MZ, a PE header at 0x40, the optional
    /// header's magic and an empty certificate table.
    fn tiny(len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[..2].copy_from_slice(b"MZ");
        d[PE_POINTER..PE_POINTER + 4].copy_from_slice(&0x40u32.to_le_bytes());
        d[0x40..0x44].copy_from_slice(b"PE\0\0");
        d[0x40 + OPTIONAL_HEADER..0x40 + OPTIONAL_HEADER + 2]
            .copy_from_slice(&PE32_PLUS.to_le_bytes());
        d[0x40 + OPTIONAL_HEADER + CHECKSUM] = 0xaa;
        d
    }

    #[test]
    fn pads_to_eight_sets_the_checksum_and_is_idempotent() {
        let c = canonical_unsigned(tiny(0x201)).unwrap();
        assert_eq!(c.len(), 0x208);
        let at = 0x40 + OPTIONAL_HEADER + CHECKSUM;
        let mut zeroed = c.clone();
        zeroed[at..at + 4].fill(0);
        assert_eq!(c[at..at + 4], checksum(&zeroed).to_le_bytes());
        assert_ne!(c[at], 0xaa, "the old checksum is replaced");
        assert_eq!(canonical_unsigned(c.clone()).unwrap(), c);
    }

    #[test]
    fn the_checksum_carries_and_adds_the_length() {
        // 0xffff + 0x0002 = 0x1_0001 -> 0x0002 after the carry, plus the length 4.
        assert_eq!(checksum(&[0xff, 0xff, 0x02, 0x00]), 2 + 4);
        assert_eq!(checksum(&[0x01]), 1 + 1);
    }

    #[test]
    fn other_files_and_signed_ones_are_refused() {
        assert!(canonical_unsigned(b"\x7fELF".to_vec()).is_err());
        assert!(canonical_unsigned(b"MZ".to_vec()).is_err());
        let mut pe32 = tiny(0x200);
        pe32[0x40 + OPTIONAL_HEADER] = 0x0b;
        pe32[0x40 + OPTIONAL_HEADER + 1] = 0x01;
        assert!(canonical_unsigned(pe32).is_err());
        let mut signed = tiny(0x200);
        signed[0x40 + OPTIONAL_HEADER + CERTIFICATE_TABLE + 4] = 8;
        let e = canonical_unsigned(signed).unwrap_err().to_string();
        assert!(e.contains("already signed"), "{e}");
    }
}
