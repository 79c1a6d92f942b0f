//! systemd integration without libsystemd: `sd_notify` is one datagram to the socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). READY=1 once recovery has
//! been handed to the watchdog, STATUS= with the counts that matter, WATCHDOG=1 only while the
//! engine and watchdog loops are alive, STOPPING=1 on shutdown. Outside systemd, nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
}

enum Target {
    Path(std::path::PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(std::os::unix::net::SocketAddr),
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; a no-op notifier when it is unset or unusable.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
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
        let socket = UnixDatagram::unbound().ok();
        Notifier {
            target: socket.zip(target),
        }
    }

    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one state string (`READY=1`, `STATUS=…`); failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((socket, target)) = &self.target else {
            return;
        };
        let sent = match target {
            Target::Path(path) => socket.send_to(state.as_bytes(), path),
            #[cfg(target_os = "linux")]
            Target::Abstract(addr) => socket.send_to_addr(state.as_bytes(), addr),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "sd_notify failed");
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
        let notifier = Notifier {
            target: Some((UnixDatagram::unbound().unwrap(), Target::Path(path))),
        };
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
        let n = Notifier { target: None };
        assert!(!n.is_active());
        n.ready("x");
    }
}
