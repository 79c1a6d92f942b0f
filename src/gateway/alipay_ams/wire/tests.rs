use super::*;
use crate::gateway::keys::PrivateKey;

fn vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/vectors/protocol-test-vectors.json"
    ))
    .unwrap()
}

fn key() -> PrivateKey {
    let v = vectors();
    PrivateKey::parse(
        v["computed_keypair"]["private_pkcs8_der_b64"]
            .as_str()
            .unwrap(),
        "vector",
    )
    .unwrap()
}

#[test]
fn pay_request_signature_and_header_are_byte_exact() {
    let v = vectors();
    let case = &v["computed_ams_pay_request"];
    let content = sign_content(
        "POST",
        case["path"].as_str().unwrap(),
        case["client_id"].as_str().unwrap(),
        case["request_time"].as_str().unwrap(),
        case["body"].as_str().unwrap(),
    );
    assert_eq!(content, case["content_to_sign"].as_str().unwrap());
    let signature = key().sign_sha256_base64(content.as_bytes());
    assert_eq!(signature, case["signature_b64"].as_str().unwrap());
    assert_eq!(
        signature_header(1, &signature),
        case["signature_header"].as_str().unwrap()
    );
    assert_eq!(
        parse_signature_header(case["signature_header"].as_str().unwrap()).unwrap(),
        signature
    );
}

#[test]
fn pay_response_verifies_and_a_tampered_one_does_not() {
    let v = vectors();
    let case = &v["computed_ams_pay_response"];
    let public = key().public_key();
    let content = sign_content(
        "POST",
        case["path"].as_str().unwrap(),
        case["client_id"].as_str().unwrap(),
        case["response_time"].as_str().unwrap(),
        case["body"].as_str().unwrap(),
    );
    assert_eq!(content, case["content_to_verify"].as_str().unwrap());
    let signature = parse_signature_header(case["signature_header"].as_str().unwrap()).unwrap();
    assert!(public.verify_sha256_base64(content.as_bytes(), &signature));
    let tampered_body = content.replace("\"1231\"", "\"1232\"");
    assert!(!public.verify_sha256_base64(tampered_body.as_bytes(), &signature));
    let tampered_time = content.replace("1704081602345", "1704081602346");
    assert!(!public.verify_sha256_base64(tampered_time.as_bytes(), &signature));
}

#[test]
fn the_upm_body_has_the_documented_shape() {
    let v = vectors();
    let expected: Value =
        serde_json::from_str(v["computed_ams_pay_request"]["body"].as_str().unwrap()).unwrap();
    let merchant = Merchant {
        reference_merchant_id: "M0001".into(),
        merchant_name: "Demo Cafe".into(),
        merchant_mcc: "5812".into(),
        reference_store_id: "S0001".into(),
        store_name: "Demo Cafe Main St".into(),
        merchant_region: None,
        settlement_currency: None,
        payment_notify_url: None,
    };
    let body = pay_body(&PayBody {
        request_id: "pay_20240101_0001",
        source: PaymentSource::PaymentCode("281234567890123456"),
        amount: Amount::from_minor(1231, Currency::from_code("USD").unwrap()),
        description: "Coffee",
        terminal_id: "T0001",
        request_time: "2024-01-01T12:00:00+08:00",
        expiry_time: None,
        merchant: &merchant,
        goods: &[],
    });
    let mut got: Value = serde_json::from_str(&body).unwrap();
    // scanpay adds the order reference and the settlement currency (the payment's own when
    // none is configured); everything else is the documented example.
    assert_eq!(got["order"]["referenceOrderId"], "pay_20240101_0001");
    got["order"]
        .as_object_mut()
        .unwrap()
        .remove("referenceOrderId");
    assert_eq!(
        got.as_object_mut().unwrap().remove("settlementStrategy"),
        Some(json!({"settlementCurrency": "USD"}))
    );
    assert_eq!(got, expected);

    let agreement = pay_body(&PayBody {
        source: PaymentSource::Agreement {
            wallet: "GCASH",
            access_token: "tok",
        },
        request_id: "r",
        amount: Amount::from_minor(100, Currency::from_code("PHP").unwrap()),
        description: "x",
        terminal_id: "T",
        request_time: "t",
        expiry_time: Some("2024-01-01T12:01:00+08:00"),
        merchant: &Merchant {
            settlement_currency: Some("USD".into()),
            ..merchant.clone()
        },
        goods: &[],
    });
    let a: Value = serde_json::from_str(&agreement).unwrap();
    assert!(
        a["order"].get("goods").is_none(),
        "no goods, no order.goods"
    );
    // The basket's goods go into order.goods, amounts as everywhere in AMS.
    let goods = [crate::money::basket::Goods {
        id: "A1".into(),
        name: "Latte".into(),
        quantity: 2,
        price: Amount::from_minor(350, Currency::from_code("USD").unwrap()),
        category: Some("coffee".into()),
    }];
    let with_goods: Value = serde_json::from_str(&pay_body(&PayBody {
        request_id: "r",
        source: PaymentSource::PaymentCode("281234567890123456"),
        amount: Amount::from_minor(700, Currency::from_code("USD").unwrap()),
        description: "x",
        terminal_id: "T",
        request_time: "t",
        expiry_time: None,
        merchant: &merchant,
        goods: &goods,
    }))
    .unwrap();
    assert_eq!(
        with_goods["order"]["goods"],
        json!([{"referenceGoodsId": "A1", "goodsName": "Latte", "goodsCategory": "coffee",
                "goodsUnitAmount": {"currency": "USD", "value": "350"}, "goodsQuantity": "2"}])
    );
    assert_eq!(a["productCode"], "AGREEMENT_PAYMENT");
    assert_eq!(a["paymentMethod"]["paymentMethodType"], "GCASH");
    assert!(a.get("paymentFactor").is_none());
    assert_eq!(a["settlementStrategy"]["settlementCurrency"], "USD");
    assert_eq!(a["paymentExpiryTime"], "2024-01-01T12:01:00+08:00");
}

