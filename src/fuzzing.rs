//! Entry points for the fuzzers (`fuzz/`) and for the corpus replay in `tests/fuzz.rs`: each
//! takes arbitrary bytes, drives one parser of outside input the way scanpay does, and must
//! return without panicking, whatever the bytes. The first byte or two choose a parser's
//! settings, so one corpus covers them all.

use std::time::{Duration, Instant};

use crate::device::frame::{FrameConfig, Framer, Terminator};
use crate::device::hidpos::HidPosDecoder;
use crate::device::keyboard::{KeyboardDecoder, Layout};
use crate::gateway::{alipay_ams, alipay_openapi};
use crate::money::Currency;

/// A serial scanner's byte stream, cut into reads: terminator, AIM stripping, prefix and
/// suffix from the first byte, read sizes and idle gaps from the data itself.
pub fn scanner_serial(data: &[u8]) {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let terminator = [
        Terminator::Cr,
        Terminator::Lf,
        Terminator::CrLf,
        Terminator::None,
    ][usize::from(setup & 3)];
    let config = FrameConfig {
        terminator,
        idle: Duration::from_millis(50),
        prefix: if setup & 4 != 0 {
            b"\x02".to_vec()
        } else {
            Vec::new()
        },
        suffix: if setup & 8 != 0 {
            b"\x03".to_vec()
        } else {
            Vec::new()
        },
        strip_aim: setup & 16 != 0,
    };
    let mut framer = Framer::new(config);
    let start = Instant::now();
    let mut at = Duration::ZERO;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len % 64).min(tail.len());
        let (read, next) = tail.split_at(n);
        for frame in framer.push(read, start + at) {
            recognise(&frame);
        }
        // Some reads come after a pause long enough to end a scan.
        at += Duration::from_millis(u64::from(len / 64) * 30);
        if let Some(frame) = framer.tick(start + at) {
            recognise(&frame);
        }
        rest = next;
    }
    if let Some(frame) = framer.tick(start + at + Duration::from_secs(1)) {
        recognise(&frame);
    }
}

fn recognise(frame: &crate::device::frame::Frame) {
    if let crate::device::frame::Frame::Scan { text, .. } = frame {
        let _ = crate::paycode::recognise(text);
        let _ = crate::paycode::mask_long_digit_runs(text);
        let _ = crate::paycode::mask_payment_codes(text);
    }
}

/// HID reports: boot-keyboard reports of 8 or 9 bytes (layout, Tab and report ID from the
/// first byte) into the serial framer, and the same bytes as HID POS reports.
pub fn scanner_hid(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let layout = if setup & 1 == 0 {
        Layout::Us
    } else {
        Layout::De
    };
    let mut keyboard = KeyboardDecoder::new(layout, setup & 2 != 0);
    let mut framer = Framer::new(FrameConfig::default());
    let now = Instant::now();
    let report_len = if setup & 4 == 0 { 8 } else { 9 };
    for report in rest.chunks(report_len) {
        let text = keyboard.report(report);
        for frame in framer.push(&text, now) {
            recognise(&frame);
        }
    }
    let mut pos = HidPosDecoder::new();
    let mut rest = rest;
    while let Some((&len, tail)) = rest.split_first() {
        let (report, next) = tail.split_at(usize::from(len).min(tail.len()));
        if let Some(frame) = pos.report(report) {
            recognise(&frame);
        }
        rest = next;
    }
}

/// An Open Platform answer body, as if its signature had verified: the signed node found,
/// parsed, and read as the answer to each method.
/// An Alipay certificate file or a downloaded certificate (certificate mode,
/// docs/protocol.md §3.4): the PEM blocks read, each certificate's SN, names, validity and
/// key, the root SN, and a chain check of the file against itself.
pub fn alipay_cert(data: &[u8]) {
    use alipay_openapi::cert;
    let text = String::from_utf8_lossy(data);
    let Ok(certs) = cert::read_pem(&text, "fuzz") else {
        return;
    };
    for c in &certs {
        let _ = cert::cert_sn(c);
        let _ = cert::subject_dn(c);
        let _ = cert::public_key(c, "fuzz");
        let _ = cert::check_validity(c, chrono::Utc::now());
    }
    let _ = cert::root_cert_sn(&certs);
    let _ = cert::verify_chain(&certs, &certs, chrono::Utc::now());
}

pub fn openapi_response(data: &[u8]) {
    use alipay_openapi::wire;
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let _ = wire::root_sign(body);
    for method in [
        "alipay.trade.pay",
        "alipay.trade.query",
        "alipay.trade.cancel",
        "alipay.trade.refund",
        "alipay.trade.fastpay.refund.query",
    ] {
        let node_name = wire::response_node(method);
        let content = match wire::extract_signed_content(body, &node_name) {
            Ok(c) => c,
            Err(_) => match wire::extract_signed_content(body, "error_response") {
                Ok(c) => c,
                Err(_) => continue,
            },
        };
        let Ok(node) = wire::parse_node(content) else {
            continue;
        };
        let _ = wire::pay_outcome(&node, "T1_req");
        let _ = wire::query_outcome(&node, "T1_req");
        let _ = wire::cancel_outcome(&node);
        let _ = wire::refund_outcome(&node);
        let _ = wire::refund_query_outcome(&node);
    }
}

/// An AMS answer: the `Signature` header (up to the first newline) and the JSON body, as if
/// it had verified, read as the answer to each call.
pub fn ams_response(data: &[u8]) {
    use alipay_ams::wire;
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if let Ok(h) = std::str::from_utf8(header) {
        let _ = wire::parse_signature_header(h);
    }
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let _ = wire::result_of(&answer);
    let _ = wire::is_throttled(&answer);
    let _ = wire::pay_outcome(&answer, "T1_req");
    let _ = wire::inquiry_outcome(&answer, "T1_req");
    let _ = wire::cancel_outcome(&answer);
    let _ = wire::refund_outcome(&answer);
    let _ = wire::inquiry_refund_outcome(&answer);
    if let Some(amount) = answer.get("paymentAmount") {
        let _ = wire::parse_amount(amount);
    }
}

/// A register's request bodies: `POST /v1/sales` and `POST /v1/sales/{id}/refunds` (in a
/// currency chosen by the first byte).
pub fn api_request(data: &[u8]) {
    let Some((&setup, body)) = data.split_first() else {
        return;
    };
    let _ = crate::api::sales::parse_create(body);
    let currency = ["CNY", "JPY", "USD", "KRW"][usize::from(setup & 3)];
    if let Ok(currency) = Currency::from_code(currency) {
        let _ = crate::api::sales::parse_refund(body, currency);
    }
}
