//! `[gateway.wechat]`: WeChat Pay APIv3 as a direct merchant (docs/gateways.md §8,
//! docs/protocol.md §15): the merchant's AppID, merchant number, API key and its certificate
//! serial, the APIv3 key, and how answers are verified (platform certificates from files or
//! downloaded, or the WeChat Pay public key with its id).

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::config::validate::{Validator, check_url, is_token};
use crate::gateway::keys::{PrivateKey, PublicKey, load_secret};
use crate::gateway::wechat_pay::wire::PlatformKey;
use crate::gateway::wechat_pay::{
    ApiV3Key, DEADLINE_RANGE, DEFAULT_DEADLINE, WechatSettings, cert,
};

const SECTION: &str = "gateway.wechat";
const DEFAULT_URL: &str = "https://api.mch.weixin.qq.com";
const TIMEOUT_MS_DEFAULT: u64 = 15_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawWechat {
    url: Option<String>,
    timeout_ms: Option<u64>,
    appid: Option<String>,
    mchid: Option<String>,
    private_key_file: Option<String>,
    merchant_serial_no: Option<String>,
    apiv3_key_file: Option<String>,
    #[serde(default)]
    platform_certificate_files: Vec<String>,
    download_certificates: Option<bool>,
    wechatpay_public_key_file: Option<String>,
    wechatpay_public_key_id: Option<String>,
    device_ip: Option<String>,
    goods_tag: Option<String>,
    deadline_s: Option<u64>,
}