#[test]
fn every_pay_names_a_settlement_currency_the_configured_one_or_the_payments() {
    let merchant = |settlement: Option<&str>| Merchant {
        reference_merchant_id: "M0001".into(),
        merchant_name: "Demo Cafe".into(),
        merchant_mcc: "5812".into(),
        reference_store_id: "S0001".into(),
        store_name: "Demo Cafe Main St".into(),
        merchant_region: None,
        settlement_currency: settlement.map(str::to_string),
        payment_notify_url: None,
    };
    let sources = [
        (
            "CONNECT_WALLET",
            PaymentSource::PaymentCode("281234567890123456"),
        ),
        (
            "GCASH",
            PaymentSource::Agreement {
                wallet: "GCASH",
                access_token: "tok",
            },
        ),
    ];
    for (method, source) in sources {
        for (configured, sent) in [(Some("USD"), "USD"), (None, "SGD")] {
            let m = merchant(configured);
            let body = pay_body(&PayBody {
                request_id: "r",
                source: source.clone(),
                amount: Amount::from_minor(1050, Currency::from_code("SGD").unwrap()),
                description: "x",
                terminal_id: "T",
                request_time: "t",
                expiry_time: None,
                merchant: &m,
                goods: &[],
            });
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["paymentMethod"]["paymentMethodType"], method);
            assert_eq!(
                body["settlementStrategy"],
                json!({"settlementCurrency": sent}),
                "{method}, configured {configured:?}"
            );
        }
    }
}

#[test]
fn amounts_are_minor_units_per_currency() {
    for (code, minor, text) in [
        ("CNY", 1250, "1250"),
        ("USD", 1231, "1231"),
        ("JPY", 500, "500"),
        ("KWD", 1234, "1234"),
    ] {
        let a = Amount::from_minor(minor, Currency::from_code(code).unwrap());
        let j = amount_json(&a);
        assert_eq!(j["value"], text);
        assert_eq!(j["currency"], code);
        assert_eq!(parse_amount(&j), Some(a));
    }
    assert_eq!(
        parse_amount(&json!({"currency": "USD", "value": "12.31"})),
        None
    );
    assert_eq!(
        parse_amount(&json!({"currency": "USD", "value": 1231})),
        None
    );
    assert_eq!(
        parse_amount(&json!({"currency": "XYZ", "value": "1"})),
        None
    );
    assert_eq!(
        parse_amount(&json!({"currency": "USD", "value": "-1"})),
        None
    );
}

fn res(status: &str, code: &str) -> Value {
    json!({"result": {"resultStatus": status, "resultCode": code, "resultMessage": "m"}})
}

