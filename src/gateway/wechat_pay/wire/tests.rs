use super::*;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/vectors/wechat/vectors.json"
    ))
    .unwrap()
}

fn key() -> PrivateKey {
    PrivateKey::parse(
        include_str!("../../../../tests/vectors/wechat/go_sdk_test_private_key.pem"),
        "go sdk test key",
    )
    .unwrap()
}

fn platform() -> PlatformKey {
    crate::gateway::wechat_pay::cert::parse_pem(
        include_str!("../../../../tests/vectors/wechat/go_sdk_test_platform_cert.pem"),
        "go sdk test cert",
    )
    .unwrap()
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap()
}

fn at(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap()
}

#[test]
fn v1_raw_signature_is_byte_exact() {
    let v = vectors();
    assert_eq!(
        key().sign_sha256_base64(s(&v, "/v1/message").as_bytes()),
        s(&v, "/v1/signature")
    );
}

#[test]
fn v2_request_message_and_header() {
    let v = vectors();
    let ts = v.pointer("/v2/timestamp").and_then(Value::as_i64).unwrap();
    let nonce = s(&v, "/v2/nonce");
    assert_eq!(
        request_message("GET", "/v3/certificates", ts, nonce, ""),
        s(&v, "/v2/get_message")
    );
    assert_eq!(
        request_message(
            "POST",
            "/v3/certificates",
            ts,
            nonce,
            s(&v, "/v2/post_body")
        ),
        s(&v, "/v2/post_message")
    );
    let key = key();
    let signer = RequestSigner {
        key: &key,
        mchid: s(&v, "/v2/mchid"),
        serial_no: s(&v, "/v2/serial"),
    };
    let header = signer.sign("GET", "/v3/certificates", "", ts, nonce);
    let signature = key.sign_sha256_base64(s(&v, "/v2/get_message").as_bytes());
    assert_eq!(
        header,
        format!("{}{signature}\"", s(&v, "/v2/header_prefix"))
    );
    let parsed = parse_authorization(&header).unwrap();
    assert_eq!(parsed.mchid, "1234567890");
    assert_eq!(parsed.serial_no, "0123456789ABC");
    assert_eq!(parsed.signature, signature);
    assert_eq!(
        parse_authorization("WECHATPAY2-SHA256-RSA2048 mchid=\"1\""),
        None
    );
    assert_eq!(
        parse_authorization(&header.replace("WECHATPAY2-SHA256-RSA2048", "WECHATPAY2-Mock")),
        None
    );
}

