//! Open Platform certificate mode (docs/protocol.md §3.4): the certificates' SNs as Alipay
//! computes them, the Alipay certificate's chain to the root bundle, and, for the sandbox,
//! certificates issued by a root of its own.
//!
//! An SN is the lowercase hex MD5 of the issuer's distinguished name, written as Java's
//! `X500Principal.getName()` writes it (RFC 2253: the attributes in reverse order of the
//! certificate, `CN=…,OU=…,O=…,C=…`), followed by the serial number in decimal. The root SN
//! joins with `_` the SNs of the bundle's certificates signed with an RSA algorithm (OID
//! under `1.2.840.113549.1.1`), in the bundle's order. `tests/vectors/alipay-cert/` pins both
//! with the certificates and expected SNs of Alipay's Node SDK tests.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use x509_cert::Certificate;
use x509_cert::der::asn1::{
    BmpString, Ia5String, PrintableStringRef, TeletexStringRef, Utf8StringRef,
};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, EncodePem, Tag, Tagged, pem::LineEnding};
use x509_cert::name::Name;

use crate::gateway::keys::{PrivateKey, PublicKey};

/// The arc of the PKCS#1 RSA algorithms; a certificate signed with one counts in the root SN.
const RSA_ARC: &str = "1.2.840.113549.1.1.";
const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";

/// Reads every PEM certificate of `text` (one file: a certificate, or a chain, or a bundle).
/// `source` names the file in errors.
pub fn read_pem(text: &str, source: &str) -> Result<Vec<Certificate>, String> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    // Alipay's files wrap base64 at 76 or 64 columns, with LF or CRLF: read each block
    // whole, whitespace removed, rather than by the strict PEM line rules.
    let mut certs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after.find(END).ok_or_else(|| {
            format!(
                "{source}: certificate {} has no {END} line",
                certs.len() + 1
            )
        })?;
        let b64: String = after[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("{source}: certificate {}: bad base64: {e}", certs.len() + 1))?;
        let cert = Certificate::from_der(&der).map_err(|e| {
            format!(
                "{source}: certificate {} is not X.509: {e}",
                certs.len() + 1
            )
        })?;
        certs.push(cert);
        rest = &after[end + END.len()..];
    }
    if certs.is_empty() {
        return Err(format!(
            "{source}: holds no PEM certificate ({BEGIN} … {END})"
        ));
    }
    Ok(certs)
}

/// [`read_pem`] of a file.
pub fn load(path: &Path) -> Result<Vec<Certificate>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    read_pem(&text, &path.display().to_string())
}

/// The certificate's SN: MD5 hex of its issuer DN and decimal serial (docs/protocol.md §3.4).
pub fn cert_sn(cert: &Certificate) -> String {
    let text = format!("{}{}", issuer_dn(cert), serial_decimal(cert));
    hex(&Md5::digest(text.as_bytes()))
}

/// The root bundle's SN: the SNs of its RSA-signed certificates joined with `_`.
pub fn root_cert_sn(bundle: &[Certificate]) -> String {
    bundle
        .iter()
        .filter(|c| is_rsa_signed(c))
        .map(cert_sn)
        .collect::<Vec<_>>()
        .join("_")
}

/// Whether the certificate is signed with an RSA algorithm (the SDKs' filter for the root SN).
pub fn is_rsa_signed(cert: &Certificate) -> bool {
    cert.signature_algorithm
        .oid
        .to_string()
        .starts_with(RSA_ARC)
}

/// The issuer's distinguished name as the SN hashes it.
pub fn issuer_dn(cert: &Certificate) -> String {
    dn(&cert.tbs_certificate.issuer)
}

/// The subject's distinguished name, in the same form.
pub fn subject_dn(cert: &Certificate) -> String {
    dn(&cert.tbs_certificate.subject)
}

/// The serial number in decimal, as Java's `BigInteger.toString()` writes a positive one.
pub fn serial_decimal(cert: &Certificate) -> String {
    rsa::BigUint::from_bytes_be(cert.tbs_certificate.serial_number.as_bytes()).to_string()
}

