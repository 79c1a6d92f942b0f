//! The sandbox's key material: its own ("Alipay") key that signs its answers, and the merchant
//! app's key pair whose public half verifies requests; generated once into a directory, then
//! reused.

use std::path::{Path, PathBuf};

use crate::gateway::keys::{KeyError, PrivateKey, PublicKey};

/// Key material of a sandbox: its own ("Alipay") key, and the merchant app's key pair.
pub struct SandboxKeys {
    pub gateway_key: PrivateKey,
    pub app_public_key: PublicKey,
    /// Present when the sandbox generated the app key (so it can write a client config).
    pub app_private_key_file: Option<PathBuf>,
    /// The same app key as PKCS#1 (`RSA PRIVATE KEY`), for SDKs that read only that form
    /// (Alipay's Python SDKs); `app_private_key_file` is PKCS#8.
    pub app_private_key_pkcs1_file: Option<PathBuf>,
    pub gateway_public_key_file: PathBuf,
    /// WeChat Pay: the platform key and certificate, the public-key form of the same key,
    /// the APIv3 key. The merchant API key is the app key above.
    pub wechat: WechatKeys,
}

/// The sandbox's WeChat Pay key material (docs/protocol.md §15.4).
pub struct WechatKeys {
    pub platform_key: PrivateKey,
    pub cert_serial: String,
    pub cert_pem: String,
    pub cert_file: PathBuf,
    /// The same platform key as a "WeChat Pay public key", with its id.
    pub public_key_id: String,
    pub public_key_file: PathBuf,
    pub apiv3_key: String,
    pub apiv3_key_file: PathBuf,
}

/// The merchant API certificate serial the sandbox expects (the app key is the merchant key).
pub const WECHAT_MERCHANT_SERIAL: &str = "5A1B2C3D4E5F60718293A4B5C6D7E8F901234567";
/// The merchant number and AppID the sandbox expects.
pub const WECHAT_MCHID: &str = "1900000109";
pub const WECHAT_APPID: &str = "wx8888888888888888";
/// The id of the sandbox's "WeChat Pay public key".
pub const WECHAT_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000001092026010100000000000001";
/// How long the sandbox's platform certificate is valid.
const WECHAT_CERT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(5 * 365 * 86_400);

fn wechat_keys(dir: &Path, bits: usize) -> Result<WechatKeys, KeyError> {
    use crate::gateway::wechat_pay::cert;
    let generate_err = |e: String| KeyError::Generate(e);
    let platform_key = load_or_generate(
        &dir.join("wechat_platform_key.pem"),
        bits,
        "sandbox WeChat Pay platform key",
    )?;
    let cert_file = dir.join("wechat_platform_cert.pem");
    let existing = std::fs::read_to_string(&cert_file)
        .ok()
        .and_then(|pem| {
            cert::parse_pem(&pem, "sandbox certificate")
                .ok()
                .map(|k| (pem, k))
        })
        .filter(|(_, k)| k.key.same_key(&platform_key.public_key()));
    let (cert_pem, cert_serial) = match existing {
        Some((pem, k)) => (pem, k.id),
        None => {
            // A positive DER integer: the first byte below 0x80.
            let serial = format!("5C{:030X}", rand::random::<u128>() >> 8);
            let pem = cert::self_signed(&platform_key, &serial, WECHAT_CERT_VALIDITY)
                .map_err(generate_err)?;
            let k = cert::parse_pem(&pem, "sandbox certificate").map_err(generate_err)?;
            write_file_public(&cert_file, &pem)?;
            (pem, k.id)
        }
    };
    let public_key_file = dir.join("wechat_pay_public_key.pem");
    platform_key.public_key().write_pem(&public_key_file)?;
    let apiv3_key_file = dir.join("wechat_apiv3_key");
    let apiv3_key = match crate::gateway::keys::load_secret(&apiv3_key_file) {
        Ok(k) if k.len() == 32 => k.to_string(),
        _ => {
            use rand::Rng;
            const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let mut rng = rand::thread_rng();
            let key: String = (0..32)
                .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
                .collect();
            crate::gateway::keys::write_secret(&apiv3_key_file, &key)?;
            key
        }
    };
    Ok(WechatKeys {
        platform_key,
        cert_serial,
        cert_pem,
        cert_file,
        public_key_id: WECHAT_PUBLIC_KEY_ID.to_string(),
        public_key_file,
        apiv3_key,
        apiv3_key_file,
    })
}

