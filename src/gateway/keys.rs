//! RSA keys and SHA256withRSA (PKCS#1 v1.5) signatures, shared by both Alipay gateways.
//!
//! Keys come as PEM (PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, SPKI `PUBLIC KEY`, PKCS#1
//! `RSA PUBLIC KEY`) or as the bare base64 DER line Alipay's console hands out. A private key
//! file readable by group or others is refused. Key material is never logged: the types print
//! only where they came from.
//!
//! The `rsa` crate parses, converts and generates keys. Signing runs in AWS-LC (`aws-lc-rs`),
//! whose private-key operation is constant-time and, on CPUs with AVX-512 IFMA, as fast as
//! OpenSSL's (see SECURITY.md); verification runs in `ring`. The `rsa` crate signs and
//! verifies only with keys those refuse (shorter than 2048 bits, as tests make).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
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

/// A private RSA key (the `rsa` crate's copy is zeroed on drop; AWS-LC clears its own when
/// freed).
#[derive(Clone)]
pub struct PrivateKey {
    key: RsaPrivateKey,
    /// The same key in AWS-LC, which signs with it; `None` for a key it does not take.
    signer: Option<Arc<RsaKeyPair>>,
    source: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
    /// The key as PKCS#1 `RSAPublicKey` DER, the form `ring` verifies with; `None` when `ring`
    /// does not take the key.
    ring_der: Option<Arc<[u8]>>,
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
        let key = PrivateKey::new(key, file);
        if key.signer.is_none() {
            tracing::warn!(
                file = %key.source,
                "this private key is not a 2048- to 4096-bit RSA key with exponent 65537: it signs with a slower implementation that is not constant-time; generate a 2048-bit key"
            );
        }
        Ok(key)
    }

    /// Parses key text (PEM or bare base64); `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Option<PrivateKey> {
        parse_private(text).map(|key| PrivateKey::new(key, source.to_string()))
    }

    /// Generates a key with the `rsa` crate (sandbox and test keys).
    pub fn generate(bits: usize, source: &str) -> Result<PrivateKey, KeyError> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), bits)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(PrivateKey::new(key, source.to_string()))
    }

    fn new(key: RsaPrivateKey, source: String) -> PrivateKey {
        PrivateKey {
            signer: fast_signer(&key).map(Arc::new),
            key,
            source,
        }
    }

    /// SHA256withRSA (RSASSA-PKCS1-v1_5), as Alipay's `RSA2` and AMS's `RSA256`.
    ///
    /// PKCS#1 v1.5 signatures are deterministic: AWS-LC, `ring` and the `rsa` crate give the
    /// same bytes for the same key and message.
    pub fn sign_sha256(&self, message: &[u8]) -> Vec<u8> {
        if let Some(signer) = &self.signer {
            let mut signature = vec![0u8; signer.public_modulus_len()];
            // AWS-LC fails only on a wrong buffer length (not here) or on a key whose parts do
            // not fit together, which the `rsa` crate rejects when parsing; the `rsa` crate
            // below still answers then.
            if signer
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .is_ok()
            {
                return signature;
            }
        }
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
        PublicKey::new(
            self.key.to_public_key(),
            format!("public part of {}", self.source),
        )
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

    /// The key itself, for building a certificate around it (the sandbox's WeChat Pay
    /// platform certificate).
    pub fn rsa(&self) -> &RsaPrivateKey {
        &self.key
    }
}

