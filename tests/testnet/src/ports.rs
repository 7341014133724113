//! Port allocation. Each network takes a block of consecutive ports below the
//! kernel's ephemeral range (so outgoing connections never steal a port a
//! daemon or a test is about to bind) and holds an flock on the block for its
//! lifetime, so parallel networks on one machine never share a port.

use crate::Error;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

pub(crate) const BLOCK_SIZE: u16 = 100;
const FIRST_PORT: u16 = 10_000;

/// A reserved block of ports `[base, base + BLOCK_SIZE)`.
pub(crate) struct PortBlock {
    pub base: u16,
    /// Listeners proving the ports free; dropped just before daemons start.
    held: Vec<TcpListener>,
    _lock: File,
}

impl PortBlock {
    pub fn port(&self, offset: u16) -> u16 {
        assert!(
            offset < BLOCK_SIZE,
            "port offset {offset} outside the block"
        );
        self.base + offset
    }

    /// Frees the ports so the daemons can bind them; the block stays reserved.
    pub fn release_ports(&mut self) {
        self.held.clear();
    }

    pub fn reserve() -> Result<PortBlock, Error> {
        let end = ephemeral_low().min(u16::MAX as u32) as u16;
        let count = end.saturating_sub(FIRST_PORT) / BLOCK_SIZE;
        if count == 0 {
            return Err(Error::new(
                "no room for a port block below the ephemeral range",
            ));
        }
        let lock_dir = lock_dir();
        std::fs::create_dir_all(&lock_dir)
            .map_err(|e| Error::new(format!("creating {}: {e}", lock_dir.display())))?;
        let start = (std::process::id() as u64 ^ crate::nanos()) % u64::from(count);
        for i in 0..count {
            let index = ((start + u64::from(i)) % u64::from(count)) as u16;
            let base = FIRST_PORT + index * BLOCK_SIZE;
            let Some(lock) = try_lock(&lock_dir, base) else {
                continue;
            };
            let mut held = Vec::with_capacity(BLOCK_SIZE as usize);
            for port in base..base + BLOCK_SIZE {
                match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                    Ok(l) => held.push(l),
                    Err(_) => break,
                }
            }
            if held.len() == BLOCK_SIZE as usize {
                return Ok(PortBlock {
                    base,
                    held,
                    _lock: lock,
                });
            }
        }
        Err(Error::new("no free block of loopback ports found"))
    }
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("timb-testnet-ports")
}

fn try_lock(dir: &std::path::Path, base: u16) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("block-{base}.lock")))
        .ok()?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (r == 0).then_some(file)
}

fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32768)
}
