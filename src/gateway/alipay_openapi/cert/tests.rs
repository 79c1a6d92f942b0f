use std::path::PathBuf;

use super::*;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/alipay-cert")
}

fn vectors() -> serde_json::Value {
    let text = std::fs::read_to_string(vectors_dir().join("vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn certs(file: &str) -> Vec<Certificate> {
    load(&vectors_dir().join(file)).unwrap()
}

#[test]
fn sns_match_the_official_sdk_vectors() {
    let v = vectors();
    for which in ["app_cert", "alipay_cert"] {
        let case = &v[which];
        let cert = &certs(case["file"].as_str().unwrap())[0];
        assert_eq!(
            issuer_dn(cert),
            case["issuer_dn"].as_str().unwrap(),
            "{which}"
        );
        assert_eq!(cert_sn(cert), case["sn"].as_str().unwrap(), "{which}");
    }
    let app = &certs(v["app_cert"]["file"].as_str().unwrap())[0];
    assert_eq!(
        serial_decimal(app),
        v["app_cert"]["serial_decimal"].as_str().unwrap()
    );
    let bundle = certs(v["root_bundle"]["file"].as_str().unwrap());
    assert_eq!(bundle.len(), 4);
    // The SM2 and the ECDSA roots are left out; the two RSA ones joined in the bundle's order.
    let rsa: Vec<bool> = bundle.iter().map(is_rsa_signed).collect();
    assert_eq!(rsa, [false, true, false, true]);
    assert_eq!(
        root_cert_sn(&bundle),
        v["root_bundle"]["sn"].as_str().unwrap()
    );
}

#[test]
fn the_alipay_certificate_key_is_the_one_the_sdk_reads() {
    use base64::Engine;
    let v = vectors();
    let cert = &certs(v["alipay_cert"]["file"].as_str().unwrap())[0];
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(spki),
        v["alipay_cert"]["public_key_spki_b64"].as_str().unwrap()
    );
    assert!(public_key(cert, "alipay cert").is_ok());
}

#[test]
fn names_are_written_as_rfc_2253_with_escapes() {
    let key = PrivateKey::generate(1024, "test").unwrap();
    let cert = issue(
        &key,
        "CN=a\\,b+UID=x,OU=  lead,O=Acme\\; Inc,C=CN",
        None,
        7,
        Duration::from_secs(86_400),
    )
    .unwrap();
    assert_eq!(
        issuer_dn(&cert),
        subject_dn(&cert),
        "a root is its own issuer"
    );
    assert_eq!(
        issuer_dn(&cert),
        "CN=a\\,b+UID=x,OU=\\  lead,O=Acme\\; Inc,C=CN"
    );
    assert_eq!(serial_decimal(&cert), "7");
}

#[test]
fn a_certificate_chains_only_to_the_root_that_signed_it_and_only_while_valid() {
    let day = Duration::from_secs(86_400);
    let root_key = PrivateKey::generate(1024, "root").unwrap();
    let root = issue(&root_key, "CN=Test Root,O=Test,C=CN", None, 1, day * 30).unwrap();
    let ca_key = PrivateKey::generate(1024, "ca").unwrap();
    let ca = issue(
        &ca_key,
        "CN=Test CA,O=Test,C=CN",
        Some((&root_key, &root)),
        2,
        day * 20,
    )
    .unwrap();
    let leaf_key = PrivateKey::generate(1024, "leaf").unwrap();
    let leaf = issue(
        &leaf_key,
        "CN=Leaf,O=Test,C=CN",
        Some((&ca_key, &ca)),
        3,
        day * 10,
    )
    .unwrap();
    let now = Utc::now();
    let roots = [root.clone()];
    assert_eq!(verify_chain(std::slice::from_ref(&ca), &roots, now), Ok(()));
    // Through the intermediate of the same file, whatever their order.
    assert_eq!(
        verify_chain(&[leaf.clone(), ca.clone()], &roots, now),
        Ok(())
    );
    // Without it, the leaf does not chain.
    let err = verify_chain(std::slice::from_ref(&leaf), &roots, now).unwrap_err();
    assert!(err.contains("does not chain"), "{err}");
    // Another root of the same name does not sign it.
    let other_key = PrivateKey::generate(1024, "other").unwrap();
    let impostor = issue(&other_key, "CN=Test Root,O=Test,C=CN", None, 1, day * 30).unwrap();
    let err = verify_chain(std::slice::from_ref(&ca), &[impostor], now).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
    // Past the leaf's end, or before its start.
    let err = verify_chain(
        &[leaf.clone(), ca.clone()],
        &roots,
        now + chrono::Duration::days(15),
    )
    .unwrap_err();
    assert!(err.contains("expired"), "{err}");
    let err = verify_chain(&[leaf, ca], &roots, now - chrono::Duration::days(1)).unwrap_err();
    assert!(err.contains("not valid before"), "{err}");
}

#[test]
fn the_official_alipay_certificate_needs_its_intermediate_to_chain() {
    // The Node SDK's Alipay certificate is issued by "Class 2 R1", which is not in the root
    // bundle: alone, it does not chain (the production file carries the intermediate).
    let alipay = certs("alipayCertPublicKey_RSA2.crt");
    let bundle = certs("alipayRootCert.crt");
    let (from, _) = validity(&alipay[0]);
    let err = verify_chain(&alipay, &bundle, from + chrono::Duration::days(1)).unwrap_err();
    assert!(err.contains("Class 2 R1"), "{err}");
}

#[test]
fn garbage_and_empty_files_are_refused_naming_the_file() {
    for text in [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        let err = read_pem(text, "app_cert.crt").unwrap_err();
        assert!(err.starts_with("app_cert.crt: "), "{err}");
    }
}

#[test]
fn the_bundles_rsa_roots_verify_their_own_signatures() {
    // Ant Financial R1 (sha256WithRSA) and iTrusChina G3 (sha1WithRSA) are self-signed:
    // the production signatures check out, so the chain check reads real certificates.
    let bundle = certs("alipayRootCert.crt");
    assert_eq!(signed_by(&bundle[1], &bundle[1]), Ok(()));
    assert_eq!(signed_by(&bundle[3], &bundle[3]), Ok(()));
    // SM2 and ECDSA are not checked, and say so.
    let err = signed_by(&bundle[0], &bundle[0]).unwrap_err();
    assert!(err.contains("not an RSA algorithm"), "{err}");
    // A root does not sign another.
    assert!(signed_by(&bundle[3], &bundle[1]).is_err());
}
