//! Deployment files: the systemd unit verifies and agrees with the code's defaults, the udev
//! rules parse, every example config loads (given keys), and check-config names each failure
//! it claims to detect, including the gateway probe.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::procs::{SandboxProc, scanpay};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unit() -> String {
    std::fs::read_to_string(root().join("systemd/scanpay.service")).unwrap()
}

fn unit_value(key: &str) -> Vec<String> {
    unit()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // Verify checks that ExecStart= exists: point it at the binary under test.
    let text = unit().replace("/usr/bin/scanpay", env!("CARGO_BIN_EXE_scanpay"));
    let path = dir.path().join("scanpay.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!(
                    "this test needs systemd-analyze, which is not installed: \
                     apt-get install systemd (.ci/run installs it when missing)"
                )
            }
            panic!("cannot run systemd-analyze: {e}")
        });
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_unit_agrees_with_the_code() {
    assert_eq!(unit_value("Type"), ["notify"]);
    assert_eq!(unit_value("User"), ["scanpay"]);
    assert!(!unit_value("WatchdogSec").is_empty());
    assert_eq!(unit_value("StateDirectory"), ["scanpay"]);
    assert_eq!(unit_value("RuntimeDirectory"), ["scanpay"]);
    assert_eq!(unit_value("ConfigurationDirectory"), ["scanpay"]);
    // The package makes /etc/scanpay with the mode the unit names, and the keys' directory
    // private to the service user.
    let postinst = std::fs::read_to_string(root().join("debian/postinst")).unwrap();
    let mode = unit_value("ConfigurationDirectoryMode");
    assert_eq!(mode.len(), 1, "ConfigurationDirectoryMode= set once");
    assert!(
        postinst.contains(&format!(
            "install -d -o root -g {} -m {} /etc/scanpay\n",
            unit_value("Group")[0],
            mode[0]
        )),
        "debian/postinst makes /etc/scanpay with another owner or mode than the unit's {mode:?}"
    );
    assert!(postinst.contains("install -d -o scanpay -g scanpay -m 0700 /etc/scanpay/keys\n"));
    assert!(
        unit_value("PrivateDevices").is_empty(),
        "PrivateDevices hides the scanners"
    );
    // The API's connection cap is the soft limit on open files less a reserve, at most
    // MAX_CONNECTIONS: the unit's limit leaves the full cap and the reserve.
    let nofile = unit_value("LimitNOFILE");
    assert_eq!(nofile.len(), 1, "LimitNOFILE= set once: {nofile:?}");
    let nofile: u64 = nofile[0].parse().expect("LimitNOFILE= a single number");
    assert!(
        nofile >= scanpay::api::MAX_CONNECTIONS as u64 + scanpay::api::FD_RESERVE,
        "LimitNOFILE={nofile} is below the API's cap plus the reserve"
    );
    assert_eq!(
        unit_value("ExecStart"),
        ["/usr/bin/scanpay run --config /etc/scanpay/scanpay.toml"]
    );
    // The journal under StateDirectory, the socket under RuntimeDirectory: what the examples
    // and the code's defaults use.
    let example =
        scanpay::config::Config::load(&root().join("config/scanpay.example.toml")).unwrap();
    assert_eq!(
        example.journal.path,
        Path::new("/var/lib/scanpay/journal.sqlite")
    );
    let api = scanpay::config::Config::from_toml(
        "[terminal]\nid=\"T1\"\ncurrency=\"CNY\"\nmax_amount=\"1.00\"\n[gateway]\nkind=\"sandbox\"\n[journal]\npath=\"j\"\n[api]\n",
        "t",
        Path::new("/etc/scanpay"),
    )
    .unwrap()
    .api
    .unwrap();
    assert_eq!(api.socket, Path::new("/run/scanpay/api.sock"));
    // Device classes the code opens are allowed.
    let allowed = unit_value("DeviceAllow").join(" ");
    for class in [
        "char-hidraw",
        "char-input",
        "char-ttyACM",
        "char-ttyUSB",
        "char-usb",
    ] {
        assert!(allowed.contains(class), "{class}");
    }
}

#[test]
fn the_udev_rules_parse() {
    let text = std::fs::read_to_string(root().join("udev/70-scanpay.rules")).unwrap();
    let mut rules = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        rules += 1;
        for pair in line.split(", ") {
            let op_at = pair
                .find(['=', '!', '+', ':'])
                .unwrap_or_else(|| panic!("line {}: {pair}", n + 1));
            let (key, rest) = pair.split_at(op_at);
            let key_ok = key
                .split_once('{')
                .map(|(k, attr)| !k.is_empty() && attr.ends_with('}'))
                .unwrap_or(!key.is_empty())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_{}".contains(c));
            assert!(key_ok, "line {}: key {key:?}", n + 1);
            let value = ["==", "!=", "+=", ":=", "="]
                .iter()
                .find_map(|op| rest.strip_prefix(op))
                .unwrap_or_else(|| panic!("line {}: operator in {pair:?}", n + 1));
            assert!(
                value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
                "line {}: value {value:?}",
                n + 1
            );
        }
        if line.contains("SYMLINK") {
            assert!(line.contains("SYMLINK+=\"scanpay/"), "line {}", n + 1);
        }
        if line.contains("GROUP=") {
            assert!(
                line.contains("GROUP=\"scanpay\"") && line.contains("MODE=\"0660\""),
                "line {}",
                n + 1
            );
        }
    }
    assert!(rules >= 5);
}

