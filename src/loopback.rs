//! Ports for the real processes that tests and benches start on 127.0.0.1.
//!
//! Binding port 0 hands out a port from the kernel's ephemeral range, and releasing it leaves
//! that port free for the next outgoing connection any process makes — Envoy dialling xDS or a
//! backend took such a port before Envoy could bind it as a listener (a CI flake). So ports are
//! drawn from below the ephemeral range, never twice in one process, and each is checked free
//! by binding it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out; below it sit well-known and registered service ports.
const LOWEST: u32 = 12_000;

/// A port on 127.0.0.1 that is free now, outside the ephemeral range and not handed out before
/// by this process.
///
/// # Panics
/// When no port in the range is free — tests and benches have nothing sensible to fall back to.
pub fn unused_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let highest = ephemeral_start().saturating_sub(1).max(LOWEST + 1_000);
    let span = highest - LOWEST;
    // Processes started together begin at different places so they rarely probe the same ports.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(LOWEST + (start + n) % span) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOWEST} and {highest}");
}

/// First port of the kernel's ephemeral range (Linux default 32768).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| unused_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!(u32::from(p) >= LOWEST && u32::from(p) < ephemeral_start());
            TcpListener::bind(("127.0.0.1", p)).expect("handed-out port binds");
        }
    }
}
