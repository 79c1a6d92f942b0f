//! Keys changed while the daemon runs (docs/operations.md "Changing keys"): `scanpay keys
//! rotate` against `scanpay sandbox` with a real daemon, SIGHUP with a broken file, and a
//! rotation whose key the gateway does not know. Real processes, real signatures, a real
//! journal file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::procs::{
    Daemon, SandboxProc, assert_journal_and_ledger_agree, scanpay, wait_for,
};
use scanpay::gateway::keys::PrivateKey;
use scanpay::journal::Journal;
use scanpay::state::SaleState;
use serde_json::Value;

/// A sandbox and a daemon on its Open Platform config with the API on a socket.
fn till(dir: &Path) -> (SandboxProc, PathBuf, Daemon) {
    till_on(dir, "scanpay.toml", &[])
}

/// [`till`] on one of the configs the sandbox writes, the sandbox started with `flags`.
fn till_on(dir: &Path, written: &str, flags: &[&str]) -> (SandboxProc, PathBuf, Daemon) {
    let sbx = SandboxProc::start_with(dir, "127.0.0.1:0", flags);
    let config = sbx.config_from(written);
    let text = std::fs::read_to_string(&config).unwrap() + "\n[api]\nsocket = \"api.sock\"\n";
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config, None);
    let socket = dir.join("api.sock");
    let end = Instant::now() + Duration::from_secs(15);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < end, "no API: {}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    (sbx, config, daemon)
}

/// A new 2048-bit merchant key in `dir`, mode 0600.
fn new_key(dir: &Path, name: &str) -> (PathBuf, PrivateKey) {
    let key = PrivateKey::generate(2048, name).unwrap();
    let path = dir.join(name);
    key.write_pem(&path).unwrap();
    (path, key)
}

/// Uploads `key`'s public half to the sandbox, as the merchant does in the provider's console.
fn upload(sbx: &SandboxProc, key: &PrivateKey, version: u32) {
    let public = sbx.dir.join(format!("uploaded-{version}.pem"));
    key.public_key().write_pem(&public).unwrap();
    upload_pem(sbx, &std::fs::read(&public).unwrap(), version);
}

fn upload_pem(sbx: &SandboxProc, pem: &[u8], version: u32) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", sbx.port)).unwrap();
    write!(
        stream,
        "POST /_sandbox/keys?key_version={version} HTTP/1.0\r\nContent-Length: {}\r\n\r\n",
        pem.len()
    )
    .unwrap();
    stream.write_all(pem).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}

