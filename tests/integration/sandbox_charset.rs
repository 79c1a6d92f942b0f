//! The sandbox honours the request's `charset`, as the Open Platform does: a client that
//! declares GBK percent-encodes its values in GBK and signs the signing string's GBK bytes,
//! and gets its answer written, and signed, in GBK.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::ledger;
use encoding_rs::{Encoding, GBK, UTF_8};
use scanpay::cli::sandbox::Running;
use scanpay::clock::SystemClock;
use scanpay::gateway::alipay_openapi::wire::{extract_signed_content, root_sign, sign_content};
use scanpay::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
use scanpay::gateway::keys::PrivateKey;
use scanpay::gateway::{Gateway, Outcome, PayRequest, TradeStatus};
use scanpay::money::{Amount, Currency};
use scanpay::paycode::{Scan, recognise};
use scanpay::sandbox::DEFAULT_APP_ID;
use serde_json::{Value, json};

const SUBJECT: &str = "测试商品";
const CODE: &str = "286000000000000000";

fn app_key(sandbox: &Running) -> PrivateKey {
    PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap()
}

/// A hand-built Open Platform client that declares `label` and writes in `encoding`.
struct Client {
    url: String,
    key: PrivateKey,
    label: &'static str,
    encoding: &'static Encoding,
    /// The encoding of the bytes it signs (normally `encoding`).
    signs_in: &'static Encoding,
}

/// What came back: status, Content-Type and the raw body.
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

fn encode(encoding: &'static Encoding, text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(text);
    assert!(!unmappable, "{text} in {}", encoding.name());
    bytes.into_owned()
}