impl Validator<'_> {
    pub(in crate::config) fn wechat(&self, raw: RawWechat) -> Result<WechatSettings, ConfigError> {
        let url_text = raw.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        check_url(&url_text).map_err(|why| self.invalid(SECTION, "url", &url_text, why))?;
        let origin = self.url(SECTION, "url", &url_text)?;
        let timeout_ms = self.in_range(
            SECTION,
            "timeout_ms",
            raw.timeout_ms.unwrap_or(TIMEOUT_MS_DEFAULT),
            1_000..=120_000,
            "milliseconds",
        )?;
        let appid = self.required(
            raw.appid,
            SECTION,
            "appid",
            "set the AppID bound to the merchant number (wx…)",
        )?;
        if !is_token(&appid, 32, |b| b.is_ascii_alphanumeric()) {
            return Err(self.invalid(
                SECTION,
                "appid",
                &appid,
                "an AppID is letters and digits, e.g. wxd678efh567hg6787",
            ));
        }
        let mchid = self.required(
            raw.mchid,
            SECTION,
            "mchid",
            "set the merchant number (商户号) from the WeChat Pay merchant platform",
        )?;
        if !is_token(&mchid, 32, |b| b.is_ascii_digit()) {
            return Err(self.invalid(
                SECTION,
                "mchid",
                &mchid,
                "a merchant number is all digits, e.g. 1230000109",
            ));
        }
        let key_file = self.required(
            raw.private_key_file.as_ref(),
            SECTION,
            "private_key_file",
            "name the merchant API private key (apiclient_key.pem, mode 0600)",
        )?;
        let private_key = PrivateKey::load(&self.path(key_file))
            .map_err(|e| self.invalid(SECTION, "private_key_file", key_file, e.to_string()))?;
        let serial_no = self.required(
            raw.merchant_serial_no,
            SECTION,
            "merchant_serial_no",
            "set the merchant API certificate's serial number (证书序列号), upper-case hex",
        )?;
        if !is_token(&serial_no, 64, |b| b.is_ascii_hexdigit()) {
            return Err(self.invalid(
                SECTION,
                "merchant_serial_no",
                &serial_no,
                "a certificate serial is hex digits",
            ));
        }
        let apiv3_file = self.required(
            raw.apiv3_key_file.as_ref(),
            SECTION,
            "apiv3_key_file",
            "name the file holding the 32-character APIv3 key (APIv3密钥, mode 0600)",
        )?;
        let apiv3_text = load_secret(&self.path(apiv3_file))
            .map_err(|e| self.invalid(SECTION, "apiv3_key_file", apiv3_file, e.to_string()))?;
        let apiv3_key = ApiV3Key::new(&apiv3_text)
            .map_err(|why| self.invalid(SECTION, "apiv3_key_file", apiv3_file, why))?;
        let mut certificates: Vec<PlatformKey> = Vec::new();
        for file in &raw.platform_certificate_files {
            let text = std::fs::read_to_string(self.path(file)).map_err(|e| {
                self.invalid(
                    SECTION,
                    "platform_certificate_files",
                    file,
                    format!("cannot read: {e}"),
                )
            })?;
            let key = cert::parse_pem(&text, file)
                .map_err(|why| self.invalid(SECTION, "platform_certificate_files", file, why))?;
            certificates.push(key);
        }
        let public_key = match (&raw.wechatpay_public_key_file, &raw.wechatpay_public_key_id) {
            (None, None) => None,
            (Some(file), Some(id)) => {
                let digits = id.strip_prefix("PUB_KEY_ID_").unwrap_or("");
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(self.invalid(
                        SECTION,
                        "wechatpay_public_key_id",
                        id,
                        "a WeChat Pay public key id is PUB_KEY_ID_ followed by digits",
                    ));
                }
                let key = PublicKey::load(&self.path(file)).map_err(|e| {
                    self.invalid(SECTION, "wechatpay_public_key_file", file, e.to_string())
                })?;
                if key.same_key(&private_key.public_key()) {
                    return Err(self.invalid(
                        SECTION,
                        "wechatpay_public_key_file",
                        file,
                        "this is your own merchant key, not WeChat Pay's public key (微信支付公钥)",
                    ));
                }
                Some(PlatformKey {
                    id: id.clone(),
                    key,
                    not_after: None,
                })
            }
            (Some(file), None) => {
                return Err(self.invalid(
                    SECTION,
                    "wechatpay_public_key_file",
                    file,
                    "set wechatpay_public_key_id (PUB_KEY_ID_…) beside it",
                ));
            }
            (None, Some(id)) => {
                return Err(self.invalid(
                    SECTION,
                    "wechatpay_public_key_id",
                    id,
                    "set wechatpay_public_key_file beside it",
                ));
            }
        };
        let download = raw
            .download_certificates
            .unwrap_or(certificates.is_empty() && public_key.is_none());
        if !download && certificates.is_empty() && public_key.is_none() {
            return Err(self.invalid(
                SECTION,
                "download_certificates",
                false,
                "nothing would verify WeChat Pay's answers: set wechatpay_public_key_file and _id, platform_certificate_files, or download_certificates = true",
            ));
        }
        for (key, value) in [("device_ip", &raw.device_ip), ("goods_tag", &raw.goods_tag)] {
            if let Some(v) = value
                && (v.is_empty()
                    || v.len() > 45
                    || v.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(self.invalid(
                    SECTION,
                    key,
                    v,
                    "must be 1–45 printable characters, or left out",
                ));
            }
        }
        if let Some(ip) = &raw.device_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(self.invalid(SECTION, "device_ip", ip, "an IPv4 or IPv6 address"));
        }
        let deadline_s = self.in_range(
            SECTION,
            "deadline_s",
            raw.deadline_s.unwrap_or(DEFAULT_DEADLINE.as_secs()),
            DEADLINE_RANGE,
            "seconds (WeChat Pay revokes an unpaid order at 45 s)",
        )?;
        Ok(WechatSettings {
            origin,
            appid,
            mchid,
            private_key,
            serial_no: serial_no.to_ascii_uppercase(),
            apiv3_key,
            certificates,
            public_key,
            download_certificates: download,
            device_ip: raw.device_ip,
            goods_tag: raw.goods_tag,
            timeout: Duration::from_millis(timeout_ms),
            deadline: Duration::from_secs(deadline_s),
        })
    }
}
