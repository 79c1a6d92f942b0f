//! RSA keys and SHA256withRSA (PKCS#1 v1.5) signatures, shared by both Alipay gateways.
//!
//! Keys come as PEM (PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, SPKI `PUBLIC KEY`, PKCS#1
//! `RSA PUBLIC KEY`) or as the bare base64 DER line Alipay's console hands out. A private key
//! file readable by group or others is refused. Key material is never logged: the types print
//! only where they came from.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{file}: cannot read the key: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: not a usable {what}: expected PEM (PKCS#1 or PKCS#8{spki}) or the bare base64 line from the Alipay console"
    )]
    Format {
        file: String,
        what: &'static str,
        spki: &'static str,
    },
    #[error(
        "{file}: the private key is readable by other users (mode {mode:03o}); run `chmod 600 {file}` and make it owned by the scanpay user"
    )]
    Permissions { file: String, mode: u32 },
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("cannot write {file}: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// A private RSA key (zeroed on drop by the `rsa` crate).
#[derive(Clone)]
pub struct PrivateKey {
    key: RsaPrivateKey,
    source: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
    source: String,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.source)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.source)
    }
}

impl PrivateKey {
    /// Loads a private key file, refusing one that others may read.
    pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
        let file = path.display().to_string();
        check_private_mode(path, &file)?;
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    file: file.clone(),
                    source,
                })?,
            );
        let key = parse_private(&text).ok_or(KeyError::Format {
            file: file.clone(),
            what: "RSA private key",
            spki: "",
        })?;
        Ok(PrivateKey { key, source: file })
    }

    /// Parses key text (PEM or bare base64); `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Option<PrivateKey> {
        parse_private(text).map(|key| PrivateKey {
            key,
            source: source.to_string(),
        })
    }

    pub fn generate(bits: usize, source: &str) -> Result<PrivateKey, KeyError> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), bits)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(PrivateKey {
            key,
            source: source.to_string(),
        })
    }

    /// SHA256withRSA (RSASSA-PKCS1-v1_5), as Alipay's `RSA2` and AMS's `RSA256`.
    pub fn sign_sha256(&self, message: &[u8]) -> Vec<u8> {
        let digest = Sha256::digest(message);
        // Signing with a valid key and a 32-byte digest cannot fail for keys ≥ 512 bits;
        // an empty signature would simply fail verification on the other side.
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap_or_default()
    }

    pub fn sign_sha256_base64(&self, message: &[u8]) -> String {
        STANDARD.encode(self.sign_sha256(message))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.to_public_key(),
            source: format!("public part of {}", self.source),
        }
    }

    /// Writes the key as PKCS#8 PEM with mode 0600.
    pub fn write_pem(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        write_file(path, pem.as_bytes(), 0o600)
    }

    /// Writes the key as PKCS#1 PEM (`RSA PRIVATE KEY`) with mode 0600, for tools that read
    /// only that form (Alipay's Python SDKs).
    pub fn write_pkcs1_pem(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self
            .key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        write_file(path, pem.as_bytes(), 0o600)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            file: file.clone(),
            source,
        })?;
        PublicKey::parse(&text, &file).ok_or(KeyError::Format {
            file,
            what: "RSA public key",
            spki: " or X.509 SubjectPublicKeyInfo",
        })
    }

    pub fn parse(text: &str, source: &str) -> Option<PublicKey> {
        parse_public(text).map(|key| PublicKey {
            key,
            source: source.to_string(),
        })
    }

    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest = Sha256::digest(message);
        self.key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
            .is_ok()
    }

    /// Verifies a base64 signature; malformed base64 simply does not verify.
    pub fn verify_sha256_base64(&self, message: &[u8], signature_b64: &str) -> bool {
        match STANDARD.decode(signature_b64.trim()) {
            Ok(sig) => self.verify_sha256(message, &sig),
            Err(_) => false,
        }
    }

    /// Whether two keys are the same key (the classic "configured our own public key
    /// instead of Alipay's" mistake).
    pub fn same_key(&self, other: &PublicKey) -> bool {
        self.key.n() == other.key.n() && self.key.e() == other.key.e()
    }

    pub fn write_pem(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self
            .key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        write_file(path, pem.as_bytes(), 0o644)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

fn parse_private(text: &str) -> Option<RsaPrivateKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return RsaPrivateKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| RsaPrivateKey::from_pkcs1_pem(text).ok());
    }
    let der = Zeroizing::new(bare_base64(text)?);
    RsaPrivateKey::from_pkcs8_der(&der)
        .ok()
        .or_else(|| RsaPrivateKey::from_pkcs1_der(&der).ok())
}

