//! `KeyRing`: the gateway clients of the running configuration, replaced whole when the
//! keys change while the daemon runs (docs/gateways.md §10). A new generation signs every
//! payment journaled after the swap; an attempt journaled under an earlier key is sent, asked
//! about and cancelled with the generation that holds that key, until it ends.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use super::{
    Cancelled, CertificateExpiry, Gateway, Outcome, Paid, PayRequest, Policy, RefundRequest,
    Refunded, TradeStatus,
};
use crate::paycode::Wallet;

/// Earlier generations kept for attempts still open under their keys: more than enough for
/// the rotations of one run (each ends within one in-doubt window).
const EARLIER_KEPT: usize = 4;
/// Payments remembered with the generation that sent them; older ones are asked about with
/// the current keys.
const SENT_REMEMBERED: usize = 4096;

pub struct KeyRing {
    current: RwLock<Arc<dyn Gateway>>,
    /// Earlier generations, newest first.
    earlier: RwLock<VecDeque<Arc<dyn Gateway>>>,
    /// Which generation each payment went out under, oldest first.
    sent: Mutex<Sent>,
}

#[derive(Default)]
struct Sent {
    by_request: HashMap<String, Arc<dyn Gateway>>,
    order: VecDeque<String>,
}

impl KeyRing {
    pub fn new(gateway: Arc<dyn Gateway>) -> KeyRing {
        KeyRing {
            current: RwLock::new(gateway),
            earlier: RwLock::new(VecDeque::new()),
            sent: Mutex::new(Sent::default()),
        }
    }

    /// The generation that signs from now on: `next` replaces the current one, which is kept
    /// for the attempts already journaled under its keys.
    pub fn replace(&self, next: Arc<dyn Gateway>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::replace(&mut *current, next);
        let mut earlier = self.earlier.write().unwrap_or_else(|e| e.into_inner());
        earlier.push_front(previous);
        earlier.truncate(EARLIER_KEPT);
    }

    fn current(&self) -> Arc<dyn Gateway> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The generation holding the key `request` was journaled under; the current one when
    /// that is its key, when none is named, or when no generation kept holds it any more.
    fn for_pay(&self, signing_key: &Option<String>, wallet: Wallet) -> Arc<dyn Gateway> {
        let current = self.current();
        let Some(label) = signing_key else {
            return current;
        };
        if current.signing_key(wallet).as_ref() == Some(label) {
            return current;
        }
        let earlier = self.earlier.read().unwrap_or_else(|e| e.into_inner());
        earlier
            .iter()
            .find(|g| g.signing_key(wallet).as_ref() == Some(label))
            .cloned()
            .unwrap_or(current)
    }

    /// The generation that sent the payment under `request_id` in this run, else the current.
    fn for_request(&self, request_id: &str) -> Arc<dyn Gateway> {
        self.sent_by(request_id).unwrap_or_else(|| self.current())
    }

    /// The earlier generation that sent the payment under `request_id`, if one did.
    fn sent_by(&self, request_id: &str) -> Option<Arc<dyn Gateway>> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        sent.by_request
            .get(request_id)
            .filter(|g| !Arc::ptr_eq(g, &current))
            .cloned()
    }

    fn remember(&self, request_id: &str, generation: &Arc<dyn Gateway>) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent
            .by_request
            .insert(request_id.to_string(), generation.clone())
            .is_none()
        {
            sent.order.push_back(request_id.to_string());
        }
        while sent.order.len() > SENT_REMEMBERED {
            if let Some(old) = sent.order.pop_front() {
                sent.by_request.remove(&old);
            }
        }
    }
}