/// `k=v&…` with every key and value percent-encoded from its bytes in `encoding`.
fn form(encoding: &'static Encoding, pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let k: String = url::form_urlencoded::byte_serialize(&encode(encoding, k)).collect();
            let v: String = url::form_urlencoded::byte_serialize(&encode(encoding, v)).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Client {
    fn new(sandbox: &Running, label: &'static str, encoding: &'static Encoding) -> Client {
        Client {
            url: sandbox.url.clone(),
            key: app_key(sandbox),
            label,
            encoding,
            signs_in: encoding,
        }
    }

    /// The parameters of a call, as the Java SDK builds them.
    fn params(&self, method: &str, biz: &Value) -> BTreeMap<String, String> {
        let timestamp = chrono::Utc::now()
            .with_timezone(&scanpay::clock::beijing())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        [
            ("app_id", DEFAULT_APP_ID),
            ("method", method),
            ("format", "JSON"),
            ("charset", self.label),
            ("sign_type", "RSA2"),
            ("timestamp", timestamp.as_str()),
            ("version", "1.0"),
            ("biz_content", biz.to_string().as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// System parameters and `sign` in the query, `biz_content` in the body.
    async fn post(&self, query: String, body: String) -> Reply {
        let response = reqwest::Client::new()
            .post(format!("{}?{query}", self.url))
            .header(
                "content-type",
                format!("application/x-www-form-urlencoded;charset={}", self.label),
            )
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        Reply {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn call(&self, method: &str, biz: Value) -> Reply {
        let params = self.params(method, &biz);
        let sign = self
            .key
            .sign_sha256_base64(&encode(self.signs_in, &sign_content(&params)));
        let mut query: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| *k != "biz_content")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        query.push(("sign", &sign));
        let body = form(self.encoding, &[("biz_content", &params["biz_content"])]);
        self.post(form(self.encoding, &query), body).await
    }
}

impl Reply {
    /// The body read in `encoding`: it must be valid there.
    fn text(&self, encoding: &'static Encoding) -> String {
        encoding
            .decode_without_bom_handling_and_without_replacement(&self.body)
            .unwrap_or_else(|| panic!("answer is not {}: {:?}", encoding.name(), self.body))
            .into_owned()
    }

    /// The `node` of an answer in `encoding`, after checking its signature over the node's
    /// bytes in that encoding.
    fn verified(&self, sandbox: &Running, encoding: &'static Encoding, node: &str) -> Value {
        assert_eq!(self.status, 200);
        let text = self.text(encoding);
        let content = extract_signed_content(&text, node).unwrap();
        let sign = root_sign(&text).unwrap_or_else(|| panic!("unsigned: {text}"));
        assert!(
            sandbox
                .keys
                .gateway_key
                .public_key()
                .verify_sha256_base64(&encode(encoding, content), &sign),
            "signature over the {} bytes of {content}",
            encoding.name()
        );
        serde_json::from_str(content).unwrap()
    }

    /// The node of an unsigned refusal at the door, in `encoding`.
    fn refusal(&self, encoding: &'static Encoding) -> Value {
        assert_eq!(self.status, 200);
        let text = self.text(encoding);
        assert_eq!(root_sign(&text), None, "{text}");
        serde_json::from_str(extract_signed_content(&text, "error_response").unwrap()).unwrap()
    }
}

fn pay_biz(out_trade_no: &str, code: &str) -> Value {
    json!({
        "out_trade_no": out_trade_no, "scene": "bar_code", "auth_code": code,
        "total_amount": "10.00", "subject": SUBJECT,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gbk_client_is_read_verified_and_answered_in_gbk() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;
    let gbk = Client::new(&sandbox, "GBK", GBK);

    // An answer with Chinese text in it: written in GBK, not UTF-8, and signed over its GBK
    // bytes.
    let reply = gbk
        .call("alipay.trade.query", json!({"out_trade_no": "GBK_1"}))
        .await;
    assert!(
        reply
            .content_type
            .to_ascii_lowercase()
            .contains("charset=gbk"),
        "{}",
        reply.content_type
    );
    assert!(std::str::from_utf8(&reply.body).is_err(), "answer is UTF-8");
    let node = reply.verified(&sandbox, GBK, "alipay_trade_query_response");
    assert_eq!(node["sub_code"], "ACQ.TRADE_NOT_EXIST");
    assert_eq!(node["sub_msg"], "交易不存在");

    // A pay with a Chinese subject: its signature over the GBK bytes holds, and it is charged.
    let reply = gbk.call("alipay.trade.pay", pay_biz("GBK_1", CODE)).await;
    assert!(reply.content_type.contains("GBK"), "{}", reply.content_type);
    let node = reply.verified(&sandbox, GBK, "alipay_trade_pay_response");
    assert_eq!(node["code"], "10000", "{node}");
    assert_eq!(node["out_trade_no"], "GBK_1");

    let reply = gbk
        .call("alipay.trade.query", json!({"out_trade_no": "GBK_1"}))
        .await;
    let node = reply.verified(&sandbox, GBK, "alipay_trade_query_response");
    assert_eq!(node["trade_status"], "TRADE_SUCCESS", "{node}");

    // Other names of the same charsets, any case.
    for (label, encoding, id, code) in [
        ("gbk", GBK, "GBK_2", "286000000000000100"),
        ("GB2312", GBK, "GBK_3", "286000000000000200"),
        ("utf8", UTF_8, "UTF8_1", "286000000000000300"),
        ("UTF-8", UTF_8, "UTF8_2", "286000000000000400"),
    ] {
        let client = Client::new(&sandbox, label, encoding);
        let reply = client.call("alipay.trade.pay", pay_biz(id, code)).await;
        let node = reply.verified(&sandbox, encoding, "alipay_trade_pay_response");
        assert_eq!(node["code"], "10000", "{label}: {node}");
    }
    let ledger = ledger(&sandbox.ledger_url).await;
    assert_eq!(ledger.len(), 5, "{ledger:?}");
    assert!(
        ledger.iter().all(|e| e["charged_minor"] == 1000),
        "{ledger:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_in_its_declared_charset_is_refused_at_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;

    // Declares GBK and encodes in GBK, but signs the UTF-8 bytes: the signature fails, and
    // the refusal is still written in GBK.
    let mut client = Client::new(&sandbox, "GBK", GBK);
    client.signs_in = UTF_8;
    let reply = client
        .call("alipay.trade.pay", pay_biz("GBK_1", CODE))
        .await;
    assert!(reply.content_type.contains("GBK"), "{}", reply.content_type);
    let node = reply.refusal(GBK);
    assert_eq!(node["code"], "40002", "{node}");
    assert_eq!(node["sub_code"], "isv.invalid-signature", "{node}");
    // The signing string it quotes was read as GBK.
    let quoted = node["sub_msg"].as_str().unwrap();
    assert!(quoted.contains(SUBJECT), "{quoted}");

    // A charset the platform does not know, and bytes that are not valid in the declared
    // one: refused before anything is read, naming what is wrong.
    let client = Client::new(&sandbox, "latin1", UTF_8);
    let node = client
        .call("alipay.trade.pay", pay_biz("GBK_2", CODE))
        .await
        .refusal(UTF_8);
    assert_eq!(node["code"], "40002", "{node}");
    assert_eq!(node["sub_code"], "isv.invalid-charset", "{node}");
    assert!(
        node["sub_msg"].as_str().unwrap().contains("latin1"),
        "{node}"
    );

    let client = Client::new(&sandbox, "GBK", GBK);
    let query = format!("app_id={DEFAULT_APP_ID}&method=alipay.trade.pay&charset=GBK");
    for (body, what) in [
        ("subject=%FF", "a byte GBK does not have"),
        ("subject=%81", "a lead byte without its trail"),
    ] {
        let node = client.post(query.clone(), body.into()).await.refusal(GBK);
        assert_eq!(node["code"], "40002", "{what}: {node}");
        assert_eq!(node["sub_code"], "isv.invalid-parameter", "{what}: {node}");
        assert!(
            node["sub_msg"].as_str().unwrap().contains("subject"),
            "{node}"
        );
    }
    let client = Client::new(&sandbox, "utf-8", UTF_8);
    let query = format!("app_id={DEFAULT_APP_ID}&method=alipay.trade.pay&charset=utf-8");
    let node = client
        .post(query, "subject=%C3%28".into())
        .await
        .refusal(UTF_8);
    assert_eq!(node["sub_code"], "isv.invalid-parameter", "{node}");

    assert!(
        ledger(&sandbox.ledger_url).await.is_empty(),
        "nothing reached the ledger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_utf8_client_still_pays_a_chinese_subject() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;
    let settings = OpenApiSettings {
        url: url::Url::parse(&sandbox.url).unwrap(),
        app_id: DEFAULT_APP_ID.to_string(),
        private_key: app_key(&sandbox),
        alipay_public_key: sandbox.keys.gateway_key.public_key(),
        app_auth_token: None,
        notify_url: None,
        seller_id: None,
        sys_service_provider_id: None,
        timeout: Duration::from_secs(5),
        cert_mode: None,
    };
    let client = OpenApi::new(settings, Arc::new(SystemClock)).unwrap();
    let Scan::Payment(code) = recognise(CODE) else {
        panic!("{CODE}")
    };
    let request = PayRequest {
        request_id: "UTF8_1".into(),
        code,
        amount: Amount::parse("10.00", Currency::from_code("CNY").unwrap()).unwrap(),
        subject: SUBJECT.into(),
        terminal_id: "T1".into(),
        store_id: None,
        signing_key: None,
        basket: Default::default(),
        signed: None,
    };
    let outcome = client.pay(&request).await;
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    // An answer with Chinese text (`交易不存在`) comes back in UTF-8 and verifies, as before.
    let outcome = client.inquire("UTF8_2").await;
    assert!(
        matches!(outcome, Outcome::Success(TradeStatus::NotFound)),
        "{outcome:?}"
    );
    let ledger = ledger(&sandbox.ledger_url).await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["charged_minor"], 1000);
}