fn kind<T>(o: Outcome<T>) -> String {
    match o {
        Outcome::Success(_) => "success".into(),
        Outcome::Failed(f) => format!("failed:{}", f.code),
        Outcome::Unknown(u) => format!("unknown:{}", u.kind.as_str()),
        Outcome::NotSent(_) => "not_sent".into(),
        Outcome::Rejected(f) => format!("rejected:{}", f.code),
    }
}

#[test]
fn pay_result_codes_map_to_the_documented_action() {
    let mut paid = res("S", "SUCCESS");
    paid["paymentId"] = json!("2024");
    paid["paymentRequestId"] = json!("R");
    paid["paymentAmount"] = json!({"currency": "USD", "value": "1231"});
    let Outcome::Success(p) = pay_outcome(&paid, "R") else {
        panic!()
    };
    assert_eq!(p.amount.unwrap().minor(), 1231);
    assert_eq!(kind(pay_outcome(&paid, "OTHER")), "unknown:answer_mismatch");

    let unknowns = [
        ("U", "PAYMENT_IN_PROCESS", "unknown:buyer_confirming"),
        ("U", "UNKNOWN_EXCEPTION", "unknown:provider_unsure"),
        (
            "U",
            "REQUEST_TRAFFIC_EXCEED_LIMIT",
            "unknown:provider_unsure",
        ),
        ("F", "PROCESS_FAIL", "unknown:provider_unsure"),
        ("F", "SYSTEM_ERROR", "unknown:provider_unsure"),
        ("F", "REPEAT_REQ_INCONSISTENT", "unknown:answer_mismatch"),
        ("X", "SUCCESS", "unknown:malformed_answer"),
    ];
    for (status, code, expected) in unknowns {
        assert_eq!(
            kind(pay_outcome(&res(status, code), "R")),
            expected,
            "{code}"
        );
    }
    // Refused at the door: nothing processed, the credentials or the API are wrong.
    let door = [
        "ACCESS_DENIED",
        "CLIENT_INVALID",
        "INVALID_API",
        "NO_INTERFACE_DEF",
        "METHOD_NOT_SUPPORTED",
        "MEDIA_TYPE_NOT_ACCEPTABLE",
        "INVALID_SIGNATURE",
        "KEY_NOT_FOUND",
    ];
    for code in door {
        let Outcome::Rejected(f) = pay_outcome(&res("F", code), "R") else {
            panic!("{code}")
        };
        assert_eq!(f.code, code);
        assert!(refused_at_door(code));
    }
    let failures = [
        "INVALID_CONTRACT",
        "INVALID_MERCHANT_STATUS",
        "MERCHANT_KYB_NOT_QUALIFIED",
        "MERCHANT_NOT_REGISTERED",
        "PAYMENT_NOT_QUALIFIED",
        "SETTLE_CONTRACT_NOT_MATCH",
        "CURRENCY_NOT_SUPPORT",
        "NO_PAY_OPTIONS",
        "PARAM_ILLEGAL",
        "EXPIRED_CODE",
        "INVALID_PAYMENT_CODE",
        "USER_BALANCE_NOT_ENOUGH",
        "USER_AMOUNT_EXCEED_LIMIT",
        "PAYMENT_AMOUNT_EXCEED_LIMIT",
        "PAYMENT_COUNT_EXCEED_LIMIT",
        "USER_NOT_EXIST",
        "USER_STATUS_ABNORMAL",
        "USER_KYC_NOT_QUALIFIED",
        "USER_PAYMENT_VERIFICATION_FAILED",
        "VERIFY_TIMES_EXCEED_LIMIT",
        "VERIFY_UNMATCHED",
        "RISK_REJECT",
        "INVALID_ACCESS_TOKEN",
        "INVALID_PAYMENT_METHOD_META_DATA",
        "ORDER_IS_CANCELED",
        "ORDER_IS_CLOSED",
    ];
    let generic = cashier_message("SOMETHING_NEW");
    for code in failures {
        let Outcome::Failed(f) = pay_outcome(&res("F", code), "R") else {
            panic!("{code}")
        };
        assert_eq!(f.code, code);
        assert_ne!(f.cashier, generic, "{code} has its own cashier message");
    }
    assert!(is_throttled(&res("U", "REQUEST_TRAFFIC_EXCEED_LIMIT")));
    assert!(!is_throttled(&res("U", "UNKNOWN_EXCEPTION")));
    assert_eq!(
        kind(pay_outcome(&json!({"no": "result"}), "R")),
        "unknown:malformed_answer"
    );
}