#[async_trait]
impl Gateway for KeyRing {
    fn name(&self) -> &'static str {
        self.current().name()
    }
    fn policy(&self) -> Policy {
        self.current().policy()
    }
    fn accepts(&self, wallet: Wallet) -> bool {
        self.current().accepts(wallet)
    }
    fn route(&self, wallet: Wallet) -> Option<&'static str> {
        self.current().route(wallet)
    }
    fn request_id_tag(&self, wallet: Wallet) -> &'static str {
        self.current().request_id_tag(wallet)
    }
    fn policy_for(&self, request_id: &str) -> Policy {
        self.for_request(request_id).policy_for(request_id)
    }
    /// A new generation has not heard the gateway yet: until it has, the last one's reading
    /// stands.
    fn clock_skew_s(&self) -> Option<i64> {
        self.current().clock_skew_s().or_else(|| {
            let earlier = self.earlier.read().unwrap_or_else(|e| e.into_inner());
            earlier.front().and_then(|g| g.clock_skew_s())
        })
    }
    fn clock_agrees(&self) -> bool {
        let current = self.current();
        if current.clock_skew_s().is_some() {
            return current.clock_agrees();
        }
        let earlier = self.earlier.read().unwrap_or_else(|e| e.into_inner());
        earlier.front().is_some_and(|g| g.clock_agrees())
    }
    fn certificates(&self) -> Vec<CertificateExpiry> {
        self.current().certificates()
    }
    fn signing_key(&self, wallet: Wallet) -> Option<String> {
        self.current().signing_key(wallet)
    }
    /// Signed by the generation `pay` will send it through.
    fn sign_pay(&self, request: &PayRequest) -> Option<super::SignedPay> {
        self.for_pay(&request.signing_key, request.code.wallet())
            .sign_pay(request)
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        let generation = self.for_pay(&request.signing_key, request.code.wallet());
        self.remember(&request.request_id, &generation);
        generation.pay(request).await
    }
    async fn pay_agreement(&self, request: &super::AgreementRequest) -> Outcome<Paid> {
        let generation = self.for_pay(&request.signing_key, Wallet::AlipayPlus);
        self.remember(&request.request_id, &generation);
        generation.pay_agreement(request).await
    }
    async fn present(&self, request: &super::PresentRequest) -> Outcome<super::Presented> {
        let generation = self.for_pay(&request.signing_key, request.wallet);
        self.remember(&request.request_id, &generation);
        generation.present(request).await
    }
    /// With the keys that sent it; where the provider no longer takes those (the Open
    /// Platform keeps one key per app), refused at the door, so nothing was done, and asked
    /// again with the current keys.
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        if let Some(earlier) = self.sent_by(request_id) {
            match earlier.inquire(request_id).await {
                Outcome::Rejected(_) => {}
                answer => return answer,
            }
        }
        self.current().inquire(request_id).await
    }
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        if let Some(earlier) = self.sent_by(request_id) {
            match earlier.cancel(request_id).await {
                Outcome::Rejected(_) => {}
                answer => return answer,
            }
        }
        self.current().cancel(request_id).await
    }
    /// A refund is a new request: the current keys sign it.
    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        self.current().refund(request).await
    }
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        self.current().inquire_refund(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Amount, Currency};
    use crate::paycode::{Scan, recognise};

    /// A gateway that names its key and records the calls it got; every payment is paid.
    struct Named {
        label: &'static str,
        calls: Mutex<Vec<String>>,
        /// The provider no longer takes this key: every call is refused at the door.
        retired: std::sync::atomic::AtomicBool,
    }

    impl Named {
        fn new(label: &'static str) -> Arc<Named> {
            Arc::new(Named {
                label,
                calls: Mutex::new(Vec::new()),
                retired: Default::default(),
            })
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn record(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
    }

    fn paid() -> Paid {
        Paid {
            trade_id: "T".into(),
            amount: None,
            money: Default::default(),
        }
    }

    #[async_trait]
    impl Gateway for Named {
        fn name(&self) -> &'static str {
            "named"
        }
        fn accepts(&self, _: Wallet) -> bool {
            true
        }
        fn signing_key(&self, _: Wallet) -> Option<String> {
            Some(self.label.to_string())
        }
        async fn pay(&self, r: &PayRequest) -> Outcome<Paid> {
            self.record(format!("pay {}", r.request_id));
            Outcome::Success(paid())
        }
        async fn inquire(&self, id: &str) -> Outcome<TradeStatus> {
            self.record(format!("inquire {id}"));
            if self.retired.load(std::sync::atomic::Ordering::Relaxed) {
                return Outcome::Rejected(crate::gateway::Failure {
                    code: "isv.invalid-signature".into(),
                    message: "not this app's key".into(),
                    cashier: String::new(),
                });
            }
            Outcome::Success(TradeStatus::Paid(paid()))
        }
        async fn cancel(&self, id: &str) -> Outcome<Cancelled> {
            self.record(format!("cancel {id}"));
            Outcome::Success(Cancelled::Closed)
        }
        async fn refund(&self, r: &RefundRequest) -> Outcome<Refunded> {
            self.record(format!("refund {}", r.refund_id));
            Outcome::NotSent("no refunds here".into())
        }
        async fn inquire_refund(&self, _: &RefundRequest) -> Outcome<bool> {
            Outcome::Success(false)
        }
    }

    fn request(id: &str, key: &str) -> PayRequest {
        let Scan::Payment(code) = recognise("286000000000000000") else {
            panic!("not a code")
        };
        PayRequest {
            request_id: id.into(),
            code,
            amount: Amount::from_minor(100, Currency::from_code("CNY").unwrap()),
            subject: "s".into(),
            terminal_id: "t".into(),
            store_id: None,
            signing_key: Some(key.into()),
            basket: Default::default(),
            signed: None,
        }
    }

    #[tokio::test]
    async fn attempts_journaled_under_the_old_key_end_with_it_new_ones_use_the_new() {
        let (old, new) = (Named::new("old"), Named::new("new"));
        let ring = KeyRing::new(old.clone());
        assert_eq!(ring.signing_key(Wallet::Alipay).as_deref(), Some("old"));
        ring.pay(&request("A", "old")).await;
        // Journaled under the old key, sent after the swap: the old key still signs it.
        let journaled_before = request("B", "old");
        ring.replace(new.clone());
        assert_eq!(ring.signing_key(Wallet::Alipay).as_deref(), Some("new"));
        ring.pay(&journaled_before).await;
        ring.pay(&request("C", "new")).await;
        ring.inquire("A").await;
        ring.cancel("B").await;
        ring.inquire("C").await;
        // Asked about for the first time in this run: the current keys.
        ring.inquire("D").await;
        assert_eq!(old.calls(), ["pay A", "pay B", "inquire A", "cancel B"]);
        assert_eq!(new.calls(), ["pay C", "inquire C", "inquire D"]);
    }

    #[tokio::test]
    async fn a_key_no_generation_holds_any_more_signs_with_the_current() {
        let (old, new) = (Named::new("old"), Named::new("new"));
        let ring = KeyRing::new(old.clone());
        ring.replace(new.clone());
        ring.pay(&request("A", "gone")).await;
        assert_eq!(new.calls(), ["pay A"]);
        assert!(old.calls().is_empty());
    }

    #[tokio::test]
    async fn a_provider_that_no_longer_takes_the_old_key_is_asked_with_the_new() {
        let (old, new) = (Named::new("old"), Named::new("new"));
        let ring = KeyRing::new(old.clone());
        ring.pay(&request("A", "old")).await;
        ring.replace(new.clone());
        old.retired
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(ring.inquire("A").await, Outcome::Success(_)));
        assert_eq!(old.calls(), ["pay A", "inquire A"]);
        assert_eq!(new.calls(), ["inquire A"]);
    }
}
