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
        Ok(SandboxKeys {
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