/// A secret that is not a key (the WeChat Pay APIv3 key): read from a file that others may
/// not read, as private keys are, trimmed of the line end an editor adds. Zeroed on drop.
pub fn load_secret(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let file = path.display().to_string();
    check_private_mode(path, &file)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| KeyError::Read { file, source })?,
    );
    Ok(Zeroizing::new(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// Writes a secret with mode 0600 (the sandbox's APIv3 key).
pub fn write_secret(path: &Path, secret: &str) -> Result<(), KeyError> {
    write_file(path, secret.as_bytes(), 0o600)
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
        parse_public(text).map(|key| PublicKey::new(key, source.to_string()))
    }

    /// A key from its SubjectPublicKeyInfo DER (the key inside an X.509 certificate).
    pub fn from_spki_der(der: &[u8], source: &str) -> Option<PublicKey> {
        RsaPublicKey::from_public_key_der(der)
            .ok()
            .map(|key| PublicKey::new(key, source.to_string()))
    }

    fn new(key: RsaPublicKey, source: String) -> PublicKey {
        PublicKey {
            ring_der: ring_public_der(&key),
            key,
            source,
        }
    }

    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        if let Some(der) = &self.ring_der {
            return UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
                .verify(message, signature)
                .is_ok();
        }
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

    /// A short name of the key that a person can compare: `sha256:` and the first 16 hex
    /// digits of the SHA-256 of its SubjectPublicKeyInfo DER (what `openssl pkey -pubin
    /// -outform DER | sha256sum` prints). It names a key, it proves nothing.
    pub fn fingerprint(&self) -> String {
        let der = self
            .key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let digest = Sha256::digest(der);
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
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

/// The key in AWS-LC, from its PKCS#8 DER, for the keys `ring` signed with before it: 2048 to
/// 4096 bits, a public exponent of 65537 or more, two primes. Other keys (tests generate
/// 1024-bit ones) keep signing with the `rsa` crate, as they did.
fn fast_signer(key: &RsaPrivateKey) -> Option<RsaKeyPair> {
    let takes = (2048..=4096).contains(&key.n().bits())
        && *key.e() >= rsa::BigUint::from(65_537u32)
        && key.e().bits() <= 33
        && key.primes().len() == 2;
    if !takes {
        return None;
    }
    // The DER is a `SecretDocument`, zeroed on drop.
    let der = key.to_pkcs8_der().ok()?;
    RsaKeyPair::from_pkcs8(der.as_bytes()).ok()
}

/// The PKCS#1 `RSAPublicKey` DER that `ring` verifies with, or `None` for a key that
/// `RSA_PKCS1_2048_8192_SHA256` does not take: `ring` wants an odd modulus of 256 to 1024
/// bytes and an odd public exponent of 3 to 2^33 - 1. Other keys (tests generate 1024-bit
/// ones) keep verifying with the `rsa` crate, so every key verifies as it did before `ring`
/// did the work. Checked here because `ring` parses the key only when verifying, and answers
/// a refused key and a bad signature with the same error.
fn ring_public_der(key: &RsaPublicKey) -> Option<Arc<[u8]>> {
    let n = key.n().to_bytes_be();
    let e = key.e().to_bytes_be();
    let odd = |be: &[u8]| be.last().is_some_and(|b| b & 1 == 1);
    let e_value = (e.len() <= 8).then(|| e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))?;
    // Bits, not bytes: a 256-byte modulus may still be under 2048 bits.
    let takes = (2048..=8192).contains(&key.n().bits())
        && (256..=1024).contains(&n.len())
        && odd(&n)
        && odd(&e)
        && (3..=(1u64 << 33) - 1).contains(&e_value);
    if !takes {
        return None;
    }
    key.to_pkcs1_der().ok().map(|der| Arc::from(der.as_bytes()))
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

    /// The `rsa` crate's signature, as every signature was made before a faster signer.
    fn rsa_crate_signature(key: &PrivateKey, message: &[u8]) -> Vec<u8> {
        key.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
            .unwrap()
    }

    fn rsa_crate_verifies(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        key.key
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(message),
                signature,
            )
            .is_ok()
    }

    fn openssl_vectors() -> Value {
        serde_json::from_str(include_str!("../../tests/vectors/rsa2048-openssl.json")).unwrap()
    }

    #[test]
    fn the_signer_signs_2048_bit_keys_byte_for_byte_as_openssl_and_the_rsa_crate() {
        let v = openssl_vectors();
        let entry = &v["keys"][0];
        assert_eq!(entry["public_exponent"], 65537);
        let key = PrivateKey::parse(entry["private_pkcs8_der_b64"].as_str().unwrap(), "k").unwrap();
        assert!(key.signer.is_some(), "AWS-LC refused a 2048-bit key");
        let public = PublicKey::parse(entry["public_spki_der_b64"].as_str().unwrap(), "p").unwrap();
        assert!(public.ring_der.is_some());
        assert!(public.same_key(&key.public_key()));
        for case in entry["cases"].as_array().unwrap() {
            let message = case["message"].as_str().unwrap().as_bytes();
            let expected = STANDARD
                .decode(case["signature_b64"].as_str().unwrap())
                .unwrap();
            let sig = key.sign_sha256(message);
            assert_eq!(sig, expected);
            assert_eq!(sig, rsa_crate_signature(&key, message));
            assert!(public.verify_sha256(message, &sig));
            assert!(rsa_crate_verifies(&public, message, &sig));
        }
        // ring and the rsa crate refuse the same damaged signatures.
        let sig = key.sign_sha256(b"hello");
        let mut flipped = sig.clone();
        flipped[100] ^= 1;
        let mut longer = sig.clone();
        longer.insert(0, 0);
        let modulus = public.key.n().to_bytes_be();
        for bad in [flipped, longer, sig[1..].to_vec(), Vec::new(), modulus] {
            assert!(!public.verify_sha256(b"hello", &bad));
            assert!(!rsa_crate_verifies(&public, b"hello", &bad));
        }
        assert!(!public.verify_sha256(b"hellO", &sig));
        // A clone shares the AWS-LC key and signs the same.
        assert_eq!(key.clone().sign_sha256(b"hello"), sig);
    }

    #[test]
    fn ring_verifies_with_exponent_3_and_the_rsa_crate_signs_with_it() {
        let v = openssl_vectors();
        let entry = &v["keys"][1];
        assert_eq!(entry["public_exponent"], 3);
        // Exponents below 65537 sign in the rsa crate (as when ring signed); ring verifies.
        let key = PrivateKey::parse(entry["private_pkcs8_der_b64"].as_str().unwrap(), "k").unwrap();
        assert!(key.signer.is_none());
        let public = PublicKey::parse(entry["public_spki_der_b64"].as_str().unwrap(), "p").unwrap();
        assert!(public.ring_der.is_some());
        for case in entry["cases"].as_array().unwrap() {
            let message = case["message"].as_str().unwrap().as_bytes();
            let expected = STANDARD
                .decode(case["signature_b64"].as_str().unwrap())
                .unwrap();
            assert_eq!(key.sign_sha256(message), expected);
            assert!(public.verify_sha256(message, &expected));
        }
    }

    #[test]
    fn keys_ring_refuses_sign_and_verify_with_the_rsa_crate() {
        let v = vectors();
        let small = PrivateKey::parse(
            v["computed_keypair"]["private_pkcs8_der_b64"]
                .as_str()
                .unwrap(),
            "1024",
        )
        .unwrap();
        assert!(small.signer.is_none());
        let public = small.public_key();
        assert!(public.ring_der.is_none());
        let sig = small.sign_sha256(b"hello");
        assert_eq!(sig.len(), 128);
        assert_eq!(sig, rsa_crate_signature(&small, b"hello"));
        assert!(public.verify_sha256(b"hello", &sig));
        assert!(!public.verify_sha256(b"hellO", &sig));

        // The modulus decides: ring takes any exponent the rsa crate parses (odd, 3 to
        // 2^33 - 1) with a 2048-bit modulus.
        let n = openssl_vectors_public(0).key.n().clone();
        let e5 = RsaPublicKey::new(n, rsa::BigUint::from(5u32)).unwrap();
        assert!(ring_public_der(&e5).is_some());
        let max = RsaPublicKey::new(
            openssl_vectors_public(0).key.n().clone(),
            rsa::BigUint::from((1u64 << 33) - 1),
        )
        .unwrap();
        assert!(ring_public_der(&max).is_some());
    }

    fn openssl_vectors_public(i: usize) -> PublicKey {
        let v = openssl_vectors();
        PublicKey::parse(v["keys"][i]["public_spki_der_b64"].as_str().unwrap(), "p").unwrap()
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
