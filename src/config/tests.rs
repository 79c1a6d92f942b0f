//! The configuration's loading and every section's checks, on texts in memory.

use super::validate::check_url;
use super::*;

const GOOD: &str = r#"
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"

[gateway]
kind = "sandbox"

[journal]
path = "journal.sqlite"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml", Path::new("/etc/scanpay"))
}

fn error(text: &str) -> String {
    load(text)
        .expect_err("config should be refused")
        .to_string()
}

#[test]
fn minimal_config_loads_with_defaults() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.terminal.id, "T0001");
    assert_eq!(c.terminal.currency.code(), "CNY");
    assert_eq!(c.terminal.max_amount.minor(), 500_000);
    assert_eq!(c.gateway.kind(), GatewayKind::Sandbox);
    assert_eq!(c.gateway.timeout(), Duration::from_millis(15_000));
    assert_eq!(c.journal.path, Path::new("/etc/scanpay/journal.sqlite"));
    assert_eq!(c.watchdog.sale_deadline, Duration::from_secs(60));
}

#[test]
fn embedded_demo_and_example_configs_load() {
    Config::demo(Path::new("/tmp/x.sqlite")).unwrap();
    let example = include_str!("../../config/scanpay.example.toml");
    Config::from_toml(example, "scanpay.example.toml", Path::new("/")).unwrap();
}