fn rotate(config: &Path, key: &Path, more: &[&str]) -> Output {
    scanpay()
        .args(["keys", "rotate", "--config"])
        .arg(config)
        .arg("--private-key")
        .arg(key)
        .args(more)
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

fn health(socket: &Path) -> Value {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .write_all(b"GET /v1/health HTTP/1.0\r\nHost: scanpay\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// Waits until `n` sales are final.
fn wait_final(daemon: &Daemon, journal: &Path, n: usize) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(j) = Journal::open_read_only(journal) {
            let sales = j.sales(&Default::default()).unwrap_or_default();
            if sales.len() == n && sales.iter().all(|s| s.state.is_final()) {
                return;
            }
        }
        assert!(
            Instant::now() < end,
            "{n} sales not final: {}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The key each sale's attempts were signed with, oldest sale first.
fn keys_by_sale(journal: &Path) -> Vec<Option<String>> {
    let j = Journal::open_read_only(journal).unwrap();
    let mut sales = j.sales(&Default::default()).unwrap();
    sales.sort_by_key(|s| s.created_at);
    sales
        .iter()
        .flat_map(|s| j.attempts(&s.id).unwrap())
        .map(|a| a.signing_key)
        .collect()
}

#[test]
fn sales_before_during_and_after_a_rotation_are_paid_and_the_journal_names_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, config, mut daemon) = till(dir.path());
    let journal = sbx.journal();
    let old = PrivateKey::load(&dir.path().join("app_private_key.pem")).unwrap();
    let old_label = old.public_key().fingerprint();

    daemon.feed("10.00\n286000000000000000\n");
    wait_final(&daemon, &journal, 1);
    let (new_path, new) = new_key(dir.path(), "app_private_key-2.pem");
    upload(&sbx, &new, 2);
    // In doubt across the rotation: the customer confirms about 3 s after the scan.
    daemon.feed("11.00\n286000000000000003\n");
    wait_for(&journal, Duration::from_secs(10), "sale 2 sent", |j| {
        j.open_attempts().is_ok_and(|a| a.len() == 1)
    });
    let out = rotate(&config, &new_path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let open = Journal::open_read_only(&journal)
        .unwrap()
        .open_attempts()
        .unwrap();
    assert_eq!(open.len(), 1, "sale 2 ended before the rotation");
    let said = text(&out);
    let new_label = new.public_key().fingerprint();
    assert!(said.contains(&new_label), "{said}");
    assert!(said.contains("the running daemon reloaded"), "{said}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("app_private_key-2.pem"), "{written}");
    // The previous file is kept beside it.
    let backups: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bak"))
        .collect();
    assert_eq!(backups.len(), 1);

    daemon.feed("12.00\n286000000000000100\n");
    wait_final(&daemon, &journal, 3);
    let states = assert_journal_and_ledger_agree(&journal, &sbx.ledger());
    assert_eq!(states, [SaleState::Paid; 3]);
    assert_eq!(
        keys_by_sale(&journal),
        [
            Some(old_label.clone()),
            Some(old_label.clone()),
            Some(new_label.clone())
        ]
    );
    let h = health(&dir.path().join("api.sock"));
    assert_eq!(h["reload"]["result"], "applied", "{h}");
    assert_eq!(h["reload"]["signing_keys"]["alipay"], new_label.as_str());
    // `journal show` names the key too.
    let sale3 = {
        let j = Journal::open_read_only(&journal).unwrap();
        let mut sales = j.sales(&Default::default()).unwrap();
        sales.sort_by_key(|s| s.created_at);
        sales[2].id.clone()
    };
    let shown = scanpay()
        .args(["journal", "show", "--config"])
        .arg(&config)
        .arg(&sale3)
        .output()
        .unwrap();
    assert!(text(&shown).contains(&new_label), "{}", text(&shown));
    daemon.terminate();
}

#[test]
fn an_antom_key_version_is_rotated_to_and_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, config, mut daemon) = till_on(dir.path(), "scanpay-ams.toml", &[]);
    let journal = scanpay::config::Config::load(&config).unwrap().journal.path;
    daemon.feed("10.00\n286000000000000000\n");
    wait_final(&daemon, &journal, 1);
    let (new_path, new) = new_key(dir.path(), "merchant_private_key-3.pem");
    // Uploaded under version 3; the sandbox looks a request's key up by its keyVersion.
    upload(&sbx, &new, 3);
    let out = rotate(&config, &new_path, &["--key-version", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = rotate(&config, &new_path, &["--key-version", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("key_version = 3")
    );
    daemon.feed("12.00\n286000000000000100\n");
    wait_final(&daemon, &journal, 2);
    assert_eq!(
        assert_journal_and_ledger_agree(&journal, &sbx.ledger()),
        [SaleState::Paid; 2]
    );
    let keys = keys_by_sale(&journal);
    assert!(
        keys[0]
            .as_deref()
            .unwrap()
            .starts_with("key_version 1 sha256:"),
        "{keys:?}"
    );
    assert_eq!(
        keys[1].as_deref(),
        Some(format!("key_version 3 {}", new.public_key().fingerprint()).as_str())
    );
    daemon.terminate();
}

#[test]
fn a_certificate_mode_app_rotates_to_a_new_key_and_its_certificate() {
    use scanpay::gateway::alipay_openapi::cert;
    let dir = tempfile::tempdir().unwrap();
    let (sbx, config, mut daemon) = till_on(dir.path(), "scanpay-cert.toml", &["--cert-mode"]);
    let journal = scanpay::config::Config::load(&config).unwrap().journal.path;
    daemon.feed("10.00\n286000000000000000\n");
    wait_final(&daemon, &journal, 1);
    // The console issues the app certificate for the new key, under the same root.
    let (new_path, new) = new_key(dir.path(), "app_private_key-2.pem");
    let root_key = PrivateKey::load(&dir.path().join("sandbox_root_ca_key.pem")).unwrap();
    let root = cert::load(&dir.path().join("alipayRootCert.crt"))
        .unwrap()
        .remove(0);
    let issued = cert::issue(
        &new,
        "CN=2021000000000001,OU=Alipay,O=scanpay sandbox merchant,C=CN",
        Some((&root_key, &root)),
        99,
        Duration::from_secs(365 * 86_400),
    )
    .unwrap();
    let cert_file = dir.path().join("appCertPublicKey-2.crt");
    std::fs::write(&cert_file, cert::to_pem(&issued).unwrap()).unwrap();
    // Without --app-cert the old certificate is not the new key's: refused, nothing changed.
    let before = std::fs::read(&config).unwrap();
    let out = rotate(&config, &new_path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("app_cert_file"), "{}", text(&out));
    assert_eq!(std::fs::read(&config).unwrap(), before);
    // Not uploaded yet: the sandbox refuses its SN at the door.
    let out = rotate(
        &config,
        &new_path,
        &["--app-cert", cert_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(std::fs::read(&config).unwrap(), before);
    upload_pem(&sbx, &std::fs::read(&cert_file).unwrap(), 2);
    let out = rotate(
        &config,
        &new_path,
        &["--app-cert", cert_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    daemon.feed("12.00\n286000000000000100\n");
    wait_final(&daemon, &journal, 2);
    assert_eq!(
        assert_journal_and_ledger_agree(&journal, &sbx.ledger()),
        [SaleState::Paid; 2]
    );
    let keys = keys_by_sale(&journal);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(
        keys[1].as_deref(),
        Some(format!("app_cert_sn {}", cert::cert_sn(&issued)).as_str())
    );
    daemon.terminate();
}

#[test]
fn a_rotation_the_gateway_refuses_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, config, mut daemon) = till(dir.path());
    let before = std::fs::read(&config).unwrap();
    let listing = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("journal.sqlite"))
            .collect();
        names.sort();
        names
    };
    // Never uploaded: the sandbox refuses what it signs.
    let (new_path, _) = new_key(dir.path(), "app_private_key-unknown.pem");
    let files = listing(dir.path());
    let out = rotate(&config, &new_path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert_eq!(std::fs::read(&config).unwrap(), before);
    assert_eq!(listing(dir.path()), files);

    // A key file others can read is refused before anything is sent.
    std::fs::set_permissions(
        &new_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = rotate(&config, &new_path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("app_private_key-unknown.pem"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&config).unwrap(), before);
    // A key version on an Open Platform gateway is a usage error.
    let out = rotate(&config, &new_path, &["--key-version", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(std::fs::read(&config).unwrap(), before);

    // The daemon still signs with its key.
    daemon.feed("10.00\n286000000000000000\n");
    wait_final(&daemon, &sbx.journal(), 1);
    assert_eq!(
        assert_journal_and_ledger_agree(&sbx.journal(), &sbx.ledger()),
        [SaleState::Paid]
    );
    daemon.terminate();
}

#[test]
fn sighup_with_a_broken_file_keeps_the_daemon_on_the_old_one_and_health_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, config, mut daemon) = till(dir.path());
    let socket = dir.path().join("api.sock");
    let good = std::fs::read_to_string(&config).unwrap();
    let broken = good.replace("app_private_key.pem", "missing_key.pem");
    assert_ne!(broken, good);
    std::fs::write(&config, &broken).unwrap();
    // A sale in doubt while the reload is refused.
    daemon.feed("10.00\n286000000000000003\n");
    wait_for(&sbx.journal(), Duration::from_secs(10), "sale sent", |j| {
        j.open_attempts().is_ok_and(|a| a.len() == 1)
    });
    let pid = nix::unistd::Pid::from_raw(daemon.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = health(&socket);
        if !h["reload"].is_null() {
            break h;
        }
        assert!(Instant::now() < end, "{h}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(h["reload"]["result"], "refused", "{h}");
    assert!(
        h["reload"]["error"]
            .as_str()
            .unwrap()
            .contains("missing_key.pem"),
        "{h}"
    );
    assert!(
        h["reasons"]
            .as_array()
            .unwrap()
            .contains(&Value::from("reload_refused")),
        "{h}"
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon stopped"
    );
    // The daemon's stderr reaches the test through a reader thread: give it a moment.
    let end = Instant::now() + Duration::from_secs(5);
    while !daemon.stderr().contains("configuration not reloaded") {
        assert!(Instant::now() < end, "{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = scanpay()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(shown.status.code(), Some(1), "{}", text(&shown));
    assert!(
        text(&shown).contains("RELOAD REFUSED") && text(&shown).contains("missing_key.pem"),
        "{}",
        text(&shown)
    );
    wait_final(&daemon, &sbx.journal(), 1);
    daemon.feed("11.00\n286000000000000000\n");
    wait_final(&daemon, &sbx.journal(), 2);

    // Fixed and reloaded: health is clear again.
    std::fs::write(&config, &good).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&socket);
        if h["reload"]["result"] == "applied" {
            assert!(
                !h["reasons"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from("reload_refused")),
                "{h}"
            );
            break;
        }
        assert!(Instant::now() < end, "{h}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        assert_journal_and_ledger_agree(&sbx.journal(), &sbx.ledger()),
        [SaleState::Paid, SaleState::Paid]
    );
    daemon.terminate();
}
