//! Payment notifications, verified (docs/gateways.md §12): the Open Platform's asynchronous
//! notification (a form POST to `notify_url`, signed with Alipay's key over its sorted
//! parameters) and AMS `notifyPayment` (a JSON POST signed as an answer is). A verified one
//! only says which payment to inquire now: the inquiry decides, never the notification.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::keys::{PrivateKey, PublicKey};

static TAKEN: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Counts one notification received: verified and taken, or refused.
pub fn count(taken: bool) {
    if taken { &TAKEN } else { &REFUSED }.fetch_add(1, Ordering::Relaxed);
}

/// Notifications received since the start: (taken, refused).
pub fn counts() -> (u64, u64) {
    (
        TAKEN.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
    )
}

/// What a verified notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The attempt's request id (`out_trade_no` / `paymentRequestId`).
    pub request_id: String,
    /// The provider's word on it (`TRADE_SUCCESS`, `S`…), for the log.
    pub status: String,
}

/// Why a notification was not taken. The text names the field, never a value.
pub type Refusal = String;

/// The Open Platform's notification: `application/x-www-form-urlencoded` in UTF-8 (the
/// `charset` it names; another is refused), `sign_type` `RSA2`, `sign` over every other
/// non-empty parameter except `sign` and `sign_type`, sorted by name, `k=v` joined by `&`.
pub fn open_platform(body: &[u8], alipay: &PublicKey, app_id: &str) -> Result<Notice, Refusal> {
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if !matches!(field("charset").to_ascii_lowercase().as_str(), "" | "utf-8") {
        return Err("charset: only utf-8 notifications are read".into());
    }
    if field("sign_type") != "RSA2" {
        return Err("sign_type: not RSA2".into());
    }
    let sign = field("sign");
    if sign.is_empty() {
        return Err("sign: missing".into());
    }
    let content = params
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "sign" | "sign_type") && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    if !alipay.verify_sha256_base64(content.as_bytes(), sign) {
        return Err("sign: does not verify with the Alipay public key".into());
    }
    if field("app_id") != app_id {
        return Err("app_id: not this terminal's app".into());
    }
    let request_id = field("out_trade_no");
    if request_id.is_empty() {
        return Err("out_trade_no: missing".into());
    }
    Ok(Notice {
        request_id: request_id.to_string(),
        status: field("trade_status").to_string(),
    })
}

/// The answer the Open Platform waits for; anything else makes it notify again.
pub const OPEN_PLATFORM_ANSWER: &str = "success";

/// What a verified AMS notification is about.
#[derive(Debug)]
pub enum AmsNotice {
    /// `notifyPayment`: which payment to inquire now.
    Payment(Notice),
    /// `notifyAuthorization` with an auth code (docs/protocol.md §18): the code for the
    /// consult made with `auth_state`. Held as a token: never printed.
    Authorization {
        auth_state: String,
        auth_code: crate::gateway::alipay_ams::authorizations::Token,
    },
}

