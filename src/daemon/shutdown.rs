//! One shutdown signal for the whole daemon, and one tracker that joins every task it
//! started (the watchdog's resolvers included), so a stop is a single, bounded step.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The daemon's stop signal and its tasks. Cloning shares both.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// The signal every loop waits on; device threads poll `is_cancelled()`.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The tracker tasks are spawned on, so that `join` waits for them.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Spawns `task` on the tracker.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Tells every loop to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Waits up to `limit` for every tracked task to end; returns whether they all did. A
    /// task still running then (a request waiting out its timeout) is left to the runtime's
    /// shutdown: whatever it had open stays in the journal for the next start.
    pub async fn join(&self, limit: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }
}

/// SIGTERM and SIGINT, registered at once: a signal that arrives before the main loop waits
/// for it (right after READY=1) must still mean "stop cleanly", not the default action.
pub fn signals() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut term), Err(_)) => {
                term.recv().await;
            }
            _ => std::future::pending().await,
        }
    }
}

/// SIGHUP, taken from the default (which ends the process); `None` when it cannot be.
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_waits_for_every_task_that_heeds_the_signal() {
        let shutdown = Shutdown::new();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let token = shutdown.token();
            let done = done.clone();
            shutdown.spawn(async move {
                token.cancelled().await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        shutdown.trigger();
        assert!(shutdown.join(Duration::from_secs(5)).await);
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn join_gives_up_on_a_task_that_does_not() {
        let shutdown = Shutdown::new();
        shutdown.spawn(std::future::pending());
        shutdown.trigger();
        assert!(!shutdown.join(Duration::from_secs(1)).await);
    }
}
