//! The sandbox's Open Platform certificate mode (docs/protocol.md §3.4, docs/gateways.md §9):
//! a root CA of its own, the Alipay certificate (its gateway key, issued by that root) and the
//! app certificate (the app key, issued by the same root), written into the key directory as
//! Alipay's console hands them out. It expects the app's and the root bundle's SNs on every
//! request, answers under the SN of its current Alipay certificate, hands out any certificate
//! it issued by SN, and rotates its Alipay certificate (a new key and certificate) on the
//! admin call `POST /_sandbox/openapi/rotate-alipay-cert`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use x509_cert::Certificate;

use crate::gateway::alipay_openapi::cert;
use crate::gateway::keys::{KeyError, PrivateKey, PublicKey};

/// The admin path that rotates the sandbox's Alipay certificate.
pub const ROTATE_PATH: &str = "/_sandbox/openapi/rotate-alipay-cert";

/// The files a certificate-mode client names, in the key directory.
pub const ROOT_CERT_FILE: &str = "alipayRootCert.crt";
pub const ALIPAY_CERT_FILE: &str = "alipayCertPublicKey_RSA2.crt";
/// The root CA's own key (the sandbox's, never a client's).
const ROOT_KEY_FILE: &str = "sandbox_root_ca_key.pem";

const ROOT_SUBJECT: &str =
    "CN=scanpay sandbox Root CA R1,OU=Certification Authority,O=scanpay sandbox,C=CN";
const ALIPAY_SUBJECT: &str = "CN=scanpay sandbox Alipay,OU=Alipay,O=scanpay sandbox,C=CN";
const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 86_400);
const CERT_VALIDITY: Duration = Duration::from_secs(3 * 365 * 86_400);

/// The certificate files written for a client.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub app_cert_file: PathBuf,
    pub alipay_cert_file: PathBuf,
    pub root_cert_file: PathBuf,
}

/// What the sandbox's Open Platform checks and signs with in certificate mode.
pub struct CertMode {
    /// The SNs every request must carry.
    pub(super) app_cert_sn: String,
    pub(super) root_cert_sn: String,
    root_key: PrivateKey,
    root_cert: Certificate,
    bits: usize,
    current: Mutex<Current>,
    /// Every Alipay certificate issued, by SN, as PEM (what the download hands out).
    issued: Mutex<HashMap<String, String>>,
    serial: AtomicU64,
    /// SNs of app certificates uploaded since (`POST /_sandbox/keys`): a key change.
    uploaded: Mutex<Vec<String>>,
}

/// The Alipay certificate the sandbox signs under now.
#[derive(Clone)]
pub(super) struct Current {
    pub key: PrivateKey,
    pub sn: String,
}

impl CertMode {
    /// Creates the root CA (reusing its key in `dir` if there is one), issues the Alipay
    /// certificate for `gateway_key` and the app certificate for `app_key`, and writes the
    /// three certificate files. Certificates are issued anew on every start, with fresh
    /// serials; the root's key stays, so certificates of an earlier run still chain.
    pub fn create(
        dir: &Path,
        bits: usize,
        app_id: &str,
        gateway_key: &PrivateKey,
        app_key: &PrivateKey,
    ) -> Result<(CertMode, CertFiles), KeyError> {
        let fail = |e: String| KeyError::Generate(e);
        let root_key_file = dir.join(ROOT_KEY_FILE);
        let root_key = if root_key_file.exists() {
            PrivateKey::load(&root_key_file)?
        } else {
            let key = PrivateKey::generate(bits, "sandbox root CA key")?;
            key.write_pem(&root_key_file)?;
            key
        };
        // Serials from the clock: distinct across runs, increasing within one.
        let first = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
        let serial = AtomicU64::new(first);
        let next = || serial.fetch_add(1, Ordering::Relaxed);
        let root_cert =
            cert::issue(&root_key, ROOT_SUBJECT, None, 1, ROOT_VALIDITY).map_err(fail)?;
        let alipay = cert::issue(
            gateway_key,
            ALIPAY_SUBJECT,
            Some((&root_key, &root_cert)),
            next(),
            CERT_VALIDITY,
        )
        .map_err(fail)?;
        let app = cert::issue(
            app_key,
            &format!("CN={app_id},OU=Alipay,O=scanpay sandbox merchant,C=CN"),
            Some((&root_key, &root_cert)),
            next(),
            CERT_VALIDITY,
        )
        .map_err(fail)?;
        let files = CertFiles {
            app_cert_file: dir.join(format!("appCertPublicKey_{app_id}.crt")),
            alipay_cert_file: dir.join(ALIPAY_CERT_FILE),
            root_cert_file: dir.join(ROOT_CERT_FILE),
        };
        let alipay_pem = cert::to_pem(&alipay).map_err(fail)?;
        for (path, c) in [
            (&files.app_cert_file, &app),
            (&files.root_cert_file, &root_cert),
        ] {
            write_public(path, &cert::to_pem(c).map_err(fail)?)?;
        }
        write_public(&files.alipay_cert_file, &alipay_pem)?;
        let alipay_sn = cert::cert_sn(&alipay);
        let mode = CertMode {
            app_cert_sn: cert::cert_sn(&app),
            root_cert_sn: cert::root_cert_sn(std::slice::from_ref(&root_cert)),
            root_key,
            root_cert,
            bits,
            current: Mutex::new(Current {
                key: gateway_key.clone(),
                sn: alipay_sn.clone(),
            }),
            issued: Mutex::new(HashMap::from([(alipay_sn, alipay_pem)])),
            serial,
            uploaded: Mutex::new(Vec::new()),
        };
        Ok((mode, files))
    }

