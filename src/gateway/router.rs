//! Several gateways at once, one per wallet (docs/gateways.md §8.8): a pay goes to the
//! gateway that takes the scanned code's wallet; every later call about a payment (inquiry,
//! cancel, refund) goes where its request id says it went, by the tag that gateway ends its
//! request ids with. Ids without a tag (and every id from before several gateways were
//! configured) belong to the first gateway that tags none.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Cancelled, Gateway, Outcome, Paid, PayRequest, Policy, RefundRequest, Refunded, TradeStatus,
};
use crate::paycode::Wallet;

pub struct Router {
    routes: Vec<Arc<dyn Gateway>>,
    name: &'static str,
}

impl Router {
    /// A router over `routes`, in the order configured. Refused when two gateways take the
    /// same wallet or end their request ids alike.
    pub fn new(routes: Vec<Arc<dyn Gateway>>) -> Result<Router, String> {
        if routes.is_empty() {
            return Err("no gateway configured".to_string());
        }
        for wallet in Wallet::ALL {
            let takers: Vec<&str> = routes
                .iter()
                .filter(|g| g.accepts(*wallet))
                .map(|g| g.name())
                .collect();
            if takers.len() > 1 {
                return Err(format!(
                    "{} codes would go to {}: configure one gateway per wallet",
                    wallet.display_name(),
                    takers.join(" and ")
                ));
            }
        }
        let tags: Vec<&str> = routes.iter().map(|g| tag_of(g.as_ref())).collect();
        for (i, t) in tags.iter().enumerate() {
            if tags[..i].contains(t) {
                return Err(format!(
                    "{} and another gateway would share request ids: configure each kind once",
                    routes[i].name()
                ));
            }
        }
        let names: Vec<&str> = routes.iter().map(|g| g.name()).collect();
        // Built once per configuration; the name lives as long as the daemon.
        let name: &'static str = Box::leak(names.join("+").into_boxed_str());
        Ok(Router { routes, name })
    }

    /// The gateways, in the order configured.
    pub fn routes(&self) -> &[Arc<dyn Gateway>] {
        &self.routes
    }

    fn for_wallet(&self, wallet: Wallet) -> Option<&Arc<dyn Gateway>> {
        self.routes.iter().find(|g| g.accepts(wallet))
    }

    /// The gateway the payment sent under `request_id` went to.
    fn for_id(&self, request_id: &str) -> &Arc<dyn Gateway> {
        self.routes
            .iter()
            .find(|g| {
                let tag = tag_of(g.as_ref());
                !tag.is_empty() && request_id.ends_with(tag)
            })
            .or_else(|| self.routes.iter().find(|g| tag_of(g.as_ref()).is_empty()))
            .unwrap_or(&self.routes[0])
    }
}

/// A gateway's request-id tag, whichever wallet it takes.
fn tag_of(g: &dyn Gateway) -> &'static str {
    Wallet::ALL
        .iter()
        .find(|w| g.accepts(**w))
        .map(|w| g.request_id_tag(*w))
        .unwrap_or("")
}

#[async_trait]
impl Gateway for Router {
    fn name(&self) -> &'static str {
        self.name
    }

    fn policy(&self) -> Policy {
        self.routes[0].policy()
    }

    fn accepts(&self, wallet: Wallet) -> bool {
        self.for_wallet(wallet).is_some()
    }

    fn route(&self, wallet: Wallet) -> Option<&'static str> {
        self.for_wallet(wallet).and_then(|g| g.route(wallet))
    }

    fn request_id_tag(&self, wallet: Wallet) -> &'static str {
        self.for_wallet(wallet)
            .map(|g| g.request_id_tag(wallet))
            .unwrap_or("")
    }

    fn policy_for(&self, request_id: &str) -> Policy {
        self.for_id(request_id).policy_for(request_id)
    }

    fn clock_skew_s(&self) -> Option<i64> {
        self.routes.iter().find_map(|g| g.clock_skew_s())
    }

    fn clock_agrees(&self) -> bool {
        self.routes.iter().any(|g| g.clock_agrees())
    }

    fn certificates(&self) -> Vec<super::CertificateExpiry> {
        self.routes.iter().flat_map(|g| g.certificates()).collect()
    }

    fn signing_key(&self, wallet: Wallet) -> Option<String> {
        self.for_wallet(wallet).and_then(|g| g.signing_key(wallet))
    }

    fn sign_pay(&self, request: &PayRequest) -> Option<super::SignedPay> {
        self.for_wallet(request.code.wallet())?.sign_pay(request)
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        match self.for_wallet(request.code.wallet()) {
            Some(g) => g.pay(request).await,
            None => Outcome::NotSent(format!(
                "no gateway configured for {}",
                request.code.wallet().display_name()
            )),
        }
    }

    async fn pay_agreement(&self, request: &super::AgreementRequest) -> Outcome<Paid> {
        // Auto-debit is Antom's: the gateway that takes Alipay+ wallets.
        match self.for_wallet(Wallet::AlipayPlus) {
            Some(g) => g.pay_agreement(request).await,
            None => Outcome::NotSent("no gateway configured for member auto-debit".into()),
        }
    }

    async fn present(&self, request: &super::PresentRequest) -> Outcome<super::Presented> {
        match self.for_wallet(request.wallet) {
            Some(g) => g.present(request).await,
            None => Outcome::NotSent(format!(
                "no gateway configured for {}",
                request.wallet.display_name()
            )),
        }
    }

    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        self.for_id(request_id).inquire(request_id).await
    }

    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        self.for_id(request_id).cancel(request_id).await
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        self.for_id(&request.payment_request_id)
            .refund(request)
            .await
    }

    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        self.for_id(&request.payment_request_id)
            .inquire_refund(request)
            .await
    }
}
