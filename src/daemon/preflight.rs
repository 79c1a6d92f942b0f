//! The daemon's pre-flight: whether a sale may be taken now, asked before every sale is
//! armed. It refuses while the gateway is unreachable, refusing or not answering, or while
//! the clock is implausible.

use std::sync::Arc;

use crate::clock::Clock;
use crate::engine::Preflight;
use crate::gateway::Gateway;
use crate::gateway::monitor::Monitored;

/// Refuses a sale while the gateway is unreachable, refusing or not answering, or the clock
/// is implausible: before this scanpay was built, before the journal's latest write (it was
/// set back), or far from the gateway's.
pub struct DaemonPreflight {
    pub monitor: Arc<Monitored<dyn Gateway>>,
    pub clock: Arc<dyn Clock>,
    /// The earliest plausible time: the build, or the journal's latest write at start.
    pub floor: chrono::DateTime<chrono::Utc>,
}

/// How far behind the journal's latest write the clock may be (an NTP correction) before it
/// counts as set back.
pub const CLOCK_BEHIND_JOURNAL: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

pub fn built_at() -> chrono::DateTime<chrono::Utc> {
    env!("SCANPAY_BUILT_AT")
        .parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_default()
}

impl Preflight for DaemonPreflight {
    fn check(&self) -> Result<(), (&'static str, String)> {
        let now = self.clock.now();
        // The gateway's own clock, when it agrees with ours, outweighs the floor: a journal
        // written while the clock ran ahead must not lock the till out once it is right.
        let confirmed = self.monitor.clock_agrees();
        if now < self.floor && !confirmed {
            return Err((
                "clock",
                format!(
                    "this machine's clock says {}, before {} (when this scanpay was built, or the journal's latest write): set the time (NTP) before taking payments",
                    crate::clock::to_journal(now),
                    crate::clock::to_journal(self.floor)
                ),
            ));
        }
        if let Some(skew) = self.monitor.clock_skew_s()
            && skew.abs() > crate::gateway::CLOCK_SKEW_REFUSE_S
        {
            return Err((
                "clock",
                format!(
                    "this machine's clock is {skew} s off the gateway's (more than {} s): set the time (NTP) before taking payments",
                    crate::gateway::CLOCK_SKEW_REFUSE_S
                ),
            ));
        }
        match self.monitor.reachability().refusal() {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

impl DaemonPreflight {
    /// The pre-flight of a daemon on `journal`: its floor is the later of the build and the
    /// journal's latest write (less an NTP correction's worth).
    pub fn new(
        monitor: Arc<Monitored<dyn Gateway>>,
        clock: Arc<dyn Clock>,
        journal: &crate::journal::Journal,
    ) -> DaemonPreflight {
        let floor = journal
            .latest_timestamp()
            .ok()
            .flatten()
            .map(|t| t - CLOCK_BEHIND_JOURNAL)
            .unwrap_or_default()
            .max(built_at());
        DaemonPreflight {
            monitor,
            clock,
            floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::clock::TokioClock;
    use crate::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
    use crate::gateway::keys::PrivateKey;

    /// The real Open Platform client against the sandbox over HTTP, its wall clock apart
    /// from the sandbox's by `off`.
    async fn monitored(
        dir: &std::path::Path,
        clock: Arc<TokioClock>,
    ) -> (Arc<Monitored<dyn Gateway>>, crate::cli::sandbox::Running) {
        let sandbox = crate::cli::sandbox::start(
            ([127, 0, 0, 1], 0).into(),
            dir,
            crate::sandbox::DEFAULT_APP_ID,
            crate::sandbox::DEFAULT_CLIENT_ID,
            None,
        )
        .await
        .unwrap();
        let key = PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap();
        let settings = OpenApiSettings {
            url: url::Url::parse(&sandbox.url).unwrap(),
            app_id: crate::sandbox::DEFAULT_APP_ID.into(),
            private_key: key,
            alipay_public_key: sandbox.keys.gateway_key.public_key(),
            app_auth_token: None,
            notify_url: None,
            seller_id: None,
            sys_service_provider_id: None,
            timeout: Duration::from_secs(5),
            cert_mode: None,
        };
        let client: Arc<dyn Gateway> = Arc::new(OpenApi::new(settings, clock.clone()).unwrap());
        (Arc::new(Monitored::new(client, clock)), sandbox)
    }

    #[tokio::test]
    async fn sales_are_refused_while_the_clock_is_implausible() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TokioClock::starting_at(chrono::Utc::now()));
        let (monitor, _sandbox) = monitored(&dir.path().join("sbx"), clock.clone()).await;
        let preflight = |floor| DaemonPreflight {
            monitor: monitor.clone(),
            clock: clock.clone(),
            floor,
        };
        // Set back behind the journal's latest write (or the build), and no gateway answer
        // yet to say otherwise.
        assert_eq!(preflight(built_at()).check(), Ok(()));
        let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
        let (code, message) = preflight(later).check().unwrap_err();
        assert_eq!(code, "clock");
        assert!(message.contains("set the time"), "{message}");
        // The gateway's clock agrees with ours: the journal was written while the clock ran
        // ahead, and the till is not locked out.
        monitor.probe("T0001").await;
        assert_eq!(preflight(later).check(), Ok(()));
        // An hour off the gateway's clock: one answer is not enough, every recent one is.
        clock.step(-chrono::TimeDelta::hours(1));
        monitor.probe("T0001").await;
        assert_eq!(preflight(chrono::DateTime::default()).check(), Ok(()));
        for _ in 0..crate::gateway::http_skew_samples() {
            monitor.probe("T0001").await;
        }
        let skew = monitor.clock_skew_s().unwrap();
        assert!((3590..=3610).contains(&skew), "{skew}");
        let (code, message) = preflight(chrono::DateTime::default()).check().unwrap_err();
        assert_eq!(code, "clock");
        assert!(message.contains("off the gateway's"), "{message}");
        // Set right again: the next answer clears it.
        clock.step(chrono::TimeDelta::hours(1));
        monitor.probe("T0001").await;
        assert_eq!(preflight(chrono::DateTime::default()).check(), Ok(()));
    }
}