#[test]
fn errors_name_the_key_and_the_file() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "currency = \"CNY\"",
            "currency = \"XYZ\"",
            "[terminal] currency",
        ),
        (
            "max_amount = \"5000.00\"",
            "max_amount = \"50.005\"",
            "[terminal] max_amount",
        ),
        (
            "max_amount = \"5000.00\"",
            "max_amount = \"0\"",
            "[terminal] max_amount",
        ),
        ("id = \"T0001\"", "id = \"T 1\"", "[terminal] id"),
        ("id = \"T0001\"", "", "[terminal] id is missing"),
        (
            "kind = \"sandbox\"",
            "kind = \"sandbox\"\ntimeout_ms = 5",
            "[gateway] timeout_ms",
        ),
        (
            "kind = \"sandbox\"",
            "kind = \"sandbox\"\nurl = \"http://example.com/gateway.do\"",
            "[gateway] url",
        ),
        ("path = \"journal.sqlite\"", "path = \"\"", "[journal] path"),
        (
            "path = \"journal.sqlite\"",
            "path = \"journal.sqlite\"\n[reconcile]\ndaily_at = \"25:00\"",
            "[reconcile] daily_at",
        ),
        (
            "path = \"journal.sqlite\"",
            "path = \"journal.sqlite\"\n[reconcile]\nreport_file = \"r.csv\"",
            "[reconcile] daily_at is missing",
        ),
        (
            "path = \"journal.sqlite\"",
            "path = \"journal.sqlite\"\n[reconcile]\ndaily_at = \"10:30\"\nreport_file = \"r.csv\"",
            "[reconcile] report_file",
        ),
    ];
    for (from, to, expected) in cases {
        let text = GOOD.replace(from, to);
        let message = error(&text);
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
        assert!(message.starts_with("test.toml: "), "{message}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_named() {
    let message = error(&GOOD.replace("currency", "curency"));
    assert!(message.contains("curency"), "{message}");
    let message = error(&GOOD.replace("kind = \"sandbox\"", "kind = \"paypal\""));
    assert!(
        message.contains("paypal") && message.contains("sandbox"),
        "{message}"
    );
    let message = error(&GOOD.replace(
        "kind = \"sandbox\"",
        "kind = \"sandbox\"\ntimeout_ms = \"fast\"",
    ));
    assert!(message.contains("timeout_ms"), "{message}");
    let message = error("[terminal\nid=1");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn scanners_are_checked() {
    let with = |s: &str| format!("{GOOD}\n[[scanner]]\n{s}\n");
    let c = load(&with(
        "kind = \"serial\"\npath = \"/dev/scanpay/scanner-1\"\nbaud = 115200\nterminator = \"cr\"",
    ))
    .unwrap();
    assert_eq!(c.scanners.len(), 1);
    assert_eq!(c.scanners[0].name, "scanner-1");
    assert_eq!(c.scanners[0].serial.baud, 115200);
    let hid = load(&with(
        "kind = \"hid-pos\"\nusb = \"0c2e:0b61\"\nserial_number = \"X1\"",
    ))
    .unwrap();
    assert!(matches!(
        hid.scanners[0].selector,
        crate::device::Selector::Usb {
            vid: 0x0c2e,
            pid: 0x0b61,
            ..
        }
    ));
    for (bad, key) in [
        ("kind = \"laser\"\npath = \"x\"", "[scanner] kind"),
        ("kind = \"serial\"", "[scanner] path"),
        ("kind = \"serial\"\nusb = \"0c2e:0b61\"", "[scanner] usb"),
        ("kind = \"hid-pos\"\nusb = \"nope\"", "[scanner] usb"),
        (
            "kind = \"serial\"\npath = \"x\"\nbaud = 7",
            "[scanner] baud",
        ),
        (
            "kind = \"serial\"\npath = \"x\"\nterminator = \"semicolon\"",
            "[scanner] terminator",
        ),
        (
            "kind = \"hid-keyboard\"\npath = \"x\"\nlayout = \"dvorak\"",
            "[scanner] layout",
        ),
    ] {
        assert!(
            error(&with(bad)).contains(key),
            "{bad}: {}",
            error(&with(bad))
        );
    }
    let twice = format!(
        "{GOOD}\n[[scanner]]\nname = \"a\"\nkind = \"serial\"\npath = \"x\"\n[[scanner]]\nname = \"a\"\nkind = \"serial\"\npath = \"y\"\n"
    );
    assert!(error(&twice).contains("[scanner] name"));
}

#[test]
fn api_keys_are_checked() {
    let with = |api: &str| format!("{GOOD}\n[api]\n{api}\n");
    let c = load(&with("socket = \"api.sock\"")).unwrap();
    let api = c.api.unwrap();
    assert_eq!(api.socket, Path::new("/etc/scanpay/api.sock"));
    assert_eq!(api.socket_mode, 0o660);
    assert!(load(GOOD).unwrap().api.is_none());
    assert!(error(&with("socket_mode = \"0666\"")).contains("[api] socket_mode"));
    assert!(error(&with("tcp = \"0.0.0.0:8089\"")).contains("[api] tcp"));
    assert!(error(&with("tcp = \"0.0.0.0:8089\"\nallow_remote = true")).contains("[api] token"));
    assert!(
        load(&with(
            "tcp = \"0.0.0.0:8089\"\nallow_remote = true\ntoken = \"0123456789abcdef\""
        ))
        .is_ok()
    );
    let short = error(&with("token = \"short\""));
    assert!(
        short.contains("[api] token") && !short.contains("short\""),
        "{short}"
    );
}

#[test]
fn watchdog_interval_must_fit_in_the_deadline() {
    let text = format!("{GOOD}\n[watchdog]\nsale_deadline_s = 5\ninquiry_interval_ms = 6000\n");
    assert!(error(&text).contains("[watchdog] inquiry_interval_ms"));
}

#[test]
fn http_only_for_loopback() {
    assert!(check_url("https://openapi.alipay.com/gateway.do").is_ok());
    assert!(check_url("http://127.0.0.1:8080/gateway.do").is_ok());
    assert!(check_url("http://[::1]:80/").is_ok());
    assert!(check_url("http://localhost.evil.com/").is_err());
    assert!(check_url("http://127.0.0.1@evil.example/").is_err());
    assert!(check_url("http://127.evil.example/").is_err());
    assert!(check_url("http://localhost:@evil/").is_err());
    assert!(check_url("https://user:pw@openapi.alipay.com/").is_err());
    assert!(check_url("http://10.0.0.1/").is_err());
    assert!(check_url("ftp://x").is_err());
    assert!(check_url("https://").is_err());
}

#[test]
fn the_store_zone_is_set_once_and_an_old_receipt_offset_still_sets_it() {
    assert_eq!(
        load(GOOD).unwrap().terminal.zone,
        crate::clock::StoreZone::Host
    );
    let named = GOOD.replace("max_amount", "time_zone = \"Asia/Bangkok\"\nmax_amount");
    assert_eq!(load(&named).unwrap().terminal.zone.name(), "Asia/Bangkok");
    let bad = GOOD.replace("max_amount", "time_zone = \"Mars/Olympus\"\nmax_amount");
    let e = error(&bad);
    assert!(
        e.contains("[terminal] time_zone") && e.contains("IANA name"),
        "{e}"
    );
    let old = format!("{GOOD}\n[receipt]\nutc_offset = \"-05:00\"\n");
    assert_eq!(load(&old).unwrap().terminal.zone.name(), "-05:00");
    let both = format!("{named}\n[receipt]\nutc_offset = \"+07:00\"\n");
    let e = error(&both);
    assert!(
        e.contains("[receipt] utc_offset") && e.contains("set once"),
        "{e}"
    );
}

#[test]
fn two_gateways_one_per_wallet_and_their_wechat_keys_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::sandbox::SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
    let text = crate::sandbox::dual_client_config(
        "http://127.0.0.1:1/gateway.do",
        "http://127.0.0.1:1",
        "2021000000000001",
        &keys,
    )
    .unwrap();
    let file = dir.path().join("dual.toml");
    std::fs::write(&file, &text).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.gateway.kind(), GatewayKind::AlipayOpenapi);
    assert_eq!(c.other_gateways.len(), 1);
    let GatewaySettings::Wechat(w) = &c.other_gateways[0] else {
        panic!("not WeChat Pay")
    };
    assert!(w.download_certificates);
    assert_eq!(w.deadline, Duration::from_secs(30));
    // Each gateway gets its own engine route.
    let g =
        crate::daemon::wiring::build_gateway(&c, std::sync::Arc::new(crate::clock::SystemClock))
            .unwrap();
    assert_eq!(
        g.route(crate::paycode::Wallet::WechatPay),
        Some("wechat-pay")
    );
    assert_eq!(
        g.route(crate::paycode::Wallet::Alipay),
        Some("alipay-openapi")
    );
    assert_eq!(g.route(crate::paycode::Wallet::UnionPay), None);
    assert_eq!(g.request_id_tag(crate::paycode::Wallet::WechatPay), "W");
    assert_eq!(
        g.policy_for("T1_x_1W").deadline,
        Some(Duration::from_secs(30))
    );
    assert_eq!(g.policy_for("T1_x_1").deadline, None);

    let refused = |text: &str| {
        std::fs::write(&file, text).unwrap();
        Config::load(&file).expect_err("refused").to_string()
    };
    // Keys at the top with nested tables.
    let e = refused(&text.replace(
        "[gateway.alipay]\n",
        "[gateway]\ntimeout_ms = 3000\n[gateway.alipay]\n",
    ));
    assert!(e.contains("[gateway] timeout_ms"), "{e}");
    let e = refused(&text.replace("deadline_s = 30", "deadline_s = 60"));
    assert!(
        e.contains("[gateway.wechat] deadline_s") && e.contains("between 30 and 45"),
        "{e}"
    );
    let e = refused(&text.replace("id = \"T0001\"", "id = \"TERMINAL1\""));
    assert!(e.contains("[terminal] id"), "{e}");
    let e = refused(&text.replace("app_id = \"2021000000000001\"", "app_id = \"x\""));
    assert!(e.contains("[gateway.alipay] app_id"), "{e}");
    let e = refused(&text.replace(
        "download_certificates = true",
        "download_certificates = false",
    ));
    assert!(e.contains("download_certificates"), "{e}");
    // The APIv3 key is a secret: refused when others may read it, or not 32 bytes.
    let apiv3 = dir.path().join("wechat_apiv3_key");
    std::fs::set_permissions(&apiv3, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = refused(&text);
    assert!(
        e.contains("[gateway.wechat] apiv3_key_file") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::write(&apiv3, "short").unwrap();
    std::fs::set_permissions(&apiv3, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = refused(&text);
    assert!(e.contains("32 characters"), "{e}");
    assert!(!e.contains("short"), "the secret is not printed: {e}");
}

#[test]
fn members_need_an_ams_gateway_and_a_private_token_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("member-token.key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let members = format!(
        "\n[members]\ntoken_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/bound\"\n",
        key.display()
    );
    // The demo's gateway is the in-process sandbox: no AMS authorizations.
    let text = DEMO_TOML.to_string() + &members;
    let e = Config::from_toml(&text, "t.toml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml") && e.contains("[members]") && e.contains("AMS"),
        "{e}"
    );
}

#[test]
fn receipt_language_texts_and_beep_are_checked() {
    use crate::output::escpos::Beeper;
    use crate::output::labels::Language;
    let with = |printer: &str, receipt: &str| {
        format!("{GOOD}\n[printer]\nkind = \"none\"\n{printer}\n[receipt]\n{receipt}\n")
    };
    let texts = "store_name = \"Plain\"\nstore_name_zh = \"扫码小店\"\nheader = [\"H\"]\nheader_en = [\"Main St 1\"]\nfooter_zh = [\"谢谢惠顾\"]\nfooter_en = [\"Thank you\"]";
    // Without the new keys: English labels, the single keys, no buzzer, as before.
    let old = load(&with("", "store_name = \"Plain\"\nheader = [\"H\"]"))
        .unwrap()
        .printer
        .unwrap();
    assert_eq!(old.receipt.language, Language::En);
    assert_eq!(old.receipt.store_name, ["Plain"]);
    assert_eq!(old.receipt.header, ["H"]);
    assert_eq!(old.beep, Beeper::Off);
    let slip = |language: &str| {
        load(&with(
            "beep = \"esc_b\"",
            &format!("language = \"{language}\"\n{texts}"),
        ))
        .unwrap()
        .printer
        .unwrap()
    };
    let zh = slip("zh");
    assert_eq!(zh.beep, Beeper::EscB);
    assert_eq!(zh.receipt.language, Language::Zh);
    assert_eq!(zh.receipt.store_name, ["扫码小店"]);
    assert_eq!(zh.receipt.header, ["H"], "no header_zh: the plain header");
    assert_eq!(zh.receipt.footer, ["谢谢惠顾"]);
    let en = slip("en");
    assert_eq!(en.receipt.store_name, ["Plain"]);
    assert_eq!(en.receipt.header, ["Main St 1"]);
    assert_eq!(en.receipt.footer, ["Thank you"]);
    let both = slip("both");
    assert_eq!(both.receipt.store_name, ["扫码小店", "Plain"]);
    assert_eq!(both.receipt.header, ["H", "Main St 1"]);
    assert_eq!(both.receipt.footer, ["谢谢惠顾", "Thank you"]);
    for (printer, receipt, key) in [
        ("", "language = \"cn\"", "[receipt] language"),
        ("beep = \"loud\"", "", "[printer] beep"),
        ("", "footer_en = [\"a\\u0007b\"]", "[receipt] footer_en"),
        (
            "",
            &format!("header_zh = [\"{}\"]", "长".repeat(65)),
            "[receipt] header_zh",
        ),
        (
            "",
            &format!("store_name_en = \"{}\"", "x".repeat(65)),
            "[receipt] store_name_en",
        ),
    ] {
        let message = error(&with(printer, receipt));
        assert!(message.contains(key), "{key:?} not in {message:?}");
        assert!(message.starts_with("test.toml: "), "{message}");
    }
}