#[test]
fn v3_notification_verifies_then_decrypts_and_nothing_else_does() {
    let v = vectors();
    let platform = platform();
    assert_eq!(platform.id, s(&v, "/cert_serial"));
    let body = s(&v, "/v3/body").as_bytes();
    let headers = SignedHeaders {
        timestamp: Some(s(&v, "/v3/timestamp").into()),
        nonce: Some(s(&v, "/v3/nonce").into()),
        signature: Some(s(&v, "/v3/signature").into()),
        serial: Some(s(&v, "/v3/serial").into()),
    };
    assert_eq!(
        answer_message(s(&v, "/v3/timestamp"), s(&v, "/v3/nonce"), body).len() as u64,
        v.pointer("/v3/message_len")
            .and_then(Value::as_u64)
            .unwrap()
    );
    let ts: i64 = s(&v, "/v3/timestamp").parse().unwrap();
    let keys = [PlatformKey {
        not_after: None,
        ..platform.clone()
    }];
    assert_eq!(verify(&keys, &headers, body, at(ts + 10)), Ok(()));
    // Re-signing reproduces the signature (PKCS#1 v1.5 is deterministic).
    assert_eq!(
        key().sign_sha256_base64(&answer_message(
            s(&v, "/v3/timestamp"),
            s(&v, "/v3/nonce"),
            body
        )),
        s(&v, "/v3/signature")
    );
    // The 5-minute window, both ways.
    assert_eq!(verify(&keys, &headers, body, at(ts + 300)), Ok(()));
    assert_eq!(
        verify(&keys, &headers, body, at(ts + 301)),
        Err(VerifyError::Skewed { skew_s: -301 })
    );
    assert_eq!(
        verify(&keys, &headers, body, at(ts - 301)),
        Err(VerifyError::Skewed { skew_s: 301 })
    );
    // One altered byte.
    let mut altered = body.to_vec();
    altered[10] ^= 1;
    assert!(matches!(
        verify(&keys, &headers, &altered, at(ts)),
        Err(VerifyError::BadSignature(_))
    ));
    // The key the serial names, and no other.
    let other = SignedHeaders {
        serial: Some("PUB_KEY_ID_0117177801652025070200211653000200".into()),
        ..headers.clone()
    };
    assert!(matches!(
        verify(&keys, &other, body, at(ts)),
        Err(VerifyError::UnknownSerial(_))
    ));
    let wrong = PrivateKey::generate(1024, "other").unwrap();
    let by_id = [PlatformKey {
        id: "PUB_KEY_ID_0117177801652025070200211653000200".into(),
        key: wrong.public_key(),
        not_after: None,
    }];
    assert!(matches!(
        verify(&by_id, &other, body, at(ts)),
        Err(VerifyError::BadSignature(_))
    ));
    // A probe signature is never valid, whatever follows the prefix.
    let probe = SignedHeaders {
        signature: Some(format!("WECHATPAY/SIGNTEST/{}", s(&v, "/v3/signature"))),
        ..headers.clone()
    };
    assert_eq!(verify(&keys, &probe, body, at(ts)), Err(VerifyError::Probe));
    // The certificate's own end of validity counts: it expired long before now.
    let expired = [platform.clone()];
    let end = platform.not_after.unwrap();
    let headers_then = SignedHeaders {
        timestamp: Some((end.timestamp() + 1).to_string()),
        ..headers.clone()
    };
    assert!(matches!(
        verify(&expired, &headers_then, body, at(end.timestamp() + 1)),
        Err(VerifyError::Expired(_))
    ));
    // Decrypting the resource.
    let n: Value = serde_json::from_slice(body).unwrap();
    let resource: EncryptedResource = serde_json::from_value(n["resource"].clone()).unwrap();
    let plain = decrypt(s(&v, "/v3/apiv3_key").as_bytes(), &resource).unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), s(&v, "/v3/plaintext"));
    assert!(decrypt(b"testMchAPIv3Key1", &resource).is_err());
}

#[test]
fn v4_aes_gcm() {
    let v = vectors();
    let r = EncryptedResource {
        algorithm: String::new(),
        ciphertext: s(&v, "/v4/ciphertext").into(),
        associated_data: s(&v, "/v4/aad").into(),
        nonce: s(&v, "/v4/nonce").into(),
        original_type: None,
    };
    let key = s(&v, "/v4/key").as_bytes();
    assert_eq!(decrypt(key, &r).unwrap(), s(&v, "/v4/plaintext").as_bytes());
    let again = encrypt(key, &r.nonce, &r.associated_data, b"Hello World").unwrap();
    assert_eq!(again.ciphertext, r.ciphertext);
    // A 32-byte key is AES-256; other lengths are refused.
    let k32 = b"0123456789abcdef0123456789abcdef";
    let sealed = encrypt(k32, "0123456789ab", "certificate", b"pem").unwrap();
    assert_eq!(decrypt(k32, &sealed).unwrap(), b"pem");
    assert!(decrypt(b"short", &sealed).is_err());
}

#[test]
fn v5_v6_code_pay_request_signatures() {
    let v = vectors();
    let body = CodepayBody {
        appid: "wxd678efh567hg6787".into(),
        mchid: "1230000109".into(),
        description: "Image形象店-深圳腾大-QQ公仔".into(),
        out_trade_no: "1217752501201407033233368018".into(),
        goods_tag: None,
        payer: Payer {
            auth_code: "130061098828009406".into(),
        },
        amount: PayAmount {
            total: 100,
            currency: Some("CNY".into()),
        },
        scene_info: SceneInfo {
            device_id: None,
            device_ip: None,
            store_info: StoreInfo {
                id: None,
                out_id: Some("A1111".into()),
            },
        },
    };
    let text = serde_json::to_string(&body).unwrap();
    assert_eq!(
        text,
        s(&v, "/v5/body"),
        "serialised in the documented order"
    );
    let ts = 1624523846;
    let nonce = "A1B2C3D4E5F6G7";
    let key = key();
    let signer = RequestSigner {
        key: &key,
        mchid: "1230000109",
        serial_no: "X",
    };
    let sign = |method: &str, target: &str, body: &str| {
        let h = signer.sign(method, target, body, ts, nonce);
        parse_authorization(&h).unwrap().signature
    };
    assert_eq!(
        sign("POST", s(&v, "/v5/target"), &text),
        s(&v, "/v5/signature")
    );
    assert_eq!(sign("GET", s(&v, "/v6/target"), ""), s(&v, "/v6/signature"));
}