/// A name in RFC 2253 form, as `X500Principal.getName()` gives it: the relative names in
/// reverse order, the values of one relative name joined with `+`, the usual keywords for
/// the usual attributes, any other as its dotted OID with the value's DER in hex.
fn dn(name: &Name) -> String {
    name.0
        .iter()
        .rev()
        .map(|rdn| {
            rdn.0
                .iter()
                .map(|atv| attribute(&atv.oid, &atv.value))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn attribute(oid: &ObjectIdentifier, value: &x509_cert::der::Any) -> String {
    let keyword = match oid.to_string().as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        _ => None,
    };
    match (keyword, text_value(value)) {
        (Some(k), Some(text)) => format!("{k}={}", escape(&text)),
        _ => {
            let der = value.to_der().unwrap_or_default();
            format!("{oid}=#{}", hex(&der))
        }
    }
}

/// The value of a string-typed attribute.
fn text_value(value: &x509_cert::der::Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String => value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        Tag::Ia5String => value.decode_as::<Ia5String>().ok().map(|s| s.to_string()),
        Tag::TeletexString => value
            .decode_as::<TeletexStringRef<'_>>()
            .ok()
            .map(|s| s.to_string()),
        Tag::BmpString => value.decode_as::<BmpString>().ok().map(|s| s.to_string()),
        _ => None,
    }
}

/// RFC 2253 escaping: `,+"\<>;` anywhere, `#` or a space first, a space last.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The certificate's RSA public key; `source` names it in logs.
pub fn public_key(cert: &Certificate, source: &str) -> Result<PublicKey, String> {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("{source}: certificate key: {e}"))?;
    PublicKey::from_spki_der(&spki, source)
        .ok_or_else(|| format!("{source}: the certificate's key is not an RSA key"))
}

/// The certificate's validity: not before, not after.
pub fn validity(cert: &Certificate) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |t: x509_cert::time::Time| {
        let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    let v = &cert.tbs_certificate.validity;
    (at(v.not_before), at(v.not_after))
}

/// Whether `now` lies in the certificate's validity; the error says which end it is past.
pub fn check_validity(cert: &Certificate, now: DateTime<Utc>) -> Result<(), String> {
    let (from, until) = validity(cert);
    if now < from {
        return Err(format!(
            "certificate {} is not valid before {from}",
            subject_dn(cert)
        ));
    }
    if now > until {
        return Err(format!(
            "certificate {} expired at {until}",
            subject_dn(cert)
        ));
    }
    Ok(())
}

/// Checks that `chain` (a certificate first, then any intermediates from the same file)
/// leads to a certificate of `roots`: each one signed by the next, the last by a root with
/// its subject as issuer, every one (root included) valid at `now`. Only RSA signatures are
/// checked, which is what Alipay's RSA chain uses; a chain that needs another algorithm does
/// not chain.
pub fn verify_chain(
    chain: &[Certificate],
    roots: &[Certificate],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let Some(mut cert) = chain.first() else {
        return Err("no certificate".to_string());
    };
    let mut rest: Vec<&Certificate> = chain.iter().skip(1).collect();
    // Bounded: every step uses up an intermediate or ends.
    loop {
        check_validity(cert, now)?;
        let issuer = &cert.tbs_certificate.issuer;
        if let Some(root) = roots
            .iter()
            .find(|r| &r.tbs_certificate.subject == issuer && signed_by(cert, r).is_ok())
        {
            return check_validity(root, now);
        }
        let Some(pos) = rest
            .iter()
            .position(|c| &c.tbs_certificate.subject == issuer)
        else {
            let why = roots
                .iter()
                .find(|r| &r.tbs_certificate.subject == issuer)
                .map(|r| signed_by(cert, r).err().unwrap_or_default())
                .unwrap_or_else(|| "no root certificate of the bundle issued it".to_string());
            return Err(format!(
                "certificate {} (issuer {}) does not chain to the root bundle: {why}",
                subject_dn(cert),
                issuer_dn(cert)
            ));
        };
        let next = rest.remove(pos);
        signed_by(cert, next)?;
        cert = next;
    }
}

