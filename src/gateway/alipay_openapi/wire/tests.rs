use super::*;
use crate::gateway::keys::{PrivateKey, PublicKey};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/vectors/protocol-test-vectors.json"
    ))
    .unwrap()
}

fn params(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn trade_pay_signing_string_and_signature_are_byte_exact() {
    let v = vectors();
    let case = &v["computed_openapi_trade_pay_request"];
    let p = params(&case["params"]);
    let content = sign_content(&p);
    assert_eq!(content, case["sign_string"].as_str().unwrap());
    let key = PrivateKey::parse(
        v["computed_keypair"]["private_pkcs1_der_b64"]
            .as_str()
            .unwrap(),
        "vector",
    )
    .unwrap();
    assert_eq!(
        key.sign_sha256_base64(content.as_bytes()),
        case["sign"].as_str().unwrap()
    );
}

#[test]
fn official_sdk_request_signatures_verify() {
    let v = vectors();
    let official = &v["openapi_request_sign_official"];
    let public =
        PublicKey::parse(official["public_key_spki_b64"].as_str().unwrap(), "sdk").unwrap();
    let mut checked = 0;
    for case in official["cases"].as_array().unwrap() {
        if case["sign_type"] != "RSA2" {
            continue; // SHA-1 `RSA` is legacy and not used by scanpay
        }
        let content = sign_content(&params(&case["params"]));
        assert_eq!(
            content,
            case["sign_string"].as_str().unwrap(),
            "sorted, raw, sign_type kept"
        );
        assert!(public.verify_sha256_base64(content.as_bytes(), case["sign"].as_str().unwrap()));
        checked += 1;
    }
    assert_eq!(checked, 2, "both RSA2 cases, including the UTF-8 one");
}

#[test]
fn sign_and_empty_values_are_left_out() {
    let mut p = BTreeMap::new();
    p.insert("b".to_string(), "2".to_string());
    p.insert("a".to_string(), "1".to_string());
    p.insert("sign".to_string(), "xyz".to_string());
    p.insert("empty".to_string(), String::new());
    p.insert("sign_type".to_string(), "RSA2".to_string());
    assert_eq!(sign_content(&p), "a=1&b=2&sign_type=RSA2");
}

#[test]
fn official_response_verifies_over_the_raw_node_text() {
    let v = vectors();
    let case = &v["openapi_response_verify_official"];
    let body = case["raw_body"].as_str().unwrap();
    let content =
        extract_signed_content(body, &response_node(case["method"].as_str().unwrap())).unwrap();
    assert_eq!(content, case["expected_signed_content"].as_str().unwrap());
    let public =
        PublicKey::parse(case["alipay_public_key_spki_b64"].as_str().unwrap(), "sdk").unwrap();
    let sign = root_sign(body).unwrap();
    assert!(public.verify_sha256_base64(content.as_bytes(), &sign));
    // One changed byte in the node and it no longer verifies.
    let tampered = body.replace("CAxAToWB1Js", "CAxAToWB1Jt");
    let content = extract_signed_content(&tampered, "alipay_open_file_upload_response").unwrap();
    assert!(!public.verify_sha256_base64(content.as_bytes(), &sign));
}

#[test]
fn extraction_matches_the_official_cases() {
    let v = vectors();
    let case = &v["openapi_extraction_official"];
    let node = response_node(case["method"].as_str().unwrap());
    for c in case["cases"].as_array().unwrap() {
        let result = extract_signed_content(c["raw_body"].as_str().unwrap(), &node);
        match c["expected_signed_content"].as_str() {
            Some(expected) => assert_eq!(result.unwrap(), expected),
            None => assert_eq!(result, Err(ExtractError::Duplicate(node.clone()))),
        }
    }
}

#[test]
fn extraction_handles_strings_escapes_and_broken_bodies() {
    let body = r#"{"a_response":{"msg":"brace } and \"quote\" and \\","x":{"y":1}},"sign":"s"}"#;
    assert_eq!(
        extract_signed_content(body, "a_response").unwrap(),
        r#"{"msg":"brace } and \"quote\" and \\","x":{"y":1}}"#
    );
    assert!(matches!(
        extract_signed_content("<html>502</html>", "a_response"),
        Err(ExtractError::Missing(_))
    ));
    assert!(matches!(
        extract_signed_content(r#"{"a_response":{"code":"10"#, "a_response"),
        Err(ExtractError::Unterminated(_))
    ));
    assert!(matches!(
        extract_signed_content(r#"{"a_response":"enc"}"#, "a_response"),
        Err(ExtractError::NotObject(_))
    ));
    assert!(matches!(
        extract_signed_content(r#"{"a_response""#, "a_response"),
        Err(ExtractError::NotObject(_))
    ));
    assert_eq!(
        extract_signed_content("{\"a_response\" : {}}", "a_response").unwrap(),
        "{}"
    );
    // Non-ASCII inside strings is kept byte for byte.
    assert_eq!(
        extract_signed_content("{\"a_response\":{\"m\":\"中文}\"}}", "a_response").unwrap(),
        "{\"m\":\"中文}\"}"
    );
}

fn node(json: &str) -> Node {
    parse_node(json).unwrap()
}

#[test]
fn pay_codes_map_to_the_documented_action() {
    let rid = "T1_1";
    let paid = node(
        r#"{"code":"10000","msg":"Success","trade_no":"2024","out_trade_no":"T1_1","total_amount":"88.88"}"#,
    );
    let Outcome::Success(p) = pay_outcome(&paid, rid) else {
        panic!()
    };
    assert_eq!(p.amount.unwrap().minor(), 8888);
    let numeric = node(r#"{"code":"10000","msg":"Success","trade_no":"2024","total_amount":88.8}"#);
    let Outcome::Success(p) = pay_outcome(&numeric, rid) else {
        panic!()
    };
    assert_eq!(p.amount.unwrap().minor(), 8880);

    let table: &[(&str, &str)] = &[
        (
            r#"{"code":"10003","msg":" order success pay inprocess"}"#,
            "unknown:buyer_confirming",
        ),
        (
            r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#,
            "unknown:provider_unsure",
        ),
        (
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR"}"#,
            "unknown:provider_unsure",
        ),
        (
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS"}"#,
            "unknown:provider_unsure",
        ),
        (
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.PAYMENT_AUTH_CODE_INVALID"}"#,
            "failed:ACQ.PAYMENT_AUTH_CODE_INVALID",
        ),
        (
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.BUYER_BALANCE_NOT_ENOUGH"}"#,
            "failed:ACQ.BUYER_BALANCE_NOT_ENOUGH",
        ),
        (
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TOTAL_FEE_EXCEED"}"#,
            "failed:ACQ.TOTAL_FEE_EXCEED",
        ),
        (
            r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}"#,
            "rejected:isv.invalid-signature",
        ),
        (
            r#"{"code":"40001","msg":"Missing Required Arguments","sub_code":"isv.missing-app-id"}"#,
            "rejected:isv.missing-app-id",
        ),
        (
            r#"{"code":"40006","msg":"Insufficient Permissions","sub_code":"isv.insufficient-isv-permissions"}"#,
            "rejected:isv.insufficient-isv-permissions",
        ),
        (
            r#"{"code":"20001","msg":"Insufficient Token Permissions","sub_code":"aop.invalid-auth-token"}"#,
            "rejected:aop.invalid-auth-token",
        ),
        (
            r#"{"code":"10000","msg":"Success"}"#,
            "unknown:malformed_answer",
        ),
        (
            r#"{"code":"10000","msg":"Success","trade_no":"1","out_trade_no":"OTHER"}"#,
            "unknown:answer_mismatch",
        ),
        (r#"{"code":"99999","msg":"?"}"#, "unknown:malformed_answer"),
    ];
    for (json, expected) in table {
        let got = match pay_outcome(&node(json), rid) {
            Outcome::Success(_) => "success".to_string(),
            Outcome::Failed(f) => format!("failed:{}", f.code),
            Outcome::Unknown(u) => format!("unknown:{}", u.kind.as_str()),
            Outcome::NotSent(_) => "not_sent".to_string(),
            Outcome::Rejected(f) => format!("rejected:{}", f.code),
        };
        assert_eq!(&got, expected, "{json}");
    }
    let Outcome::Failed(f) = pay_outcome(&node(table[4].0), rid) else {
        panic!()
    };
    assert!(f.cashier.contains("refresh the code"), "{}", f.cashier);
}

#[test]
fn query_statuses_map_to_trade_states() {
    let rid = "R";
    let status = |json: &str| query_outcome(&node(json), rid);
    assert!(matches!(
        status(
            r#"{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","trade_no":"1","total_amount":"1.00"}"#
        ),
        Outcome::Success(TradeStatus::Paid(_))
    ));
    assert!(matches!(
        status(
            r#"{"code":"10000","msg":"Success","trade_status":"TRADE_FINISHED","trade_no":"1"}"#
        ),
        Outcome::Success(TradeStatus::Paid(_))
    ));
    assert_eq!(
        status(r#"{"code":"10000","msg":"Success","trade_status":"WAIT_BUYER_PAY"}"#),
        Outcome::Success(TradeStatus::Waiting)
    );
    assert!(matches!(
        status(r#"{"code":"10000","msg":"Success","trade_status":"TRADE_CLOSED"}"#),
        Outcome::Success(TradeStatus::Closed(_))
    ));
    assert_eq!(
        status(r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}"#),
        Outcome::Success(TradeStatus::NotFound)
    );
    assert!(matches!(
        status(r#"{"code":"40004","msg":"x","sub_code":"ACQ.SYSTEM_ERROR"}"#),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        status(r#"{"code":"10000","msg":"Success","trade_status":"WEIRD"}"#),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        status(
            r#"{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","trade_no":"1","out_trade_no":"X"}"#
        ),
        Outcome::Unknown(_)
    ));
}

#[test]
fn cancel_honours_action_and_retry_flag() {
    let c = |json: &str| cancel_outcome(&node(json));
    assert_eq!(
        c(r#"{"code":"10000","msg":"Success","action":"close","retry_flag":"N"}"#),
        Outcome::Success(Cancelled::Closed)
    );
    assert_eq!(
        c(r#"{"code":"10000","msg":"Success","action":"refund","retry_flag":"N"}"#),
        Outcome::Success(Cancelled::Refunded)
    );
    assert_eq!(
        c(r#"{"code":"10000","msg":"Success"}"#),
        Outcome::Success(Cancelled::Closed)
    );
    assert!(matches!(
        c(
            r#"{"code":"40004","msg":"x","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH","retry_flag":"Y"}"#
        ),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        c(r#"{"code":"20000","msg":"x"}"#),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        c(r#"{"code":"40004","msg":"x","sub_code":"ACQ.SYSTEM_ERROR"}"#),
        Outcome::Unknown(_)
    ));
    let Outcome::Failed(f) =
        c(r#"{"code":"40004","msg":"x","sub_code":"ACQ.TRADE_CANCEL_TIME_OUT","retry_flag":"N"}"#)
    else {
        panic!()
    };
    assert_eq!(f.code, "ACQ.TRADE_CANCEL_TIME_OUT");
}

#[test]
fn refund_and_refund_query_map() {
    assert!(matches!(
        refund_outcome(&node(
            r#"{"code":"10000","msg":"Success","fund_change":"Y"}"#
        )),
        Outcome::Success(_)
    ));
    assert!(matches!(
        refund_outcome(&node(r#"{"code":"20000","msg":"x"}"#)),
        Outcome::Unknown(_)
    ));
    assert!(matches!(
        refund_outcome(&node(
            r#"{"code":"40004","msg":"x","sub_code":"ACQ.TRADE_STATUS_ERROR"}"#
        )),
        Outcome::Failed(_)
    ));
    assert_eq!(
        refund_query_outcome(&node(
            r#"{"code":"10000","msg":"Success","refund_status":"REFUND_SUCCESS"}"#
        )),
        Outcome::Success(true)
    );
    assert_eq!(
        refund_query_outcome(&node(r#"{"code":"10000","msg":"Success"}"#)),
        Outcome::Success(false)
    );
}

#[test]
fn every_documented_pay_sub_code_is_a_definite_failure_with_a_specific_message() {
    // docs/protocol.md §5.1, every sub-code except the two that mean "query first".
    let failures = [
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        "ACQ.PULL_MOBILE_CASHIER_FAIL",
        "ACQ.PAYMENT_FAIL",
        "ACQ.CONTEXT_INCONSISTENT",
        "ACQ.TRADE_HAS_CLOSE",
        "ACQ.TRADE_BUYER_NOT_MATCH",
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
        "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
        "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
        "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
        "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
        "ACQ.BUYER_SELLER_EQUAL",
        "ACQ.PAYMENT_REQUEST_HAS_RISK",
        "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
        "ACQ.ACCESS_FORBIDDEN",
        "ACQ.PARTNER_ERROR",
        "ACQ.SELLER_BEEN_BLOCKED",
        "ACQ.BEYOND_PAY_RESTRICTION",
        "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
        "ACQ.INVALID_PARAMETER",
        "ACQ.EXIST_FORBIDDEN_WORD",
        "ACQ.TOTAL_FEE_EXCEED",
        "ACQ.INVALID_STORE_ID",
    ];
    let generic = cashier_message("40004", "ACQ.SOMETHING_NEW");
    for sub in failures {
        let json = format!(
            r#"{{"code":"40004","msg":"Business Failed","sub_code":"{sub}","sub_msg":"x"}}"#
        );
        let Outcome::Failed(f) = pay_outcome(&node(&json), "R") else {
            panic!("{sub}")
        };
        assert_eq!(f.code, sub);
        assert_ne!(f.cashier, generic, "{sub} has its own cashier message");
    }
    for sub in ["ACQ.SYSTEM_ERROR", "ACQ.TRADE_HAS_SUCCESS"] {
        let json = format!(r#"{{"code":"40004","msg":"Business Failed","sub_code":"{sub}"}}"#);
        assert!(
            matches!(pay_outcome(&node(&json), "R"), Outcome::Unknown(_)),
            "{sub}: query first"
        );
    }
    // A bare 20000 carrying ACQ.SYSTEM_ERROR (as the Java SDK fabricates) is unknown too.
    let json = r#"{"code":"20000","msg":"x","sub_code":"ACQ.SYSTEM_ERROR"}"#;
    assert!(matches!(pay_outcome(&node(json), "R"), Outcome::Unknown(_)));
}

/// Every documented spelling of a system error, under every code it comes with, is "unknown"
/// for every method: a charged customer must never be reported "not paid".
#[test]
fn a_system_error_is_never_a_definite_failure_whatever_its_spelling() {
    let spellings = [
        ("40004", "ACQ.SYSTEM_ERROR"),
        ("40004", "aop.ACQ.SYSTEM_ERROR"),
        ("20000", "ACQ.SYSTEM_ERROR"),
        ("20000", "aop.ACQ.SYSTEM_ERROR"),
        ("20000", "isp.unknow-error"),
        ("20000", "aop.unknow-error"),
        ("40004", "isp.unknow-error"),
    ];
    for (code, sub) in spellings {
        let json = format!(
            r#"{{"code":"{code}","msg":"Business Failed","sub_code":"{sub}","sub_msg":"系统错误"}}"#
        );
        let n = node(&json);
        let what = format!("{code} {sub}");
        assert!(
            matches!(pay_outcome(&n, "R"), Outcome::Unknown(u) if u.kind == UnknownKind::ProviderUnsure),
            "pay {what}"
        );
        assert!(
            matches!(query_outcome(&n, "R"), Outcome::Unknown(_)),
            "query {what}"
        );
        assert!(
            matches!(cancel_outcome(&n), Outcome::Unknown(_)),
            "cancel {what}"
        );
        assert!(
            matches!(refund_outcome(&n), Outcome::Unknown(_)),
            "refund {what}"
        );
        assert!(
            matches!(refund_query_outcome(&n), Outcome::Unknown(_)),
            "refund query {what}"
        );
    }
}

#[test]
fn codes_match_with_or_without_the_aop_prefix() {
    let n =
        node(r#"{"code":"40004","msg":"Business Failed","sub_code":"aop.ACQ.TRADE_NOT_EXIST"}"#);
    assert_eq!(
        query_outcome(&n, "R"),
        Outcome::Success(TradeStatus::NotFound)
    );
    assert!(matches!(
        cancel_outcome(&n),
        Outcome::Success(Cancelled::NotCreated { .. })
    ));
    let n = node(
        r#"{"code":"40004","msg":"Business Failed","sub_code":"aop.ACQ.PAYMENT_AUTH_CODE_INVALID"}"#,
    );
    let Outcome::Failed(f) = pay_outcome(&n, "R") else {
        panic!("a definite failure")
    };
    assert!(f.cashier.contains("refresh the code"), "{}", f.cashier);
    let n =
        node(r#"{"code":"40004","msg":"Business Failed","sub_code":"aop.ACQ.TRADE_HAS_SUCCESS"}"#);
    assert!(matches!(pay_outcome(&n, "R"), Outcome::Unknown(_)));
}

#[test]
fn a_cancel_of_a_trade_never_created_says_not_created_not_refused() {
    let n = node(
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","retry_flag":"N"}"#,
    );
    assert_eq!(
        cancel_outcome(&n),
        Outcome::Success(Cancelled::NotCreated {
            code: "ACQ.TRADE_NOT_EXIST"
        })
    );
}

#[test]
fn what_moved_is_read_strictly_and_a_bad_amount_is_left_out() {
    let answer = node(
        r#"{"code":"10000","msg":"Success","trade_no":"2024","out_trade_no":"T1_1","total_amount":"10.00",
            "receipt_amount":"8.00","buyer_pay_amount":"8.00","point_amount":"0.00","invoice_amount":"8.00",
            "fund_bill_list":[{"fund_channel":"ALIPAYACCOUNT","amount":"8.00"},{"fund_channel":"MDISCOUNT","amount":"2.00"}],
            "voucher_detail_list":[{"id":"V1","name":"满减","type":"ALIPAY_FIX_VOUCHER","amount":"2.00",
                "merchant_contribute":"2.00","other_contribute":"0.00"}]}"#,
    );
    let Outcome::Success(p) = pay_outcome(&answer, "T1_1") else {
        panic!()
    };
    let m = p.money;
    assert_eq!(m.received.unwrap().minor(), 800);
    assert_eq!(m.buyer_paid.unwrap().minor(), 800);
    assert_eq!(m.invoice.unwrap().minor(), 800);
    assert_eq!(m.funds.len(), 2);
    assert_eq!(m.funds[1].channel, "MDISCOUNT");
    assert_eq!(m.vouchers[0].merchant.unwrap().minor(), 200);
    assert_eq!(m.merchant_discount_minor(), 200);
    assert_eq!(m.platform_discount_minor(), 0);

    // Bad amounts, a list as JSON text (as notifications carry it), a list that is neither.
    let odd = node(
        r#"{"code":"10000","msg":"Success","trade_no":"2024","total_amount":"10.00",
            "receipt_amount":"8.001","buyer_pay_amount":"-8.00","point_amount":{"x":1},
            "fund_bill_list":"[{\"fundChannel\":\"ALIPAYACCOUNT\",\"amount\":\"0.10\"},{\"fundChannel\":\"X\",\"amount\":\"1e3\"}]",
            "voucher_detail_list":{"id":"V1"}}"#,
    );
    let Outcome::Success(p) = pay_outcome(&odd, "T1_1") else {
        panic!()
    };
    let m = p.money;
    assert_eq!((m.received, m.buyer_paid, m.points), (None, None, None));
    assert_eq!(
        m.funds.len(),
        1,
        "the entry whose amount does not parse is left out"
    );
    assert_eq!(m.funds[0].amount.minor(), 10);
    assert!(m.vouchers.is_empty());
}

#[test]
fn campaign_fields_are_written_in_the_platforms_names_and_read_back() {
    use crate::money::basket::{Basket, Goods};
    let cny = |m| Amount::from_minor(m, Currency::from_code("CNY").unwrap());
    let basket = Basket {
        undiscountable: Some(cny(200)),
        discountable: Some(cny(800)),
        goods: vec![Goods {
            id: "A1".into(),
            name: "拿铁".into(),
            quantity: 2,
            price: cny(500),
            category: Some("coffee".into()),
        }],
        operator_id: Some("C01".into()),
        operator_name: Some("not sent".into()),
    };
    let mut biz = serde_json::json!({"out_trade_no": "T1_1"});
    basket_fields(&mut biz, &basket);
    assert_eq!(biz["undiscountable_amount"], "2.00");
    assert_eq!(biz["discountable_amount"], "8.00");
    assert_eq!(biz["goods_detail"][0]["price"], "5.00");
    assert_eq!(biz["goods_detail"][0]["quantity"], 2);
    assert_eq!(biz["operator_id"], "C01");
    assert!(
        !biz.to_string().contains("not sent"),
        "the name is printed, never sent"
    );
    let read = read_basket(&biz).unwrap();
    assert_eq!(
        read,
        Basket {
            operator_name: None,
            ..basket
        }
    );
    let mut plain = serde_json::json!({});
    basket_fields(&mut plain, &Basket::default());
    assert_eq!(plain, serde_json::json!({}));
    biz["goods_detail"][0]["price"] = serde_json::json!("5.001");
    assert_eq!(read_basket(&biz).unwrap_err(), "goods_detail[0].price");
}