    /// Takes an app certificate for a new key, as the console issues one: it must chain to
    /// the sandbox's root and be valid now. Its SN is accepted from then on (beside the one
    /// issued at start); returns the SN and the certificate's key.
    pub(super) fn upload_app_cert(&self, pem: &str) -> Result<(String, PublicKey), String> {
        let certs = cert::read_pem(pem, "uploaded app certificate")?;
        let first = certs.first().ok_or("no certificate")?;
        cert::verify_chain(
            std::slice::from_ref(first),
            std::slice::from_ref(&self.root_cert),
            chrono::Utc::now(),
        )?;
        let key = cert::public_key(first, "uploaded app certificate")?;
        let sn = cert::cert_sn(first);
        if let Ok(mut uploaded) = self.uploaded.lock() {
            uploaded.push(sn.clone());
        }
        Ok((sn, key))
    }

    /// Whether `sn` is an app certificate uploaded since the start.
    pub(super) fn uploaded(&self, sn: &str) -> bool {
        self.uploaded
            .lock()
            .map(|u| u.iter().any(|s| s == sn))
            .unwrap_or(false)
    }

    /// The Alipay certificate answers are signed under now.
    pub(super) fn current(&self) -> Option<Current> {
        self.current.lock().ok().map(|c| c.clone())
    }

    /// The PEM of an Alipay certificate the sandbox issued, by SN.
    pub(super) fn issued(&self, sn: &str) -> Option<String> {
        self.issued.lock().ok()?.get(sn).cloned()
    }

    /// A new Alipay key and certificate, issued by the root; from now on answers are signed
    /// under it. Returns the old SN and the new one. Kept in memory only: a restart issues
    /// the configured files' certificates again.
    pub(super) fn rotate(&self) -> Result<(String, String), String> {
        let key = PrivateKey::generate(self.bits, "sandbox gateway key (rotated)")
            .map_err(|e| e.to_string())?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let alipay = cert::issue(
            &key,
            ALIPAY_SUBJECT,
            Some((&self.root_key, &self.root_cert)),
            serial,
            CERT_VALIDITY,
        )?;
        let sn = cert::cert_sn(&alipay);
        let pem = cert::to_pem(&alipay)?;
        self.issued
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .insert(sn.clone(), pem);
        let mut current = self.current.lock().map_err(|_| "poisoned".to_string())?;
        let old = std::mem::replace(
            &mut *current,
            Current {
                key,
                sn: sn.clone(),
            },
        );
        Ok((old.sn, sn))
    }
}

fn write_public(path: &Path, text: &str) -> Result<(), KeyError> {
    std::fs::write(path, text).map_err(|source| KeyError::Write {
        file: path.display().to_string(),
        source,
    })
}
