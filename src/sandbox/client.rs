//! The client configurations `scanpay sandbox` writes beside its keys: an Open Platform one and
//! an AMS one, each naming the app key's files and the sandbox's public key.

use std::path::Path;

use super::keys::SandboxKeys;

/// A client configuration for this sandbox, to be written into the key directory.
pub fn client_config(url: &str, app_id: &str, keys: &SandboxKeys) -> Option<String> {
    let app_private = keys.app_private_key_file.as_ref()?;
    let note = private_key_note(app_private, keys.app_private_key_pkcs1_file.as_deref());
    Some(format!(
        r#"# Written by `scanpay sandbox`: a client configuration for this sandbox.
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"

[gateway]
kind = "alipay-openapi"
url = "{url}"
app_id = "{app_id}"
{note}private_key_file = "{}"
alipay_public_key_file = "{}"
timeout_ms = 5000

[journal]
path = "journal.sqlite"

[watchdog]
sale_deadline_s = 20
inquiry_interval_ms = 1000
"#,
        file_name(app_private),
        file_name(&keys.gateway_public_key_file)
    ))
}

/// A certificate-mode Open Platform client configuration for this sandbox (started with
/// `--cert-mode`): the app key and the three certificate files, no Alipay public key.
pub fn cert_client_config(
    url: &str,
    app_id: &str,
    keys: &SandboxKeys,
    certs: &super::cert::CertFiles,
) -> Option<String> {
    let app_private = keys.app_private_key_file.as_ref()?;
    Some(format!(
        r#"# Written by `scanpay sandbox --cert-mode`: a certificate-mode client configuration
# for this sandbox. A rotated Alipay certificate is stored in alipay_cert_file (the old one
# kept beside it as <file>.<old SN>).
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"

[gateway]
kind = "alipay-openapi"
url = "{url}"
app_id = "{app_id}"
private_key_file = "{}"
app_cert_file = "{}"
alipay_cert_file = "{}"
alipay_root_cert_file = "{}"
timeout_ms = 5000

[journal]
path = "journal-cert.sqlite"

[watchdog]
sale_deadline_s = 20
inquiry_interval_ms = 1000
"#,
        file_name(app_private),
        file_name(&certs.app_cert_file),
        file_name(&certs.alipay_cert_file),
        file_name(&certs.root_cert_file),
    ))
}

/// An AMS client configuration for this sandbox, to be written into the key directory.
pub fn ams_client_config(origin: &str, client_id: &str, keys: &SandboxKeys) -> Option<String> {
    let app_private = keys.app_private_key_file.as_ref()?;
    let note = private_key_note(app_private, keys.app_private_key_pkcs1_file.as_deref());
    Some(format!(
        r#"# Written by `scanpay sandbox`: an Antom AMS client configuration for this sandbox.
[terminal]
id = "T0001"
currency = "USD"
max_amount = "5000.00"

[gateway]
kind = "alipay-ams"
url = "{origin}"
client_id = "{client_id}"
{note}private_key_file = "{}"
alipay_public_key_file = "{}"
timeout_ms = 5000
reference_merchant_id = "M0001"
merchant_name = "Sandbox Cafe"
merchant_mcc = "5812"
reference_store_id = "S0001"
store_name = "Sandbox Cafe Main St"

[journal]
path = "journal-ams.sqlite"

[watchdog]
sale_deadline_s = 20
inquiry_interval_ms = 1000
"#,
        file_name(app_private),
        file_name(&keys.gateway_public_key_file)
    ))
}

/// A client configuration with two gateways, one per wallet: Alipay codes through the Open
/// Platform, WeChat Pay codes through APIv3, both answered by this sandbox. Each gateway's
/// own pacing applies (no fixed inquiry interval).
pub fn dual_client_config(
    url: &str,
    origin: &str,
    app_id: &str,
    keys: &SandboxKeys,
) -> Option<String> {
    let app_private = keys.app_private_key_file.as_ref()?;
    Some(format!(
        r#"# Written by `scanpay sandbox`: Alipay and WeChat Pay through this sandbox, one
# gateway per wallet. The WeChat Pay merchant key is the same app key.
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"

[gateway.alipay]
kind = "alipay-openapi"
url = "{url}"
app_id = "{app_id}"
private_key_file = "{app}"
alipay_public_key_file = "{alipay_public}"
timeout_ms = 5000

[gateway.wechat]
url = "{origin}"
appid = "{appid}"
mchid = "{mchid}"
private_key_file = "{app}"
merchant_serial_no = "{serial}"
apiv3_key_file = "{apiv3}"
# Platform certificates are downloaded from /v3/certificates and kept fresh; or name them
# (platform_certificate_files), or use the WeChat Pay public key:
# wechatpay_public_key_file = "{public_key}"
# wechatpay_public_key_id = "{public_key_id}"
download_certificates = true
device_ip = "127.0.0.1"
deadline_s = 30
timeout_ms = 5000

[journal]
path = "journal-dual.sqlite"

[watchdog]
sale_deadline_s = 45
"#,
        app = file_name(app_private),
        alipay_public = file_name(&keys.gateway_public_key_file),
        appid = super::keys::WECHAT_APPID,
        mchid = super::keys::WECHAT_MCHID,
        serial = super::keys::WECHAT_MERCHANT_SERIAL,
        apiv3 = file_name(&keys.wechat.apiv3_key_file),
        public_key = file_name(&keys.wechat.public_key_file),
        public_key_id = keys.wechat.public_key_id,
    ))
}

/// The config sits beside the keys, and its paths resolve against its own directory.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The comment above `private_key_file`: the two files the app key is written to, and which
/// form each holds.
fn private_key_note(pkcs8: &Path, pkcs1: Option<&Path>) -> String {
    let Some(pkcs1) = pkcs1 else {
        return String::new();
    };
    format!(
        "# {} holds the app key as PKCS#8; {} holds the\n\
         # same key as PKCS#1 (BEGIN RSA PRIVATE KEY), for SDKs that read only that form.\n",
        file_name(pkcs8),
        file_name(pkcs1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{DEFAULT_APP_ID, DEFAULT_CLIENT_ID};

    #[test]
    fn the_client_configs_name_both_files_of_the_app_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
        let configs = [
            client_config("http://127.0.0.1:8089/gateway.do", DEFAULT_APP_ID, &keys),
            ams_client_config("http://127.0.0.1:8089", DEFAULT_CLIENT_ID, &keys),
        ];
        for config in configs {
            let config = config.unwrap();
            let comment = "# app_private_key.pem holds the app key as PKCS#8; \
                           app_private_key_pkcs1.pem holds the\n# same key as PKCS#1";
            assert!(config.contains(comment), "{config}");
            let parsed: toml::Table = toml::from_str(&config).unwrap();
            assert_eq!(
                parsed["gateway"]["private_key_file"].as_str(),
                Some("app_private_key.pem")
            );
        }
        // A merchant that brings its own key gets no config, and no key files of ours.
        let own = tempfile::tempdir().unwrap();
        let public = own.path().join("mine.pem");
        keys.app_public_key.write_pem(&public).unwrap();
        let theirs =
            SandboxKeys::load_or_create(&own.path().join("sbx"), 1024, Some(&public)).unwrap();
        assert!(theirs.app_private_key_pkcs1_file.is_none());
        assert!(!own.path().join("sbx/app_private_key_pkcs1.pem").exists());
        assert!(client_config("http://x", DEFAULT_APP_ID, &theirs).is_none());
    }
}