fn parse_public(text: &str) -> Option<RsaPublicKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return RsaPublicKey::from_public_key_pem(text)
            .ok()
            .or_else(|| RsaPublicKey::from_pkcs1_pem(text).ok());
    }
    let der = bare_base64(text)?;
    RsaPublicKey::from_public_key_der(&der)
        .ok()
        .or_else(|| RsaPublicKey::from_pkcs1_der(&der).ok())
}

/// Bare base64, possibly wrapped over several lines.
fn bare_base64(text: &str) -> Option<Vec<u8>> {
    let joined: String = text.split_whitespace().collect();
    STANDARD.decode(joined).ok()
}

#[cfg(unix)]
fn check_private_mode(path: &Path, file: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
        file: file.to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            file: file.to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path, _file: &str) -> Result<(), KeyError> {
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    let err = |source| KeyError::Write {
        file: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Resolves a key path from a config file against the config file's directory.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/vectors/protocol-test-vectors.json"
        ))
        .unwrap()
    }

    fn pem(label: &str, b64: &str) -> String {
        let body: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    }

    #[test]
    fn every_private_key_form_gives_the_same_key() {
        let v = vectors();
        let pkcs8 = v["computed_keypair"]["private_pkcs8_der_b64"]
            .as_str()
            .unwrap();
        let pkcs1 = v["computed_keypair"]["private_pkcs1_der_b64"]
            .as_str()
            .unwrap();
        let forms = [
            pkcs8.to_string(),
            pkcs1.to_string(),
            pem("PRIVATE KEY", pkcs8),
            pem("RSA PRIVATE KEY", pkcs1),
            // Bare base64 wrapped over lines, with CRLF, as pasted from a console.
            pem("X", pkcs8)
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .join("\r\n"),
        ];
        let keys: Vec<PrivateKey> = forms
            .iter()
            .map(|f| PrivateKey::parse(f, "test").unwrap_or_else(|| panic!("{f}")))
            .collect();
        for k in &keys {
            assert!(k.public_key().same_key(&keys[0].public_key()));
        }
    }

    #[test]
    fn every_public_key_form_gives_the_same_key() {
        let v = vectors();
        let spki = v["computed_keypair"]["public_spki_der_b64"]
            .as_str()
            .unwrap();
        let a = PublicKey::parse(spki, "bare").unwrap();
        let b = PublicKey::parse(&pem("PUBLIC KEY", spki), "pem").unwrap();
        assert!(a.same_key(&b));
        let private = PrivateKey::parse(
            v["computed_keypair"]["private_pkcs8_der_b64"]
                .as_str()
                .unwrap(),
            "k",
        )
        .unwrap();
        assert!(a.same_key(&private.public_key()));
    }

    #[test]
    fn garbage_is_not_a_key() {
        for text in [
            "",
            "hello",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "AAAA",
        ] {
            assert!(PrivateKey::parse(text, "x").is_none(), "{text}");
            assert!(PublicKey::parse(text, "x").is_none(), "{text}");
        }
    }

    #[test]
    fn files_name_themselves_in_errors_and_loose_modes_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let v = vectors();
        let path = dir.path().join("app_private.pem");
        std::fs::write(
            &path,
            pem(
                "PRIVATE KEY",
                v["computed_keypair"]["private_pkcs8_der_b64"]
                    .as_str()
                    .unwrap(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = PrivateKey::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && err.contains("app_private.pem"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        PrivateKey::load(&path).unwrap();

        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a key").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = PrivateKey::load(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.pem") && err.contains("PKCS#8"), "{err}");
        let err = PublicKey::load(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }

    #[test]
    fn sign_and_verify_round_trip_and_tampering_fails() {
        let v = vectors();
        let key = PrivateKey::parse(
            v["computed_keypair"]["private_pkcs8_der_b64"]
                .as_str()
                .unwrap(),
            "k",
        )
        .unwrap();
        let sig = key.sign_sha256_base64(b"hello");
        assert!(key.public_key().verify_sha256_base64(b"hello", &sig));
        assert!(!key.public_key().verify_sha256_base64(b"hellO", &sig));
        assert!(
            !key.public_key()
                .verify_sha256_base64(b"hello", "not base64!")
        );
    }

    #[test]
    fn generated_keys_write_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(1024, "gen").unwrap();
        key.write_pem(&dir.path().join("k.pem")).unwrap();
        key.public_key()
            .write_pem(&dir.path().join("p.pem"))
            .unwrap();
        let back = PrivateKey::load(&dir.path().join("k.pem")).unwrap();
        let public = PublicKey::load(&dir.path().join("p.pem")).unwrap();
        assert!(back.public_key().same_key(&public));
    }
}
