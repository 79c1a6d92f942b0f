//! systemd integration without libsystemd: `sd_notify` is one datagram to the socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). READY=1 once recovery has
//! been handed to the watchdog, STATUS= with the counts that matter, WATCHDOG=1 only while the
//! engine and watchdog loops are alive, STOPPING=1 on shutdown. Outside systemd, nothing.
//!
//! The socket is non-blocking: these are sent from runtime threads that also carry sales, so
//! a receiver whose queue is full (a stuck supervisor, a harness that never reads) must not
//! hold them up. A message that cannot be sent at once is dropped and counted.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
    /// Notifications not sent (queue full, socket gone, …).
    dropped: AtomicU64,
}

/// Whether a full queue has been reported at warn level yet: once per process, however many
/// notifiers it has (`src/daemon/` makes one for start and stop, one for housekeeping).
static WARNED_FULL: AtomicBool = AtomicBool::new(false);

enum Target {
    Path(PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(std::os::unix::net::SocketAddr),
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; a no-op notifier when it is unset or unusable.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::with_target(None);
        };
        let name = name.to_string_lossy().into_owned();
        let target = if let Some(abstract_name) = name.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                match std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()) {
                    Ok(addr) => Some(Target::Abstract(addr)),
                    Err(_) => None,
                }
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = abstract_name;
                None
            }
        } else {
            Some(Target::Path(name.into()))
        };
        Notifier::with_target(target)
    }

    /// Notifies the socket bound at `path`, as `NOTIFY_SOCKET=path` would.
    pub fn to_path(path: impl Into<PathBuf>) -> Notifier {
        Notifier::with_target(Some(Target::Path(path.into())))
    }

    /// A socket that cannot be made non-blocking is not used: it could stall its caller.
    fn with_target(target: Option<Target>) -> Notifier {
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| tracing::debug!(error = %e, "no sd_notify socket"))
            .ok();
        Notifier {
            target: target.and_then(|t| socket.map(|s| (s, t))),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Notifications dropped so far because they could not be sent at once.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sends one state string (`READY=1`, `STATUS=…`) without waiting: when it cannot go at
    /// once it is dropped and counted, never retried, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((socket, target)) = &self.target else {
            return;
        };
        let sent = match target {
            Target::Path(path) => socket.send_to(state.as_bytes(), path),
            #[cfg(target_os = "linux")]
            Target::Abstract(addr) => socket.send_to_addr(state.as_bytes(), addr),
        };
        let Err(e) = sent else {
            return;
        };
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if e.kind() == std::io::ErrorKind::WouldBlock && !WARNED_FULL.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "the systemd notification socket is not being read (its queue is full); \
                 notifications are dropped until it is read again"
            );
        } else {
            tracing::debug!(error = %e, dropped, "sd_notify dropped");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }
}

/// Half of `WATCHDOG_USEC`, when systemd asks this process for watchdog pings.
pub fn watchdog_ping_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to_path(path);
        notifier.ready("3 in doubt");
        notifier.watchdog();
        notifier.stopping();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = listener.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            ["READY=1\nSTATUS=3 in doubt", "WATCHDOG=1", "STOPPING=1"]
        );
    }

    #[test]
    fn without_notify_socket_nothing_happens() {
        let n = Notifier::with_target(None);
        assert!(!n.is_active());
        n.ready("x");
        assert_eq!(n.dropped(), 0);
    }

    #[test]
    fn a_receiver_that_never_reads_does_not_block_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        // Bound and never read: its queue fills after a few datagrams (the kernel limits a
        // datagram socket's queue). A blocking send would wait here forever.
        let _listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to_path(&path);
        assert!(notifier.is_active());
        for i in 0..5000 {
            notifier.status(&format!("gateway online; 0 payment(s) in doubt; sale {i}"));
        }
        notifier.watchdog();
        assert!(notifier.dropped() > 0, "the queue never filled");
        assert!(notifier.dropped() <= 5001);
    }

    #[test]
    fn a_missing_socket_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::to_path(dir.path().join("nobody"));
        notifier.ready("x");
        notifier.watchdog();
        assert_eq!(notifier.dropped(), 2);
    }
}
