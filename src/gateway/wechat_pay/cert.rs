//! WeChat Pay platform certificates (X.509, docs/protocol.md §15.4): the serial that
//! `Wechatpay-Serial` names, the key inside, the end of validity; and, for the sandbox, a
//! self-signed one around a key it generated.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode, EncodePem, pem::LineEnding};

use super::wire::PlatformKey;
use crate::gateway::keys::{PrivateKey, PublicKey};

/// The certificate serial as WeChat Pay writes it: upper-case hex, no leading zero bytes.
fn serial_hex(bytes: &[u8]) -> String {
    let trimmed: &[u8] = {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        &bytes[first..]
    };
    trimmed.iter().map(|b| format!("{b:02X}")).collect()
}

/// Reads one PEM certificate: its serial, its public key and its end of validity.
pub fn parse_pem(pem: &str, source: &str) -> Result<PlatformKey, String> {
    let cert = Certificate::from_pem(pem.trim().as_bytes())
        .map_err(|e| format!("{source}: not an X.509 certificate in PEM: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("{source}: certificate key: {e}"))?;
    let id = serial_hex(tbs.serial_number.as_bytes());
    let key = PublicKey::from_spki_der(&spki, &format!("{source} (serial {id})"))
        .ok_or_else(|| format!("{source}: the certificate's key is not an RSA key"))?;
    let secs = tbs.validity.not_after.to_unix_duration().as_secs();
    let not_after = DateTime::<Utc>::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .ok_or_else(|| format!("{source}: the certificate's end of validity is out of range"))?;
    Ok(PlatformKey {
        id,
        key,
        not_after: Some(not_after),
    })
}

/// A self-signed certificate for `key` with serial `serial` (hex), valid from now for
/// `valid_for` (the sandbox's platform certificate). Returns the PEM.
pub fn self_signed(
    key: &PrivateKey,
    serial_hex: &str,
    valid_for: Duration,
) -> Result<String, String> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;

    let err = |e: &dyn std::fmt::Display| format!("cannot build the certificate: {e}");
    let serial_bytes: Vec<u8> = (0..serial_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(serial_hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|e| err(&e))?;
    let rsa_key = key.rsa().clone();
    let spki = SubjectPublicKeyInfoOwned::from_key(rsa_key.to_public_key()).map_err(|e| err(&e))?;
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key);
    let subject = Name::from_str("CN=scanpay sandbox WeChat Pay platform,O=scanpay sandbox")
        .map_err(|e| err(&e))?;
    let builder = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::new(&serial_bytes).map_err(|e| err(&e))?,
        Validity::from_now(valid_for).map_err(|e| err(&e))?,
        subject,
        spki,
        &signer,
    )
    .map_err(|e| err(&e))?;
    let cert = builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| err(&e))?;
    cert.to_pem(LineEnding::LF).map_err(|e| err(&e))
}
