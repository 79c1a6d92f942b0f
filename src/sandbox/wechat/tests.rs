//! The WeChat Pay client against the sandbox over HTTP on loopback: real signatures both
//! ways, every scenario of the code table and every switched behaviour.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::SystemClock;
use crate::gateway::wechat_pay::{ApiV3Key, WechatPay, WechatSettings, cert};
use crate::gateway::{Paid, Unknown};
use crate::sandbox::{Sandbox, SandboxKeys};

struct Running {
    sandbox: Arc<Sandbox>,
    origin: String,
    keys: SandboxKeys,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(modes: WechatModes) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let keys = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
    let sandbox = Arc::new(Sandbox::new(Arc::new(SystemClock)));
    let server =
        Arc::new(SandboxServer::new(sandbox.clone(), &keys, "a", "c").with_wechat_modes(modes));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(server.serve(listener));
    Running {
        sandbox,
        origin,
        keys,
        _dir: dir,
        task,
    }
}

enum Trust {
    Certificate,
    PublicKey,
    Download,
}

fn client(r: &Running, trust: Trust) -> WechatPay {
    let app = crate::gateway::keys::PrivateKey::load(r.keys.app_private_key_file.as_ref().unwrap())
        .unwrap();
    let cert = cert::parse_pem(&r.keys.wechat.cert_pem, "sandbox cert").unwrap();
    let public = crate::gateway::wechat_pay::wire::PlatformKey {
        id: r.keys.wechat.public_key_id.clone(),
        key: r.keys.wechat.platform_key.public_key(),
        not_after: None,
    };
    let (certificates, public_key, download) = match trust {
        Trust::Certificate => (vec![cert], None, false),
        Trust::PublicKey => (vec![], Some(public), false),
        Trust::Download => (vec![], None, true),
    };
    WechatPay::new(
        WechatSettings {
            origin: r.origin.parse().unwrap(),
            appid: crate::sandbox::WECHAT_APPID.into(),
            mchid: crate::sandbox::WECHAT_MCHID.into(),
            private_key: app,
            serial_no: crate::sandbox::WECHAT_MERCHANT_SERIAL.into(),
            apiv3_key: ApiV3Key::new(&r.keys.wechat.apiv3_key).unwrap(),
            certificates,
            public_key,
            download_certificates: download,
            device_ip: Some("127.0.0.1".into()),
            goods_tag: None,
            timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
        },
        Arc::new(SystemClock),
    )
    .unwrap()
}

fn request(id: &str, ending: &str) -> PayRequest {
    let Scan::Payment(code) = recognise(&format!("1345678901234567{ending}")) else {
        panic!("not a code")
    };
    PayRequest {
        request_id: id.to_string(),
        code,
        amount: cny(1250).unwrap(),
        subject: "coffee".into(),
        terminal_id: "T0001".into(),
        store_id: Some("S1".into()),
        signing_key: None,
        basket: Default::default(),
        signed: None,
    }
}

fn kind<T: std::fmt::Debug>(o: &Outcome<T>) -> Option<UnknownKind> {
    match o {
        Outcome::Unknown(Unknown { kind, .. }) => Some(*kind),
        _ => None,
    }
}

fn net(r: &Running) -> i64 {
    r.sandbox
        .ledger()
        .iter()
        .map(super::super::LedgerEntry::net_minor)
        .sum()
}