fn reply(status: u16, body: &str, verified: bool) -> Reply {
    Reply {
        status,
        verified: if verified {
            Ok(())
        } else {
            Err(VerifyError::Missing("Wechatpay-Signature"))
        },
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn only_a_verified_answer_decides_a_pay() {
    let paid = r#"{"mchid":"1","out_trade_no":"R1","transaction_id":"42","trade_state":"SUCCESS","amount":{"total":1250,"currency":"CNY"}}"#;
    match pay_outcome(&reply(200, paid, true), "R1") {
        Outcome::Success(p) => {
            assert_eq!(p.trade_id, "42");
            assert_eq!(p.amount.unwrap().minor(), 1250);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pay_outcome(&reply(200, paid, false), "R1"),
        Outcome::Unknown(Unknown {
            kind: UnknownKind::BadSignature,
            ..
        })
    ));
    assert!(matches!(
        pay_outcome(&reply(200, paid, true), "R2"),
        Outcome::Unknown(Unknown {
            kind: UnknownKind::Mismatch,
            ..
        })
    ));
    // 202 in either body shape, signed or not, even empty: confirming.
    for body in [
        r#"{"trade_state":"USERPAYING"}"#,
        r#"{"code":"USER_PAYING","message":"x"}"#,
        "",
    ] {
        for signed in [true, false] {
            assert!(matches!(
                pay_outcome(&reply(202, body, signed), "R1"),
                Outcome::Unknown(Unknown {
                    kind: UnknownKind::BuyerConfirming,
                    ..
                })
            ));
        }
    }
    let not_enough = r#"{"code":"NOT_ENOUGH","message":"余额不足"}"#;
    assert!(
        matches!(pay_outcome(&reply(403, not_enough, true), "R1"), Outcome::Failed(f) if f.code == "NOT_ENOUGH")
    );
    assert!(matches!(
        pay_outcome(&reply(403, not_enough, false), "R1"),
        Outcome::Unknown(_)
    ));
    for (status, body) in [
        (500, r#"{"code":"SYSTEM_ERROR","message":"系统繁忙"}"#),
        (500, r#"{"code":"BANK_ERROR","message":""}"#),
        (429, r#"{"code":"FREQUENCY_LIMITED","message":""}"#),
        (403, r#"{"code":"OUT_TRADE_NO_USED","message":""}"#),
        (400, r#"{"code":"ORDERPAID","message":""}"#),
        (400, r#"{"code":"ORDER_CLOSED","message":""}"#),
        (418, "not json"),
    ] {
        assert!(
            matches!(
                pay_outcome(&reply(status, body, true), "R1"),
                Outcome::Unknown(_)
            ),
            "{status} {body}"
        );
    }
    assert!(matches!(
        pay_outcome(&reply(401, r#"{"code":"SIGN_ERROR","message":"签名错误"}"#, false), "R1"),
        Outcome::Rejected(f) if f.code == "SIGN_ERROR"
    ));
}

#[test]
fn query_states() {
    let q = |state: &str, extra: &str| {
        format!(r#"{{"out_trade_no":"R1","trade_state":"{state}"{extra}}}"#)
    };
    let paid = q(
        "SUCCESS",
        r#","transaction_id":"42","success_time":"2026-01-01T00:00:00+08:00","amount":{"total":5}"#,
    );
    assert!(matches!(
        query_outcome(&reply(200, &paid, true), "R1"),
        Outcome::Success(TradeStatus::Paid(_))
    ));
    assert!(matches!(
        query_outcome(&reply(200, &paid, false), "R1"),
        Outcome::Unknown(_)
    ));
    for s in ["USERPAYING", "NOTPAY", "ACCEPT"] {
        assert_eq!(
            query_outcome(&reply(200, &q(s, ""), true), "R1"),
            Outcome::Success(TradeStatus::Waiting)
        );
    }
    for s in ["CLOSED", "REVOKED", "PAYERROR"] {
        assert!(matches!(
            query_outcome(&reply(200, &q(s, ""), true), "R1"),
            Outcome::Success(TradeStatus::Closed(_))
        ));
    }
    let reversed = q(
        "REVOKED",
        r#","transaction_id":"42","success_time":"2026-01-01T00:00:00+08:00","amount":{"total":5}"#,
    );
    assert!(matches!(
        query_outcome(&reply(200, &reversed, true), "R1"),
        Outcome::Success(TradeStatus::Reversed(_))
    ));
    assert!(matches!(
        query_outcome(&reply(200, &q("WHATEVER", ""), true), "R1"),
        Outcome::Unknown(_)
    ));
    assert_eq!(
        query_outcome(
            &reply(
                404,
                r#"{"code":"ORDER_NOT_EXIST","message":"订单不存在"}"#,
                false
            ),
            "R1"
        ),
        Outcome::Success(TradeStatus::NotFound)
    );
}

#[test]
fn reverse_answers() {
    assert_eq!(
        reverse_outcome(&reply(200, r#"{"mchid":"1","out_trade_no":"R1"}"#, true)),
        ReverseAnswer::Done
    );
    assert!(matches!(
        reverse_outcome(&reply(200, "{}", false)),
        ReverseAnswer::Retry(_)
    ));
    assert_eq!(
        reverse_outcome(&reply(
            404,
            r#"{"code":"ORDER_NOT_EXIST","message":""}"#,
            false
        )),
        ReverseAnswer::NotFound
    );
    for (status, code) in [
        (400, "USERPAYING"),
        (400, "USER_PAYING"),
        (429, "FREQUENCY_LIMITED"),
        (403, "TRADE_ERROR"),
        (400, "INVALID_REQUEST"),
        (500, "SYSTEM_ERROR"),
        (403, "SOMETHING_NEW"),
    ] {
        let body = format!(r#"{{"code":"{code}","message":""}}"#);
        assert!(
            matches!(
                reverse_outcome(&reply(status, &body, false)),
                ReverseAnswer::Retry(_)
            ),
            "{code}"
        );
    }
    assert!(matches!(
        reverse_outcome(&reply(401, r#"{"code":"SIGN_ERROR","message":""}"#, false)),
        ReverseAnswer::Rejected(_)
    ));
}

#[test]
fn refund_answers() {
    let r =
        |status: &str| format!(r#"{{"refund_id":"50","out_refund_no":"F1","status":"{status}"}}"#);
    assert!(matches!(
        refund_outcome(&reply(200, &r("SUCCESS"), true), "F1"),
        Outcome::Success(_)
    ));
    assert!(matches!(
        refund_outcome(&reply(200, &r("PROCESSING"), true), "F1"),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        refund_outcome(&reply(200, &r("SUCCESS"), false), "F1"),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        refund_outcome(&reply(200, &r("SUCCESS"), true), "F2"),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        refund_outcome(
            &reply(403, r#"{"code":"NOT_ENOUGH","message":""}"#, true),
            "F1"
        ),
        Outcome::Failed(_)
    ));
    assert!(matches!(
        refund_outcome(
            &reply(500, r#"{"code":"SYSTEM_ERROR","message":""}"#, true),
            "F1"
        ),
        Outcome::Unknown(_)
    ));
    assert_eq!(
        refund_query_outcome(&reply(200, &r("SUCCESS"), true), "F1"),
        Outcome::Success(true)
    );
    assert_eq!(
        refund_query_outcome(&reply(200, &r("CLOSED"), true), "F1"),
        Outcome::Success(false)
    );
    assert!(matches!(
        refund_query_outcome(&reply(200, &r("PROCESSING"), true), "F1"),
        Outcome::Unknown(_)
    ));
    assert_eq!(
        refund_query_outcome(
            &reply(404, r#"{"code":"RESOURCE_NOT_EXISTS","message":""}"#, false),
            "F1"
        ),
        Outcome::Success(false)
    );
}

#[test]
fn a_generated_platform_certificate_reads_back() {
    let key = PrivateKey::generate(1024, "t").unwrap();
    let pem = crate::gateway::wechat_pay::cert::self_signed(
        &key,
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        std::time::Duration::from_secs(86_400),
    )
    .unwrap();
    let p = crate::gateway::wechat_pay::cert::parse_pem(&pem, "gen").unwrap();
    assert_eq!(p.id, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
    assert!(p.key.same_key(&key.public_key()));
    let now = Utc::now();
    let signed = sign_answer(&key, &p.id, b"{}", now);
    assert_eq!(verify(&[p], &signed, b"{}", now), Ok(()));
}
