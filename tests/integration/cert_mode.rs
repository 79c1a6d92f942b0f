//! Open Platform certificate mode end to end: the real binary against `scanpay sandbox
//! --cert-mode` over loopback (docs/protocol.md §3.4, docs/gateways.md §9). The sandbox
//! refuses a request whose `app_cert_sn` or `alipay_root_cert_sn` is missing or not its own,
//! and signs its answers under the `alipay_cert_sn` it names; scanpay verifies each answer
//! under that certificate, downloading a new one when the sandbox rotates.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use crate::common::procs::{SandboxProc, post_to, scanpay};
use scanpay::clock::SystemClock;
use scanpay::config::{Config, GatewaySettings};
use scanpay::gateway::alipay_openapi::{OpenApi, cert};
use scanpay::gateway::keys::PrivateKey;
use scanpay::gateway::{Gateway, Outcome, PayRequest, UnknownKind};
use scanpay::money::{Amount, Currency};
use scanpay::paycode::{Scan, recognise};
use serde_json::Value;

const ALIPAY_CERT: &str = "alipayCertPublicKey_RSA2.crt";
const ROOT_CERT: &str = "alipayRootCert.crt";

fn sandbox(dir: &Path) -> SandboxProc {
    SandboxProc::start_with(dir, "127.0.0.1:0", &["--cert-mode"])
}

fn charge(config: &Path, code: &str) -> Output {
    scanpay()
        .arg("charge")
        .arg("--config")
        .arg(config)
        .args(["--amount", "10.00", "--code", code])
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn state(out: &Output) -> String {
    let sale: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    sale["state"].as_str().unwrap_or_default().to_string()
}

fn sn_of(file: &Path) -> String {
    cert::cert_sn(&cert::load(file).unwrap()[0])
}

fn probe(config: &Path) -> Output {
    scanpay()
        .arg("check-config")
        .arg(config)
        .arg("--probe")
        .output()
        .unwrap()
}

#[test]
fn charges_are_paid_in_certificate_mode_and_a_rotated_alipay_certificate_is_fetched_checked_and_stored()
 {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(dir.path());
    let config = sbx.config_from("scanpay-cert.toml");
    let alipay_file = dir.path().join(ALIPAY_CERT);
    let first_sn = sn_of(&alipay_file);

    let check = probe(&config);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let report = text(&check);
    for expected in [
        "app_cert_file",
        "alipay_cert_file",
        "alipay_root_cert_file",
        "days left",
        "the Alipay certificate chains to the root bundle",
        "is the key of the app certificate",
        "answered a signed inquiry",
    ] {
        assert!(report.contains(expected), "{expected:?} in {report}");
    }
    assert!(report.contains(&format!("SN {first_sn}")), "{report}");

    // The sandbox accepted our SNs (it refuses anything else), and its answer verified under
    // the certificate it named, the configured one: nothing was downloaded.
    let paid = charge(&config, "284700000000000100");
    assert_eq!(paid.status.code(), Some(0), "{}", text(&paid));
    assert_eq!(state(&paid), "paid", "{}", text(&paid));
    assert!(!text(&paid).contains("downloading"), "{}", text(&paid));

    let (status, body) = sbx.post("/_sandbox/openapi/rotate-alipay-cert");
    assert_eq!(status, 200, "{body}");
    let rotated: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rotated["previous"].as_str(), Some(first_sn.as_str()));
    let new_sn = rotated["alipay_cert_sn"].as_str().unwrap().to_string();
    assert_ne!(new_sn, first_sn);

    // The next answer is signed under the new certificate: fetched, chained, stored, used.
    let paid = charge(&config, "284700000000000200");
    assert_eq!(state(&paid), "paid", "{}", text(&paid));
    assert!(
        text(&paid).contains("Alipay certificate rotated"),
        "{}",
        text(&paid)
    );
    assert_eq!(sn_of(&alipay_file), new_sn, "the new certificate is stored");
    let stored = cert::load(&alipay_file).unwrap();
    let roots = cert::load(&dir.path().join(ROOT_CERT)).unwrap();
    assert_eq!(
        cert::verify_chain(&stored, &roots, chrono::Utc::now()),
        Ok(())
    );
    let kept = dir.path().join(format!("{ALIPAY_CERT}.{first_sn}"));
    assert_eq!(sn_of(&kept), first_sn, "the old certificate is kept");

    // A new process starts from the stored certificate: no download any more.
    let paid = charge(&config, "284700000000000300");
    assert_eq!(state(&paid), "paid", "{}", text(&paid));
    assert!(!text(&paid).contains("downloading"), "{}", text(&paid));
    let check = probe(&config);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(
        text(&check).contains(&format!("SN {new_sn}")),
        "{}",
        text(&check)
    );

    let ledger = sbx.ledger();
    assert_eq!(ledger.len(), 3, "{ledger:?}");
    assert!(ledger.iter().all(|(_, net)| *net == 1000), "{ledger:?}");
}