/// An AMS notification: the `Signature` header verifies with Antom's key over
/// `POST <path>\n<client-id>.<request-time>.<body>`, for this client id. A payment's
/// (`notifyPayment`), or an authorization's when it carries `authCode` and `authState` (the
/// only fields of `notifyAuthorization` read; its other fields are not confirmed,
/// docs/protocol.md §18).
pub fn ams_notice(
    path: &str,
    client_id: &str,
    request_time: &str,
    signature: &str,
    body: &str,
    alipay: &PublicKey,
    expected_client_id: &str,
) -> Result<AmsNotice, Refusal> {
    let json = ams_verified(
        path,
        client_id,
        request_time,
        signature,
        body,
        alipay,
        expected_client_id,
    )?;
    let text = |k: &str| {
        json.get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(code) = text("authCode") {
        let auth_state =
            text("authState").ok_or_else(|| "authState: missing beside authCode".to_string())?;
        return Ok(AmsNotice::Authorization {
            auth_state: auth_state.to_string(),
            auth_code: crate::gateway::alipay_ams::authorizations::Token::new(code),
        });
    }
    payment_notice(&json).map(AmsNotice::Payment)
}

fn ams_verified(
    path: &str,
    client_id: &str,
    request_time: &str,
    signature: &str,
    body: &str,
    alipay: &PublicKey,
    expected_client_id: &str,
) -> Result<serde_json::Value, Refusal> {
    if client_id != expected_client_id {
        return Err("client-id: not this terminal's client".into());
    }
    let Some(sig) = super::alipay_ams::wire::parse_signature_header(signature) else {
        return Err("signature: missing or malformed header".into());
    };
    let content =
        super::alipay_ams::wire::sign_content("POST", path, client_id, request_time, body);
    if !alipay.verify_sha256_base64(content.as_bytes(), &sig) {
        return Err("signature: does not verify with the Antom public key".into());
    }
    serde_json::from_str(body).map_err(|_| "body: not JSON".to_string())
}

fn payment_notice(json: &serde_json::Value) -> Result<Notice, Refusal> {
    let request_id = json
        .get("paymentRequestId")
        .and_then(serde_json::Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| "paymentRequestId: missing".to_string())?;
    Ok(Notice {
        request_id: request_id.to_string(),
        status: json
            .pointer("/result/resultStatus")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// The documented answer to `notifyPayment`, signed as a request is: the body, and the
/// `client-id`, `response-time` and `signature` headers.
pub fn ams_answer(
    path: &str,
    client_id: &str,
    key_version: u32,
    key: &PrivateKey,
    now: chrono::DateTime<chrono::Utc>,
) -> (String, Vec<(&'static str, String)>) {
    let body =
        r#"{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}"#
            .to_string();
    let time = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let content = super::alipay_ams::wire::sign_content("POST", path, client_id, &time, &body);
    let signature = super::alipay_ams::wire::signature_header(
        key_version,
        &key.sign_sha256_base64(content.as_bytes()),
    );
    (
        body,
        vec![
            ("client-id", client_id.to_string()),
            ("response-time", time),
            ("signature", signature),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payment notification, as the receiver takes it.
    fn ams(
        path: &str,
        client_id: &str,
        request_time: &str,
        signature: &str,
        body: &str,
        alipay: &PublicKey,
        expected_client_id: &str,
    ) -> Result<Notice, Refusal> {
        match ams_notice(
            path,
            client_id,
            request_time,
            signature,
            body,
            alipay,
            expected_client_id,
        )? {
            AmsNotice::Payment(n) => Ok(n),
            AmsNotice::Authorization { .. } => Err("an authorization, not a payment".into()),
        }
    }

    fn keys() -> (PrivateKey, PublicKey) {
        let private = PrivateKey::generate(2048, "test").expect("key");
        let public = private.public_key();
        (private, public)
    }

    fn form(params: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
            .into_bytes()
    }

    #[test]
    fn an_open_platform_notification_is_taken_only_signed_by_alipay_for_this_app() {
        let (alipay, alipay_pub) = keys();
        let (other, _) = keys();
        let fields = [
            ("app_id", "2021000000000001"),
            ("charset", "utf-8"),
            ("notify_type", "trade_status_sync"),
            ("out_trade_no", "T1_20261203_ab"),
            ("total_amount", "8.00"),
            ("trade_status", "TRADE_SUCCESS"),
        ];
        let content = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let signed = |key: &PrivateKey| {
            let sign = key.sign_sha256_base64(content.as_bytes());
            let mut all = fields.to_vec();
            all.push(("sign_type", "RSA2"));
            let mut body = form(&all);
            body.extend_from_slice(b"&sign=");
            body.extend(url::form_urlencoded::byte_serialize(sign.as_bytes()).flat_map(str::bytes));
            body
        };
        let notice = open_platform(&signed(&alipay), &alipay_pub, "2021000000000001").unwrap();
        assert_eq!(notice.request_id, "T1_20261203_ab");
        assert_eq!(notice.status, "TRADE_SUCCESS");
        assert!(open_platform(&signed(&other), &alipay_pub, "2021000000000001").is_err());
        assert!(open_platform(&signed(&alipay), &alipay_pub, "2021000000000002").is_err());
        // One byte of it changed: refused.
        let mut tampered = signed(&alipay);
        let at = tampered.iter().position(|b| *b == b'8').unwrap();
        tampered[at] = b'9';
        assert!(open_platform(&tampered, &alipay_pub, "2021000000000001").is_err());
        assert!(open_platform(b"\xff\xfe garbage", &alipay_pub, "2021000000000001").is_err());
    }

    #[test]
    fn an_ams_notification_is_taken_only_signed_by_antom_and_answered_signed() {
        let (antom, antom_pub) = keys();
        let (merchant, merchant_pub) = keys();
        let path = "/notify/ams";
        let body = r#"{"notifyType":"PAYMENT_RESULT","result":{"resultCode":"SUCCESS","resultStatus":"S"},"paymentRequestId":"T1_x"}"#;
        let time = "2026-12-03T12:00:00.000Z";
        let content =
            crate::gateway::alipay_ams::wire::sign_content("POST", path, "C1", time, body);
        let header = crate::gateway::alipay_ams::wire::signature_header(
            1,
            &antom.sign_sha256_base64(content.as_bytes()),
        );
        let notice = ams(path, "C1", time, &header, body, &antom_pub, "C1").unwrap();
        assert_eq!(notice.request_id, "T1_x");
        assert!(ams(path, "C2", time, &header, body, &antom_pub, "C2").is_err());
        assert!(
            ams(
                path,
                "C1",
                time,
                &header,
                &body.replace("T1_x", "T1_y"),
                &antom_pub,
                "C1"
            )
            .is_err()
        );
        assert!(ams(path, "C1", time, "", body, &antom_pub, "C1").is_err());
        // An authorization notification: its code and state, the code never printed.
        let auth = r#"{"authorizationNotifyType":"AUTHCODE_CREATED","authCode":"SECRETCODE","authState":"st1"}"#;
        let content =
            crate::gateway::alipay_ams::wire::sign_content("POST", path, "C1", time, auth);
        let signed = crate::gateway::alipay_ams::wire::signature_header(
            1,
            &antom.sign_sha256_base64(content.as_bytes()),
        );
        match ams_notice(path, "C1", time, &signed, auth, &antom_pub, "C1").unwrap() {
            n @ AmsNotice::Authorization { .. } => {
                assert!(!format!("{n:?}").contains("SECRETCODE"));
                let AmsNotice::Authorization {
                    auth_state,
                    auth_code,
                } = n
                else {
                    unreachable!()
                };
                assert_eq!(
                    (auth_state.as_str(), auth_code.expose()),
                    ("st1", "SECRETCODE")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(ams_notice(path, "C1", time, &header, auth, &antom_pub, "C1").is_err());
        assert!(matches!(
            ams_notice(path, "C1", time, &header, body, &antom_pub, "C1"),
            Ok(AmsNotice::Payment(_))
        ));
        let (answer, headers) = ams_answer(path, "C1", 1, &merchant, chrono::Utc::now());
        let time = &headers
            .iter()
            .find(|(k, _)| *k == "response-time")
            .unwrap()
            .1;
        let sig = &headers.iter().find(|(k, _)| *k == "signature").unwrap().1;
        let content =
            crate::gateway::alipay_ams::wire::sign_content("POST", path, "C1", time, &answer);
        let b64 = crate::gateway::alipay_ams::wire::parse_signature_header(sig).unwrap();
        assert!(merchant_pub.verify_sha256_base64(content.as_bytes(), &b64));
    }
}