fn write_file_public(path: &Path, text: &str) -> Result<(), KeyError> {
    std::fs::write(path, text).map_err(|source| KeyError::Write {
        file: path.display().to_string(),
        source,
    })
}

impl SandboxKeys {
    /// Loads the keys from `dir`, generating (and writing) any that are missing. With
    /// `app_public_key`, the merchant brings its own key and no app key is generated. Each
    /// private key is also written as PKCS#1 (`…_pkcs1.pem`), again on every start, so the two
    /// files of a key never differ.
    pub fn load_or_create(
        dir: &Path,
        bits: usize,
        app_public_key: Option<&Path>,
    ) -> Result<SandboxKeys, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
            file: dir.display().to_string(),
            source,
        })?;
        let gateway_private = dir.join("alipay_private_key.pem");
        let gateway_public = dir.join("alipay_public_key.pem");
        let gateway_key = load_or_generate(&gateway_private, bits, "sandbox gateway key")?;
        gateway_key.write_pkcs1_pem(&dir.join("alipay_private_key_pkcs1.pem"))?;
        gateway_key.public_key().write_pem(&gateway_public)?;
        let (app_public_key, app_private_key_file, app_private_key_pkcs1_file) =
            match app_public_key {
                Some(path) => (PublicKey::load(path)?, None, None),
                None => {
                    let app_private = dir.join("app_private_key.pem");
                    let app_pkcs1 = dir.join("app_private_key_pkcs1.pem");
                    let key = load_or_generate(&app_private, bits, "sandbox app key")?;
                    key.write_pkcs1_pem(&app_pkcs1)?;
                    key.public_key()
                        .write_pem(&dir.join("app_public_key.pem"))?;
                    (key.public_key(), Some(app_private), Some(app_pkcs1))
                }
            };
        let wechat = wechat_keys(dir, bits)?;
        Ok(SandboxKeys {
            wechat,
            gateway_key,
            app_public_key,
            app_private_key_file,
            app_private_key_pkcs1_file,
            gateway_public_key_file: gateway_public,
        })
    }
}

fn load_or_generate(path: &Path, bits: usize, what: &str) -> Result<PrivateKey, KeyError> {
    if path.exists() {
        PrivateKey::load(path)
    } else {
        let key = PrivateKey::generate(bits, what)?;
        key.write_pem(path)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_private_key_is_also_written_as_pkcs1() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
        let pkcs8_file = keys.app_private_key_file.clone().unwrap();
        let pkcs1_file = keys.app_private_key_pkcs1_file.clone().unwrap();
        assert_eq!(pkcs8_file, dir.path().join("app_private_key.pem"));
        assert_eq!(pkcs1_file, dir.path().join("app_private_key_pkcs1.pem"));
        let message = b"app_id=2021000000000001&method=alipay.trade.pay";
        for (pkcs8_file, pkcs1_file) in [
            (pkcs8_file.clone(), pkcs1_file.clone()),
            (
                dir.path().join("alipay_private_key.pem"),
                dir.path().join("alipay_private_key_pkcs1.pem"),
            ),
        ] {
            let text = std::fs::read_to_string(&pkcs1_file).unwrap();
            assert!(
                text.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
                "{}",
                pkcs1_file.display()
            );
            let text = std::fs::read_to_string(&pkcs8_file).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let mode = std::fs::metadata(&pkcs1_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", pkcs1_file.display());
            // Signatures are deterministic (PKCS#1 v1.5): the same key signs the same bytes.
            let pkcs8 = PrivateKey::load(&pkcs8_file).unwrap();
            let pkcs1 = PrivateKey::load(&pkcs1_file).unwrap();
            assert_eq!(pkcs8.sign_sha256(message), pkcs1.sign_sha256(message));
        }
        let app = PrivateKey::load(&pkcs1_file).unwrap();
        assert!(
            keys.app_public_key
                .verify_sha256(message, &app.sign_sha256(message))
        );
        // The next start reuses the key, and the PKCS#1 file still holds the same one.
        let again = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
        assert!(again.app_public_key.same_key(&keys.app_public_key));
        let reloaded = PrivateKey::load(&pkcs1_file).unwrap();
        assert_eq!(reloaded.sign_sha256(message), app.sign_sha256(message));
    }
}