/// A copy of the written certificate-mode config with `key = "file"` in place of the
/// written line for `key`.
fn config_with(dir: &Path, name: &str, key: &str, file: &str) -> std::path::PathBuf {
    let written = std::fs::read_to_string(dir.join("scanpay-cert.toml")).unwrap();
    let replaced: Vec<String> = written
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                format!("{key} = \"{file}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, replaced.join("\n")).unwrap();
    path
}

#[test]
fn a_missing_or_wrong_sn_is_refused_at_the_door_and_the_probe_names_the_certificate_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(dir.path());
    let d = dir.path();

    // Public-key mode against an app in certificate mode: no SN at all.
    let plain = sbx.config_from("scanpay.toml");
    let out = charge(&plain, "284700000000001100");
    assert!(
        text(&out).contains("isv.missing-app-cert-sn"),
        "{}",
        text(&out)
    );
    let check = probe(&plain);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check)
            .contains("set [gateway] app_cert_file, alipay_cert_file and alipay_root_cert_file"),
        "{}",
        text(&check)
    );

    // An app certificate for the same key, from the same root, but not the one the sandbox
    // knows for the app: another SN.
    let root_key = PrivateKey::load(&d.join("sandbox_root_ca_key.pem")).unwrap();
    let root = cert::load(&d.join(ROOT_CERT)).unwrap().remove(0);
    let app_key = PrivateKey::load(&d.join("app_private_key.pem")).unwrap();
    let other = cert::issue(
        &app_key,
        "CN=2021000000000001,OU=Alipay,O=another,C=CN",
        Some((&root_key, &root)),
        4242,
        Duration::from_secs(86_400),
    )
    .unwrap();
    std::fs::write(d.join("other_app_cert.crt"), cert::to_pem(&other).unwrap()).unwrap();
    let wrong_app = config_with(d, "wrong-app.toml", "app_cert_file", "other_app_cert.crt");
    let out = charge(&wrong_app, "284700000000001200");
    assert!(
        text(&out).contains("isv.invalid-app-cert-sn"),
        "{}",
        text(&out)
    );
    let check = probe(&wrong_app);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains("app_cert_file (") && text(&check).contains("other_app_cert.crt"),
        "{}",
        text(&check)
    );
    // That certificate ends within a day: check-config and status warn.
    assert!(
        text(&check)
            .lines()
            .any(|l| l.starts_with("WARN certificate")
                && l.contains("app_cert_file")
                && l.contains("other_app_cert.crt: subject")
                && l.contains("0 days left; renew the app certificate")),
        "{}",
        text(&check)
    );
    let shown = status(&wrong_app);
    assert!(
        shown.contains("CERTIFICATE alipay_app_cert") && shown.contains("(0 days left): renew"),
        "{shown}"
    );

    // A root bundle with one more RSA root: the Alipay certificate still chains, but the
    // bundle's SN is not Alipay's.
    let extra_key = PrivateKey::generate(1024, "extra root").unwrap();
    let extra = cert::issue(
        &extra_key,
        "CN=Another Root,O=another,C=CN",
        None,
        9,
        Duration::from_secs(86_400),
    )
    .unwrap();
    let bundle = format!(
        "{}\n{}",
        std::fs::read_to_string(d.join(ROOT_CERT)).unwrap(),
        cert::to_pem(&extra).unwrap()
    );
    std::fs::write(d.join("bigger_root.crt"), bundle).unwrap();
    let wrong_root = config_with(
        d,
        "wrong-root.toml",
        "alipay_root_cert_file",
        "bigger_root.crt",
    );
    let check = probe(&wrong_root);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains("isv.invalid-alipay-root-cert-sn")
            && text(&check).contains("alipay_root_cert_file (")
            && text(&check).contains("bigger_root.crt"),
        "{}",
        text(&check)
    );

    // Nothing was charged by any of them.
    assert!(sbx.ledger().is_empty(), "{:?}", sbx.ledger());
}