#[test]
fn inquiry_payment_status_maps_to_trade_states() {
    let with = |status: &str| {
        let mut b = res("S", "SUCCESS");
        b["paymentStatus"] = json!(status);
        b["paymentId"] = json!("P1");
        b
    };
    assert!(matches!(
        inquiry_outcome(&with("SUCCESS"), "R"),
        Outcome::Success(TradeStatus::Paid(_))
    ));
    assert_eq!(
        inquiry_outcome(&with("PROCESSING"), "R"),
        Outcome::Success(TradeStatus::Waiting)
    );
    assert_eq!(
        inquiry_outcome(&with("PENDING"), "R"),
        Outcome::Success(TradeStatus::Waiting)
    );
    assert!(matches!(
        inquiry_outcome(&with("FAIL"), "R"),
        Outcome::Success(TradeStatus::Closed(_))
    ));
    assert!(matches!(
        inquiry_outcome(&with("CANCELLED"), "R"),
        Outcome::Success(TradeStatus::Closed(_))
    ));
    assert!(matches!(
        inquiry_outcome(&with("NEW"), "R"),
        Outcome::Unknown(_)
    ));
    assert_eq!(
        inquiry_outcome(&res("F", "ORDER_NOT_EXIST"), "R"),
        Outcome::Success(TradeStatus::NotFound)
    );
    assert!(matches!(
        inquiry_outcome(&res("U", "UNKNOWN_EXCEPTION"), "R"),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        inquiry_outcome(&res("F", "CLIENT_INVALID"), "R"),
        Outcome::Rejected(_)
    ));
    // Paid, then cancelled: the payment time says it was paid.
    let mut reversed = res("S", "SUCCESS");
    reversed["paymentStatus"] = json!("CANCELLED");
    reversed["paymentId"] = json!("P1");
    reversed["paymentTime"] = json!("2026-12-02T10:00:00+08:00");
    assert!(matches!(
        inquiry_outcome(&reversed, "R"),
        Outcome::Success(TradeStatus::Reversed(_))
    ));
    reversed.as_object_mut().map(|o| o.remove("paymentTime"));
    assert!(matches!(
        inquiry_outcome(&reversed, "R"),
        Outcome::Success(TradeStatus::Closed(_))
    ));
}

#[test]
fn cancel_and_refund_results() {
    // Accepted: whether it closed or refunded is asked after it (the client does that).
    assert_eq!(
        cancel_outcome(&res("S", "SUCCESS")),
        Outcome::Success(Cancelled::Closed)
    );
    assert!(matches!(
        cancel_outcome(&res("U", "UNKNOWN_EXCEPTION")),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        cancel_outcome(&res("F", "CANCEL_WINDOW_EXCEED")),
        Outcome::Failed(_)
    ));
    assert_eq!(
        cancel_outcome(&res("F", "ORDER_NOT_EXIST")),
        Outcome::Success(Cancelled::NotCreated {
            code: "ORDER_NOT_EXIST"
        })
    );
    assert!(matches!(
        cancel_outcome(&res("F", "CLIENT_INVALID")),
        Outcome::Rejected(_)
    ));
    assert!(matches!(
        refund_outcome(&res("S", "SUCCESS")),
        Outcome::Success(_)
    ));
    assert!(matches!(
        refund_outcome(&res("U", "UNKNOWN_EXCEPTION")),
        Outcome::Unknown(_)
    ));
    let mut done = res("S", "SUCCESS");
    done["refundStatus"] = json!("SUCCESS");
    assert_eq!(inquiry_refund_outcome(&done), Outcome::Success(true));
}

#[test]
fn sandbox_client_ids_use_the_sandbox_path() {
    assert_eq!(
        request_path("SANDBOX_X", PAY_PATH),
        "/ams/sandbox/api/v1/payments/pay"
    );
    assert_eq!(request_path("5Y0566", PAY_PATH), PAY_PATH);
}

#[test]
fn response_times_read_in_both_forms_the_sdks_send() {
    let ms = parse_time("1704081602345").unwrap();
    assert_eq!(ms.timestamp_millis(), 1_704_081_602_345);
    let iso = parse_time("2024-01-01T12:00:02+08:00").unwrap();
    assert_eq!(iso.timestamp(), 1_704_081_602);
    assert_eq!(parse_time(""), None);
    assert_eq!(parse_time("yesterday"), None);
}