/// Checks `cert`'s signature with `issuer`'s key.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    use rsa::pkcs1v15::Pkcs1v15Sign;
    use rsa::pkcs8::DecodePublicKey;
    let alg = cert.signature_algorithm.oid.to_string();
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| format!("certificate {}: {e}", subject_dn(cert)))?;
    let (scheme, hashed) = match alg.as_str() {
        SHA1_WITH_RSA => {
            // DigestInfo prefix of SHA-1 (RFC 8017 §9.2).
            let prefix: &[u8] = &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ];
            let scheme = Pkcs1v15Sign {
                hash_len: Some(20),
                prefix: prefix.into(),
            };
            (scheme, sha1::Sha1::digest(&tbs).to_vec())
        }
        SHA256_WITH_RSA => (
            Pkcs1v15Sign::new::<sha2::Sha256>(),
            sha2::Sha256::digest(&tbs).to_vec(),
        ),
        SHA384_WITH_RSA => (
            Pkcs1v15Sign::new::<sha2::Sha384>(),
            sha2::Sha384::digest(&tbs).to_vec(),
        ),
        SHA512_WITH_RSA => (
            Pkcs1v15Sign::new::<sha2::Sha512>(),
            sha2::Sha512::digest(&tbs).to_vec(),
        ),
        other => {
            return Err(format!(
                "certificate {} is signed with {other}, not an RSA algorithm scanpay checks",
                subject_dn(cert)
            ));
        }
    };
    let spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("certificate {}: {e}", subject_dn(issuer)))?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| format!("certificate {} has no RSA key", subject_dn(issuer)))?;
    let signature = cert.signature.raw_bytes();
    key.verify(scheme, &hashed, signature).map_err(|_| {
        format!(
            "the signature of certificate {} does not verify with the key of {}",
            subject_dn(cert),
            subject_dn(issuer)
        )
    })
}

/// A certificate as PEM.
pub fn to_pem(cert: &Certificate) -> Result<String, String> {
    cert.to_pem(LineEnding::LF).map_err(|e| e.to_string())
}

/// Parses one DER certificate.
pub fn from_der(der: &[u8]) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| e.to_string())
}

/// Issues a certificate for `subject_key` named `subject` (RFC 4514, e.g. `CN=…,O=…,C=CN`),
/// signed by `issuer` (its key and certificate), or self-signed as a root when `issuer` is
/// `None`; with serial `serial`, valid from an hour ago for `valid_for`. What the sandbox
/// plays Alipay's CA with.
pub fn issue(
    subject_key: &PrivateKey,
    subject: &str,
    issuer: Option<(&PrivateKey, &Certificate)>,
    serial: u64,
    valid_for: Duration,
) -> Result<Certificate, String> {
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};

    let err = |e: &dyn std::fmt::Display| format!("cannot issue the certificate: {e}");
    let subject_name = Name::from_str(subject).map_err(|e| err(&e))?;
    let spki = SubjectPublicKeyInfoOwned::from_key(subject_key.rsa().to_public_key())
        .map_err(|e| err(&e))?;
    let (signing_key, profile) = match issuer {
        None => (subject_key, Profile::Root),
        Some((key, cert)) => (
            key,
            Profile::Leaf {
                issuer: cert.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
        ),
    };
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(signing_key.rsa().clone());
    let start = std::time::SystemTime::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or(std::time::UNIX_EPOCH);
    let validity = Validity {
        not_before: Time::try_from(start).map_err(|e| err(&e))?,
        not_after: Time::try_from(start + valid_for).map_err(|e| err(&e))?,
    };
    let builder = CertificateBuilder::new(
        profile,
        SerialNumber::from(serial),
        validity,
        subject_name,
        spki,
        &signer,
    )
    .map_err(|e| err(&e))?;
    builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| err(&e))
}

#[cfg(test)]
mod tests;