#[test]
fn a_config_whose_certificates_do_not_fit_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let _sbx = sandbox(dir.path());
    let d = dir.path();
    let key_of_another = PrivateKey::generate(1024, "another app").unwrap();
    let self_signed = cert::issue(
        &key_of_another,
        "CN=Stray,O=stray,C=CN",
        None,
        5,
        Duration::from_secs(86_400),
    )
    .unwrap();
    std::fs::write(d.join("stray.crt"), cert::to_pem(&self_signed).unwrap()).unwrap();
    std::fs::write(d.join("garbage.crt"), "not a certificate\n").unwrap();
    let cases = [
        (
            "app_cert_file",
            "stray.crt",
            "is not for the key in private_key_file",
        ),
        ("app_cert_file", "garbage.crt", "holds no PEM certificate"),
        (
            "alipay_cert_file",
            "stray.crt",
            "does not chain to the root bundle",
        ),
        (
            "alipay_cert_file",
            "appCertPublicKey_2021000000000001.crt",
            "your app's certificate, not Alipay's",
        ),
        ("alipay_root_cert_file", "stray.crt", "does not chain"),
    ];
    for (key, file, why) in cases {
        let config = config_with(d, "bad.toml", key, file);
        let out = scanpay().arg("check-config").arg(&config).output().unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{key}={file}: {said}");
        assert!(
            said.contains(key) && said.contains(file) && said.contains(why),
            "{key}={file}: {said}"
        );
    }
    // Both modes at once, or a certificate file missing, is refused too.
    let written = std::fs::read_to_string(d.join("scanpay-cert.toml")).unwrap();
    let both = written.replace(
        "private_key_file =",
        "alipay_public_key_file = \"alipay_public_key.pem\"\nprivate_key_file =",
    );
    let without_root: String = written
        .lines()
        .filter(|l| !l.starts_with("alipay_root_cert_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    for (text_of, key) in [
        (both, "alipay_public_key_file"),
        (without_root, "alipay_root_cert_file"),
    ] {
        std::fs::write(d.join("bad.toml"), text_of).unwrap();
        let out = scanpay()
            .arg("check-config")
            .arg(d.join("bad.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(key), "{}", text(&out));
    }
}

fn pay_request(request_id: &str, code: &str) -> PayRequest {
    let Scan::Payment(code) = recognise(code) else {
        panic!("{code}")
    };
    PayRequest {
        request_id: request_id.to_string(),
        code,
        amount: Amount::parse("10.00", Currency::from_code("CNY").unwrap()).unwrap(),
        subject: "test".into(),
        terminal_id: "T1".into(),
        store_id: None,
        signing_key: None,
        basket: Default::default(),
        signed: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_that_does_not_chain_to_our_roots_is_refused_and_the_payment_stays_unknown()
 {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(dir.path());
    let config = Config::load(&dir.path().join("scanpay-cert.toml")).unwrap();
    let GatewaySettings::OpenApi(mut settings) = config.gateway.clone() else {
        panic!("not an Open Platform config")
    };
    // Our trust: another root than the one that issues the sandbox's certificates.
    let other_key = PrivateKey::generate(1024, "other root").unwrap();
    let other_root = cert::issue(
        &other_key,
        "CN=Other Root,O=other,C=CN",
        None,
        1,
        Duration::from_secs(86_400),
    )
    .unwrap();
    if let Some(mode) = settings.cert_mode.as_mut() {
        mode.roots = vec![other_root];
    }
    let client = OpenApi::new(settings, Arc::new(SystemClock)).unwrap();
    // The configured certificate is trusted as configured: paid.
    let first = client
        .pay(&pay_request("CERT_NOCHAIN_1", "284700000000002100"))
        .await;
    assert!(matches!(first, Outcome::Success(_)), "{first:?}");

    let port = sbx.port;
    let (status, _) =
        tokio::task::spawn_blocking(move || post_to(port, "/_sandbox/openapi/rotate-alipay-cert"))
            .await
            .unwrap();
    assert_eq!(status, 200);
    let before = std::fs::read(dir.path().join(ALIPAY_CERT)).unwrap();
    // The sandbox charged, but its answer is under a certificate that does not chain to our
    // root: not believed, unknown; nothing stored.
    let second = client
        .pay(&pay_request("CERT_NOCHAIN_2", "284700000000002200"))
        .await;
    match &second {
        Outcome::Unknown(u) => {
            assert_eq!(u.kind, UnknownKind::BadSignature, "{u:?}");
            assert!(u.detail.contains("does not chain"), "{u:?}");
        }
        other => panic!("{other:?}"),
    }
    // The same certificate is not asked for again on the next answer under it.
    let third = client
        .pay(&pay_request("CERT_NOCHAIN_3", "284700000000002300"))
        .await;
    match &third {
        Outcome::Unknown(u) => assert!(u.detail.contains("refused earlier"), "{u:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(dir.path().join(ALIPAY_CERT)).unwrap(), before);
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{ALIPAY_CERT}."))
        })
        .collect();
    assert!(kept.is_empty(), "nothing kept: {kept:?}");
}

async fn get(socket: &Path, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: scanpay\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn status(config: &Path) -> String {
    let out = scanpay()
        .arg("status")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    text(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_and_status_show_each_certificates_end_and_follow_a_rotation() {
    use crate::common::procs::Daemon;
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(dir.path());
    let config = sbx.config_from("scanpay-cert.toml");
    let text_of = std::fs::read_to_string(&config).unwrap() + "\n[api]\nsocket = \"api.sock\"\n";
    std::fs::write(&config, text_of).unwrap();
    let app_sn = sn_of(&dir.path().join("appCertPublicKey_2021000000000001.crt"));
    let first_sn = sn_of(&dir.path().join(ALIPAY_CERT));
    let root_sn = sn_of(&dir.path().join(ROOT_CERT));

    let mut daemon = Daemon::start(&config, None);
    let socket = dir.path().join("api.sock");
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            std::time::Instant::now() < end,
            "no API: {}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health: Value = serde_json::from_str(&get(&socket, "/v1/health").await).unwrap();
    let certs = health["gateway"]["certificates"]
        .as_array()
        .unwrap()
        .clone();
    let which: Vec<(&str, &str)> = certs
        .iter()
        .map(|c| (c["which"].as_str().unwrap(), c["sn"].as_str().unwrap()))
        .collect();
    assert_eq!(
        which,
        [
            ("alipay_app_cert", app_sn.as_str()),
            ("alipay_cert", first_sn.as_str()),
            ("alipay_root_cert", root_sn.as_str()),
        ]
    );
    // The sandbox issues for three years, its root for twenty.
    let days: Vec<i64> = certs
        .iter()
        .map(|c| c["days_left"].as_i64().unwrap())
        .collect();
    assert!((1090..=1096).contains(&days[0]), "{days:?}");
    assert!(days[2] > 7000, "{days:?}");
    let metrics = get(&socket, "/metrics").await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("scanpay_certificate_expiry_seconds{")
                && l.contains("which=\"alipay_cert\"")
                && l.contains(&first_sn)
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((1090 * 86_400..=1096 * 86_400).contains(&seconds), "{line}");
    let shown = status(&config);
    assert!(
        shown.contains(&format!("cert      alipay_cert {first_sn} until")),
        "{shown}"
    );

    // After a rotation the daemon verifies under the new certificate, and says so.
    let (code, body) = sbx.post("/_sandbox/openapi/rotate-alipay-cert");
    assert_eq!(code, 200, "{body}");
    let new_sn = serde_json::from_str::<Value>(&body).unwrap()["alipay_cert_sn"]
        .as_str()
        .unwrap()
        .to_string();
    daemon.feed("10.00\n284700000000003100\n");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = get(&socket, "/metrics").await;
        if metrics.contains(&new_sn) && metrics.contains("scanpay_sales{state=\"paid\"} 1") {
            assert!(!metrics.contains(&first_sn), "{metrics}");
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "{metrics}\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.terminate();
    // Without a daemon, status reads the configured files: the stored new certificate.
    let shown = status(&config);
    assert!(
        shown.contains(&format!("cert      alipay_cert {new_sn} until")),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_list_the_wechat_pay_platform_certificates_held() {
    use crate::common::procs::Daemon;
    let dir = tempfile::tempdir().unwrap();
    let sbx = SandboxProc::start(dir.path(), 0);
    let config = sbx.config_from("scanpay-dual.toml");
    let text_of = std::fs::read_to_string(&config).unwrap() + "\n[api]\nsocket = \"api.sock\"\n";
    std::fs::write(&config, text_of).unwrap();
    let serial = cert_serial(&dir.path().join("wechat_platform_cert.pem"));
    let mut daemon = Daemon::start(&config, None);
    let socket = dir.path().join("api.sock");
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            std::time::Instant::now() < end,
            "no API: {}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A WeChat Pay sale: its answer is verified with the certificates downloaded for it.
    daemon.feed("10.00\n134567890123450000\n");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = get(&socket, "/metrics").await;
        if m.contains("scanpay_sales{state=\"paid\"} 1") {
            break m;
        }
        assert!(std::time::Instant::now() < end, "{m}\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("scanpay_certificate_expiry_seconds{")
                && l.contains("which=\"wechat_platform_cert\"")
                && l.contains(&serial)
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    // The sandbox's platform certificate is valid for five years.
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(seconds > 4 * 365 * 86_400, "{line}");
    let health: Value = serde_json::from_str(&get(&socket, "/v1/health").await).unwrap();
    let listed = health["gateway"]["certificates"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|c| c["which"] == "wechat_platform_cert" && c["sn"] == serial.as_str()),
        "{listed:?}"
    );
    // Public-key mode on the Alipay side: no Alipay certificate listed.
    assert!(
        listed
            .iter()
            .all(|c| !c["which"].as_str().unwrap_or("").starts_with("alipay")),
        "{listed:?}"
    );
    daemon.terminate();
    // Without a daemon, status lists the configured certificate files.
    let written = std::fs::read_to_string(&config).unwrap();
    let named = written.replace(
        "download_certificates = true",
        "platform_certificate_files = [\"wechat_platform_cert.pem\"]",
    );
    assert_ne!(named, written);
    let named_config = dir.path().join("named-certs.toml");
    std::fs::write(&named_config, named).unwrap();
    let shown = status(&named_config);
    assert!(
        shown.contains(&format!("cert      wechat_platform_cert {serial} until")),
        "{shown}"
    );
}

/// A WeChat Pay certificate's serial as WeChat Pay writes it (upper-case hex).
fn cert_serial(file: &Path) -> String {
    let c = cert::load(file).unwrap().remove(0);
    let bytes = c.tbs_certificate.serial_number.as_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_that_cannot_be_stored_is_still_used() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(dir.path());
    let config = Config::load(&dir.path().join("scanpay-cert.toml")).unwrap();
    let GatewaySettings::OpenApi(settings) = config.gateway.clone() else {
        panic!("not an Open Platform config")
    };
    let client = OpenApi::new(settings, Arc::new(SystemClock)).unwrap();
    // The configured file goes away after the config was read: nothing to keep, no store.
    std::fs::remove_file(dir.path().join(ALIPAY_CERT)).unwrap();
    let port = sbx.port;
    let (status, _) =
        tokio::task::spawn_blocking(move || post_to(port, "/_sandbox/openapi/rotate-alipay-cert"))
            .await
            .unwrap();
    assert_eq!(status, 200);
    let paid = client
        .pay(&pay_request("CERT_NOSTORE_1", "284700000000004100"))
        .await;
    assert!(matches!(paid, Outcome::Success(_)), "{paid:?}");
    assert!(!dir.path().join(ALIPAY_CERT).exists());
    assert_eq!(sbx.ledger().len(), 1);
}

#[test]
fn a_certificate_ending_within_30_days_lights_needs_attention_and_is_told_once() {
    use crate::common::led_dir;
    use crate::common::procs::Daemon;
    let dir = tempfile::tempdir().unwrap();
    let sbx = sandbox(dir.path());
    let config = sbx.config_from("scanpay-cert.toml");
    // The app certificate renewed for the same key, by the same root, ending in ten days.
    let root_key = PrivateKey::load(&dir.path().join("sandbox_root_ca_key.pem")).unwrap();
    let root = cert::load(&dir.path().join(ROOT_CERT)).unwrap().remove(0);
    let app_key = PrivateKey::load(&dir.path().join("app_private_key.pem")).unwrap();
    let short = cert::issue(
        &app_key,
        "CN=2021000000000001,OU=Alipay,O=scanpay sandbox merchant,C=CN",
        Some((&root_key, &root)),
        7,
        Duration::from_secs(10 * 86_400),
    )
    .unwrap();
    let short_file = dir.path().join("appCertPublicKey_short.crt");
    std::fs::write(&short_file, cert::to_pem(&short).unwrap()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "appCertPublicKey_2021000000000001.crt",
        "appCertPublicKey_short.crt",
    ) + &format!(
        "\n[api]\nsocket = \"api.sock\"\n\n[led]\nkind = \"sysfs\"\ngreen = \"{}\"\nred = \"{}\"\nyellow = \"{}\"\n",
        led_dir(dir.path(), "green").display(),
        led_dir(dir.path(), "red").display(),
        led_dir(dir.path(), "yellow").display()
    );
    assert!(text.contains("appCertPublicKey_short.crt"));
    std::fs::write(&config, text).unwrap();

    let mut daemon = Daemon::start(&config, None);
    let journal = scanpay::config::Config::load(&config).unwrap().journal.path;
    let end = std::time::Instant::now() + Duration::from_secs(15);
    let told = loop {
        let told: Vec<Value> = scanpay::journal::Journal::open_read_only(&journal)
            .ok()
            .and_then(|j| j.events_after(0, 1000).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, kind, _)| kind == "certificate_expiring")
            .map(|(_, _, data)| serde_json::from_str(&data).unwrap())
            .collect();
        if !told.is_empty() {
            break told;
        }
        assert!(std::time::Instant::now() < end, "{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["which"], "alipay_app_cert");
    assert_eq!(told[0]["sn"], cert::cert_sn(&short).as_str());
    assert!(
        (9..=10).contains(&told[0]["days_left"].as_i64().unwrap()),
        "{told:?}"
    );
    // Red, fast blink: needs attention.
    let red = dir.path().join("red");
    assert_eq!(
        std::fs::read_to_string(red.join("trigger")).unwrap().trim(),
        "timer"
    );
    assert_eq!(
        std::fs::read_to_string(red.join("delay_on"))
            .unwrap()
            .trim(),
        "150"
    );
    let shown = status(&config);
    assert!(shown.contains("CERTIFICATE alipay_app_cert"), "{shown}");
    // Told once, not on every tick.
    std::thread::sleep(Duration::from_millis(2500));
    let again = scanpay::journal::Journal::open_read_only(&journal)
        .unwrap()
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|(_, kind, _)| kind == "certificate_expiring")
        .count();
    assert_eq!(again, 1);
    daemon.terminate();
}