#[tokio::test]
async fn paid_then_refunded_and_reversed() {
    let r = start(WechatModes::default()).await;
    for trust in [Trust::Certificate, Trust::PublicKey, Trust::Download] {
        let g = client(&r, trust);
        let id = format!("R{}", rand::random::<u32>());
        let mut req = request(&id, "00");
        req.code = match recognise(&format!("13{:014}00", rand::random::<u32>())) {
            Scan::Payment(c) => c,
            _ => unreachable!(),
        };
        let Outcome::Success(Paid {
            trade_id, amount, ..
        }) = g.pay(&req).await
        else {
            panic!("not paid")
        };
        assert!(!trade_id.is_empty());
        assert_eq!(amount, cny(1250));
        assert!(matches!(
            g.inquire(&id).await,
            Outcome::Success(TradeStatus::Paid(_))
        ));
        let refund = RefundRequest {
            refund_id: format!("{id}R1"),
            payment_request_id: id.clone(),
            trade_id: Some(trade_id),
            amount: cny(250).unwrap(),
            reason: None,
        };
        // Accepted, then done by the refund query.
        assert_eq!(
            kind(&g.refund(&refund).await),
            Some(UnknownKind::ProviderUnsure)
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(g.inquire_refund(&refund).await, Outcome::Success(true));
        assert!(
            matches!(g.refund(&refund).await, Outcome::Success(_)),
            "same id: done once"
        );
        assert_eq!(r.sandbox.refunded(&id, &refund.refund_id), cny(250));
    }
    // Reversing a paid order refunds it in full.
    let g = client(&r, Trust::Certificate);
    assert!(matches!(
        g.pay(&request("RV1", "00")).await,
        Outcome::Success(_)
    ));
    assert_eq!(g.cancel("RV1").await, Outcome::Success(Cancelled::Refunded));
    assert!(matches!(
        g.inquire("RV1").await,
        Outcome::Success(TradeStatus::Reversed(_))
    ));
    assert_eq!(
        r.sandbox
            .ledger()
            .iter()
            .find(|e| e.request_id == "RV1")
            .unwrap()
            .net_minor(),
        0
    );
}

#[tokio::test]
async fn confirming_failing_and_unclear_codes() {
    let r = start(WechatModes::default()).await;
    let g = client(&r, Trust::Certificate);
    // 03: 202, then paid ~3 s later; the code is sent once.
    assert_eq!(
        kind(&g.pay(&request("C3", "03")).await),
        Some(UnknownKind::BuyerConfirming)
    );
    assert_eq!(
        g.inquire("C3").await,
        Outcome::Success(TradeStatus::Waiting)
    );
    assert_eq!(r.sandbox.pay_calls("C3"), 1);
    // 04: a reverse while the customer confirms is refused: query and retry.
    assert_eq!(
        kind(&g.pay(&request("C4", "04")).await),
        Some(UnknownKind::BuyerConfirming)
    );
    assert_eq!(
        kind(&g.cancel("C4").await),
        Some(UnknownKind::BuyerConfirming)
    );
    // 05: system error, but paid.
    assert_eq!(
        kind(&g.pay(&request("C5", "05")).await),
        Some(UnknownKind::ProviderUnsure)
    );
    assert!(matches!(
        g.inquire("C5").await,
        Outcome::Success(TradeStatus::Paid(_))
    ));
    // 07: dropped after the charge.
    assert_eq!(
        kind(&g.pay(&request("C7", "07")).await),
        Some(UnknownKind::ConnectionLost)
    );
    assert!(matches!(
        g.inquire("C7").await,
        Outcome::Success(TradeStatus::Paid(_))
    ));
    // 08: a bad signature on a paid answer decides nothing.
    assert_eq!(
        kind(&g.pay(&request("C8", "08")).await),
        Some(UnknownKind::BadSignature)
    );
    // 09 and 14: system error and rate limit, nothing created; the reverse says so.
    for (id, ending) in [("C9", "09"), ("C14", "14")] {
        assert_eq!(
            kind(&g.pay(&request(id, ending)).await),
            Some(UnknownKind::ProviderUnsure)
        );
        assert_eq!(g.inquire(id).await, Outcome::Success(TradeStatus::NotFound));
        assert_eq!(
            g.cancel(id).await,
            Outcome::Success(Cancelled::NotCreated {
                code: "ORDER_NOT_EXIST"
            })
        );
    }
    // 01, 02: definite failures, confirmed by a query.
    for (id, ending, code) in [("C1", "01", "NOT_ENOUGH"), ("C2", "02", "TRADE_ERROR")] {
        match g.pay(&request(id, ending)).await {
            Outcome::Failed(f) => assert_eq!(f.code, code),
            other => panic!("{other:?}"),
        }
    }
    // 13: pays the moment the reverse arrives: refunded.
    assert_eq!(
        kind(&g.pay(&request("C13", "13")).await),
        Some(UnknownKind::BuyerConfirming)
    );
    assert_eq!(g.cancel("C13").await, Outcome::Success(Cancelled::Refunded));
    tokio::time::sleep(super::super::CONFIRM_DELAY).await;
    assert!(matches!(
        g.inquire("C3").await,
        Outcome::Success(TradeStatus::Paid(_))
    ));
    assert_eq!(r.sandbox.pay_calls("C3"), 1);
    // Money: 03, 05, 07, 08 charged; 13 charged and given back.
    assert_eq!(net(&r), 4 * 1250);
}

#[tokio::test]
async fn every_switched_behaviour_is_safe() {
    let modes: WechatModes =
        "userpaying-code,unsigned-202,unsigned-errors,reverse-429,reverse-unknown-200,revoked-bare"
            .parse()
            .unwrap();
    let r = start(modes).await;
    let g = client(&r, Trust::Certificate);
    assert_eq!(
        kind(&g.pay(&request("M4", "04")).await),
        Some(UnknownKind::BuyerConfirming)
    );
    assert_eq!(
        kind(&g.cancel("M4").await),
        Some(UnknownKind::BuyerConfirming),
        "429 retried"
    );
    // An unsigned business failure decides nothing.
    assert!(matches!(
        g.pay(&request("M1", "01")).await,
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        g.inquire("M1").await,
        Outcome::Success(TradeStatus::Closed(_))
    ));
    // 200 for a reverse of nothing: the query after it says not created.
    assert_eq!(
        kind(&g.pay(&request("M9", "09")).await),
        Some(UnknownKind::ProviderUnsure)
    );
    assert_eq!(
        g.cancel("M9").await,
        Outcome::Success(Cancelled::NotCreated {
            code: "ORDER_NOT_EXIST"
        })
    );
    // A reversed paid order without its transaction: the query before decides.
    assert!(matches!(
        g.pay(&request("M0", "00")).await,
        Outcome::Success(_)
    ));
    assert_eq!(g.cancel("M0").await, Outcome::Success(Cancelled::Refunded));
    assert!("nonsense".parse::<WechatModes>().is_err());

    // Probes: never valid.
    let r = start("probe".parse().unwrap()).await;
    let g = client(&r, Trust::Certificate);
    assert_eq!(
        kind(&g.pay(&request("P0", "00")).await),
        Some(UnknownKind::BadSignature)
    );
    assert_eq!(
        kind(&g.inquire("P0").await),
        Some(UnknownKind::BadSignature)
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_at_the_door() {
    let r = start(WechatModes::default()).await;
    let other = start(WechatModes::default()).await;
    // Our merchant key, the other sandbox's: 401 SIGN_ERROR, unsigned, rejected.
    let mut g = client(&other, Trust::Certificate);
    let _ = &mut g;
    let wrong = WechatPay::new(
        WechatSettings {
            origin: r.origin.parse().unwrap(),
            ..settings_of(&other)
        },
        Arc::new(SystemClock),
    )
    .unwrap();
    assert!(
        matches!(wrong.pay(&request("W1", "00")).await, Outcome::Rejected(f) if f.code == "SIGN_ERROR")
    );
    assert_eq!(r.sandbox.pay_calls("W1"), 0);
    // The right key but the other sandbox's platform certificate: the answer does not verify.
    let mismatched = WechatPay::new(
        WechatSettings {
            certificates: vec![cert::parse_pem(&other.keys.wechat.cert_pem, "x").unwrap()],
            ..settings_of(&r)
        },
        Arc::new(SystemClock),
    )
    .unwrap();
    assert_eq!(
        kind(&mismatched.pay(&request("W2", "00")).await),
        Some(UnknownKind::BadSignature)
    );
}

fn settings_of(r: &Running) -> WechatSettings {
    let app = crate::gateway::keys::PrivateKey::load(r.keys.app_private_key_file.as_ref().unwrap())
        .unwrap();
    WechatSettings {
        origin: r.origin.parse().unwrap(),
        appid: crate::sandbox::WECHAT_APPID.into(),
        mchid: crate::sandbox::WECHAT_MCHID.into(),
        private_key: app,
        serial_no: crate::sandbox::WECHAT_MERCHANT_SERIAL.into(),
        apiv3_key: ApiV3Key::new(&r.keys.wechat.apiv3_key).unwrap(),
        certificates: vec![cert::parse_pem(&r.keys.wechat.cert_pem, "c").unwrap()],
        public_key: None,
        download_certificates: false,
        device_ip: None,
        goods_tag: None,
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn downloaded_certificates_are_decrypted_verified_and_a_probe_list_is_refused() {
    let r = start(WechatModes::default()).await;
    let g = client(&r, Trust::Download);
    assert!(g.platform_keys().is_empty());
    assert_eq!(
        g.inquire("D1").await,
        Outcome::Success(TradeStatus::NotFound)
    );
    let keys = g.platform_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, r.keys.wechat.cert_serial);
    assert!(keys[0].not_after.is_some_and(|t| t > chrono::Utc::now()));
    // A wrong APIv3 key: the certificates do not decrypt, nothing is trusted.
    let mut wrong = settings_of(&r);
    wrong.certificates.clear();
    wrong.download_certificates = true;
    wrong.apiv3_key = ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap();
    let g = WechatPay::new(wrong, Arc::new(SystemClock)).unwrap();
    assert!(
        g.download_certificates()
            .await
            .unwrap_err()
            .contains("did not decrypt")
    );
    // (An unsigned 404 decides nothing and is read as it comes; a paid answer must verify.)
    assert_eq!(
        kind(&g.pay(&request("D2", "00")).await),
        Some(UnknownKind::BadSignature)
    );
    // Every answer a probe, the list too: never trusted.
    let r = start("probe".parse().unwrap()).await;
    let g = client(&r, Trust::Download);
    assert!(
        g.download_certificates()
            .await
            .unwrap_err()
            .contains("SIGNTEST")
    );
    assert!(g.platform_keys().is_empty());
}

#[tokio::test]
async fn the_trade_bill_comes_with_its_hash() {
    let r = start(WechatModes::default()).await;
    let g = client(&r, Trust::Certificate);
    assert!(matches!(
        g.pay(&request("B1", "00")).await,
        Outcome::Success(_)
    ));
    let today = chrono::Utc::now()
        .with_timezone(&crate::clock::beijing())
        .date_naive();
    let bytes = g.download_bill(today).await.unwrap();
    let lines = crate::gateway::wechat_pay::bill::parse(&bytes).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].request_id, "B1");
    assert_eq!(lines[0].amount, cny(1250).unwrap());
}
