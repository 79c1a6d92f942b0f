//! Crash points for the fault tests: `SCANPAY_FAILPOINT=<name>` makes the process abort
//! (no destructors, no flushing: as close to `kill -9` or a power cut as a process gets) the
//! moment it reaches that point. Unset, a failpoint costs one cached comparison.

use std::sync::OnceLock;

/// Points a payment passes where a crash matters:
/// - `before_send`: the attempt row is committed, the pay request not yet sent;
/// - `after_pay_answer`: the gateway answered, the answer is not yet journaled;
/// - `before_cancel`: the attempt is `cancelling`, the cancel not yet sent;
/// - `before_refund_send`: the refund row is written (`pending`), the refund not yet sent;
/// - `member_before_exchange_send`: a member binding is `exchanging` (its auth code sealed),
///   `applyToken` not yet sent (`api/members.rs`);
/// - `member_after_exchange_answer`: the wallet answered `applyToken`, the answer is not yet
///   journaled.
pub fn hit(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var("SCANPAY_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    if armed.as_deref() == Some(name) {
        eprintln!("scanpay: failpoint {name}: aborting");
        std::process::abort();
    }
}
