//! Scrubbing at the gateway seam: every text that comes from outside (a provider's message,
//! an error body, a parse or transport error) has its payment codes masked before anything
//! stores, logs, prints or returns it. A provider can echo the request back: `40002
//! isv.invalid-signature` quotes the whole signed content in `sub_msg`, `auth_code`
//! included.
//!
//! [`Scrubbed`] wraps a gateway client so no outcome leaves it unscrubbed; `cli::build_gateway`
//! wraps every client it builds.

use async_trait::async_trait;

use super::{
    Cancelled, Failure, Gateway, Outcome, Paid, PayRequest, Policy, PresentRequest, Presented,
    RefundRequest, Refunded, TradeStatus, Unknown,
};
use crate::paycode::{Wallet, mask_long_digit_runs};

/// `text` with every run of 16 or more digits masked (payment codes are 16–32 digits; the
/// prefix and last four stay, as in the masked form everywhere else).
pub fn text(text: &str) -> String {
    mask_long_digit_runs(text)
}

/// `text` with `secret` (a token or code that was sent) masked wherever an answer echoes it.
pub fn secret(text: String, secret: &str) -> String {
    if secret.is_empty() {
        text
    } else {
        text.replace(secret, "****")
    }
}

fn failure(f: Failure) -> Failure {
    Failure {
        code: text(&f.code),
        message: text(&f.message),
        cashier: text(&f.cashier),
    }
}

/// The outcome with every outside text scrubbed. Success values carry ids and amounts only
/// (a provider's trade number is an id, not a secret, and is kept whole); a closed trade's
/// reason is scrubbed like any failure.
pub fn outcome<T>(o: Outcome<T>, success: impl FnOnce(T) -> T) -> Outcome<T> {
    match o {
        Outcome::Success(t) => Outcome::Success(success(t)),
        Outcome::Failed(f) => Outcome::Failed(failure(f)),
        Outcome::Rejected(f) => Outcome::Rejected(failure(f)),
        Outcome::Unknown(u) => Outcome::Unknown(Unknown {
            kind: u.kind,
            detail: text(&u.detail),
        }),
        Outcome::NotSent(why) => Outcome::NotSent(text(&why)),
    }
}

fn status(s: TradeStatus) -> TradeStatus {
    match s {
        TradeStatus::Closed(f) => TradeStatus::Closed(failure(f)),
        other => other,
    }
}

/// A gateway whose every outcome is scrubbed.
pub struct Scrubbed<G: ?Sized>(pub std::sync::Arc<G>);

#[async_trait]
impl<G: Gateway + ?Sized> Gateway for Scrubbed<G> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn policy(&self) -> Policy {
        self.0.policy()
    }
    fn accepts(&self, wallet: Wallet) -> bool {
        self.0.accepts(wallet)
    }
    fn route(&self, wallet: Wallet) -> Option<&'static str> {
        self.0.route(wallet)
    }
    fn request_id_tag(&self, wallet: Wallet) -> &'static str {
        self.0.request_id_tag(wallet)
    }
    fn policy_for(&self, request_id: &str) -> Policy {
        self.0.policy_for(request_id)
    }
    fn clock_skew_s(&self) -> Option<i64> {
        self.0.clock_skew_s()
    }
    fn clock_agrees(&self) -> bool {
        self.0.clock_agrees()
    }
    fn certificates(&self) -> Vec<super::CertificateExpiry> {
        self.0.certificates()
    }
    fn signing_key(&self, wallet: super::Wallet) -> Option<String> {
        self.0.signing_key(wallet)
    }
    fn sign_pay(&self, request: &PayRequest) -> Option<super::SignedPay> {
        self.0.sign_pay(request)
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        outcome(self.0.pay(request).await, |p| p)
    }
    async fn pay_agreement(&self, request: &super::AgreementRequest) -> Outcome<Paid> {
        // An answer may echo the request: the token never leaves in one.
        let hide = |t: String| secret(t, request.access_token.as_str());
        match outcome(self.0.pay_agreement(request).await, |p| p) {
            Outcome::Failed(f) => Outcome::Failed(Failure {
                code: hide(f.code),
                message: hide(f.message),
                cashier: hide(f.cashier),
            }),
            Outcome::Rejected(f) => Outcome::Rejected(Failure {
                code: hide(f.code),
                message: hide(f.message),
                cashier: hide(f.cashier),
            }),
            Outcome::Unknown(u) => Outcome::Unknown(Unknown {
                kind: u.kind,
                detail: hide(u.detail),
            }),
            Outcome::NotSent(why) => Outcome::NotSent(hide(why)),
            ok => ok,
        }
    }
    async fn present(&self, request: &PresentRequest) -> Outcome<Presented> {
        outcome(self.0.present(request).await, |p| p)
    }
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        outcome(self.0.inquire(request_id).await, status)
    }
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        outcome(self.0.cancel(request_id).await, |c| c)
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        outcome(self.0.refund(request).await, |r| r)
    }
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        outcome(self.0.inquire_refund(request).await, |b| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::UnknownKind;

    #[test]
    fn every_text_of_an_outcome_loses_its_payment_codes() {
        let code = "286001234567890123";
        let echoed = format!(
            "验签出错，网关生成的验签字符串为：app_id=1&biz_content={{\"auth_code\":\"{code}\"}}"
        );
        let f = Failure {
            code: "isv.invalid-signature".into(),
            message: echoed.clone(),
            cashier: "call support".into(),
        };
        let all: Vec<Outcome<()>> = vec![
            Outcome::Failed(f.clone()),
            Outcome::Rejected(f),
            Outcome::Unknown(Unknown::new(UnknownKind::Malformed, echoed.clone())),
            Outcome::NotSent(echoed),
        ];
        for o in all {
            let text = format!("{:?}", outcome(o, |x| x));
            assert!(!text.contains(code), "{text}");
            assert!(text.contains("0123"), "the last four stay: {text}");
        }
        let closed = status(TradeStatus::Closed(Failure {
            code: "TRADE_CLOSED".into(),
            message: format!("closed {code}"),
            cashier: String::new(),
        }));
        assert!(!format!("{closed:?}").contains(code));
    }
}