/// A copy of an example config beside real keys (the sandbox's), paths made local.
fn example_with_keys(name: &str, dir: &Path) -> PathBuf {
    let keys =
        scanpay::sandbox::SandboxKeys::load_or_create(&dir.join("keys"), 1024, None).unwrap();
    let app = keys.app_private_key_file.unwrap();
    let text = std::fs::read_to_string(root().join("config").join(name))
        .unwrap()
        .replace("keys/app_private_key.pem", app.to_str().unwrap())
        .replace("keys/merchant_private_key.pem", app.to_str().unwrap())
        .replace(
            "keys/alipay_public_key.pem",
            keys.gateway_public_key_file.to_str().unwrap(),
        )
        .replace(
            "keys/antom_public_key.pem",
            keys.gateway_public_key_file.to_str().unwrap(),
        )
        .replace(
            "/var/lib/scanpay/journal.sqlite",
            dir.join("journal.sqlite").to_str().unwrap(),
        );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_example_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "scanpay.example.toml",
        "sandbox.example.toml",
        "openapi.example.toml",
        "ams.example.toml",
    ] {
        let path = example_with_keys(name, dir.path());
        let out = scanpay().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("OK   config"),
            "{name}"
        );
    }
}

#[test]
fn check_config_warns_of_the_ams_keys_an_acquirer_may_require() {
    let dir = tempfile::tempdir().unwrap();
    let config = example_with_keys("ams.example.toml", dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = scanpay().arg("check-config").arg(&config).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, stdout) = check(&text);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("OK   settlement") && stdout.contains("in USD"),
        "{stdout}"
    );
    assert!(stdout.contains("OK   notify"), "{stdout}");

    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("settlement_currency") && !l.starts_with("payment_notify_url"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, stdout) = check(&without);
    assert_eq!(code, Some(0), "warnings only: {stdout}");
    assert!(
        stdout.contains("WARN settlement")
            && stdout.contains("terminal currency SGD")
            && stdout.contains("Antom Dashboard"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARN notify") && stdout.contains("\"resultCode\":\"SUCCESS\""),
        "{stdout}"
    );
}

#[test]
fn check_config_names_each_failure_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = example_with_keys("openapi.example.toml", dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    let check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = scanpay().arg("check-config").arg(&config).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, _, stdout) = check(&text);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("OK   keys"), "{stdout}");
    assert!(
        stdout.contains("WARN scanner"),
        "a scanner that is not plugged in is a warning: {stdout}"
    );

    let (code, err, _) =
        check(&text.replace("private_key_file = \"", "private_key_file = \"missing-"));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("FAIL config")
            && err.contains("private_key_file")
            && err.contains("cannot read the key"),
        "{err}"
    );

    let key = dir.path().join("keys/app_private_key.pem");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, err, _) = check(&text);
    assert_eq!(code, Some(2));
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let own = text.replace(
        dir.path()
            .join("keys/alipay_public_key.pem")
            .to_str()
            .unwrap(),
        dir.path().join("keys/app_public_key.pem").to_str().unwrap(),
    );
    let (code, err, _) = check(&own);
    assert_eq!(code, Some(2));
    assert!(err.contains("own public key"), "{err}");

    let (code, err, _) = check(&text.replace("kind = \"serial\"", "kind = \"laser\""));
    assert_eq!(code, Some(2));
    assert!(err.contains("[scanner] kind"), "{err}");
}

#[test]
fn check_config_probe_tells_a_good_gateway_from_a_wrong_key_and_no_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let probe = |config: &Path| {
        let out = scanpay()
            .args(["check-config", "--probe"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = probe(&config);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("OK   gateway") && text.contains("signature verified"),
        "{text}"
    );

    let original = std::fs::read_to_string(&config).unwrap();
    let wrong_key = original.replace(
        "alipay_public_key_file = \"alipay_public_key.pem\"",
        "alipay_public_key_file = \"app_public_key.pem\"",
    );
    // The app's own key is refused at load; use a third, unrelated key instead.
    let stranger = scanpay::gateway::keys::PrivateKey::generate(1024, "x").unwrap();
    stranger
        .public_key()
        .write_pem(&sandbox.dir.join("stranger.pem"))
        .unwrap();
    let wrong_key = wrong_key.replace("app_public_key.pem", "stranger.pem");
    std::fs::write(&config, &wrong_key).unwrap();
    let (code, text) = probe(&config);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL gateway") && text.contains("wrong key"),
        "{text}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = original.replace(
        &format!("127.0.0.1:{}", sandbox.port),
        &format!("127.0.0.1:{port}"),
    );
    std::fs::write(&config, unreachable).unwrap();
    let (code, text) = probe(&config);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL gateway") && text.contains("not reachable"),
        "{text}"
    );
}

#[test]
fn the_sandbox_on_every_address_or_on_localhost_writes_configs_that_check_and_answer() {
    for listen in ["0.0.0.0:0", "localhost:0"] {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = SandboxProc::start_on(&dir.path().join("sbx"), listen);
        for written in ["scanpay.toml", "scanpay-ams.toml"] {
            let config = sandbox.dir.join(written);
            let text = std::fs::read_to_string(&config).unwrap();
            // A wildcard address is where the server listens, not one to connect to.
            assert!(
                !text.contains("0.0.0.0") && !text.contains("[::]"),
                "{listen} {written}: {text}"
            );
            let out = scanpay()
                .args(["check-config", "--probe"])
                .arg(&config)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{listen} {written}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("OK   gateway"),
                "{listen} {written}: {stdout}"
            );
        }
    }
    let out = scanpay()
        .args(["sandbox", "--listen", "no-such-host.invalid:8089", "--dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listen no-such-host.invalid:8089"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
