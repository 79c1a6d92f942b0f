//! `[gateway]`: which gateway, its URL and timeout, and the keys and ids of its kind, checked
//! so that each kind holds exactly the keys it uses.

mod ams;
mod openapi;
mod wechat;

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::validate::{Validator, check_url};
use crate::gateway::alipay_ams::AmsSettings;
use crate::gateway::alipay_openapi::OpenApiSettings;
use crate::gateway::keys::{PrivateKey, PublicKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum GatewayKind {
    #[serde(rename = "sandbox")]
    Sandbox,
    #[serde(rename = "alipay-openapi")]
    AlipayOpenapi,
    #[serde(rename = "alipay-ams")]
    AlipayAms,
    /// Only as `[gateway.wechat]`.
    #[serde(skip)]
    WechatPay,
}

impl GatewayKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            GatewayKind::Sandbox => "sandbox",
            GatewayKind::AlipayOpenapi => "alipay-openapi",
            GatewayKind::AlipayAms => "alipay-ams",
            GatewayKind::WechatPay => "wechat-pay",
        }
    }
}

/// The gateway and its keys: each kind carries what it needs, so a kind without its keys
/// cannot be configured.
#[derive(Debug, Clone)]
pub enum GatewaySettings {
    Sandbox(SandboxSettings),
    OpenApi(OpenApiSettings),
    Ams(AmsSettings),
    Wechat(crate::gateway::wechat_pay::WechatSettings),
}

/// `kind = "sandbox"`: the in-process sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Refused when the gateway is built: the in-process sandbox has no URL.
    pub url: Option<String>,
    /// Longest wait for one gateway answer; past it the outcome is unknown.
    pub timeout: Duration,
}

impl GatewaySettings {
    pub fn kind(&self) -> GatewayKind {
        match self {
            GatewaySettings::Sandbox(_) => GatewayKind::Sandbox,
            GatewaySettings::OpenApi(_) => GatewayKind::AlipayOpenapi,
            GatewaySettings::Ams(_) => GatewayKind::AlipayAms,
            GatewaySettings::Wechat(_) => GatewayKind::WechatPay,
        }
    }

    /// Longest wait for one gateway answer; past it the outcome is unknown.
    pub fn timeout(&self) -> Duration {
        match self {
            GatewaySettings::Sandbox(s) => s.timeout,
            GatewaySettings::OpenApi(o) => o.timeout,
            GatewaySettings::Ams(a) => a.timeout,
            GatewaySettings::Wechat(w) => w.timeout,
        }
    }
}

const TIMEOUT_MS_DEFAULT: u64 = 15_000;
const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=120_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    kind: Option<GatewayKind>,
    url: Option<String>,
    timeout_ms: Option<u64>,
    app_id: Option<String>,
    private_key_file: Option<String>,
    alipay_public_key_file: Option<String>,
    app_cert_file: Option<String>,
    alipay_cert_file: Option<String>,
    alipay_root_cert_file: Option<String>,
    app_auth_token: Option<String>,
    notify_url: Option<String>,
    seller_id: Option<String>,
    sys_service_provider_id: Option<String>,
    client_id: Option<String>,
    key_version: Option<u32>,
    reference_merchant_id: Option<String>,
    merchant_name: Option<String>,
    merchant_mcc: Option<String>,
    reference_store_id: Option<String>,
    store_name: Option<String>,
    merchant_region: Option<String>,
    settlement_currency: Option<String>,
    payment_notify_url: Option<String>,
    payment_expiry_s: Option<u64>,
    /// Several gateways: `[gateway.alipay]` (any Alipay kind) and `[gateway.wechat]`.
    alipay: Option<Box<RawGateway>>,
    wechat: Option<wechat::RawWechat>,
}

impl RawGateway {
    /// Keys only the Open Platform takes.
    fn openapi_only(&self) -> [(&'static str, Option<String>); 8] {
        [
            ("app_id", self.app_id.clone()),
            ("app_cert_file", self.app_cert_file.clone()),
            ("alipay_cert_file", self.alipay_cert_file.clone()),
            ("alipay_root_cert_file", self.alipay_root_cert_file.clone()),
            ("app_auth_token", self.app_auth_token.clone()),
            ("notify_url", self.notify_url.clone()),
            ("seller_id", self.seller_id.clone()),
            (
                "sys_service_provider_id",
                self.sys_service_provider_id.clone(),
            ),
        ]
    }

    /// Keys only AMS takes.
    fn ams_only(&self) -> [(&'static str, Option<String>); 11] {
        [
            ("client_id", self.client_id.clone()),
            ("key_version", self.key_version.map(|v| v.to_string())),
            ("reference_merchant_id", self.reference_merchant_id.clone()),
            ("merchant_name", self.merchant_name.clone()),
            ("merchant_mcc", self.merchant_mcc.clone()),
            ("reference_store_id", self.reference_store_id.clone()),
            ("store_name", self.store_name.clone()),
            ("merchant_region", self.merchant_region.clone()),
            ("settlement_currency", self.settlement_currency.clone()),
            ("payment_notify_url", self.payment_notify_url.clone()),
            (
                "payment_expiry_s",
                self.payment_expiry_s.map(|v| v.to_string()),
            ),
        ]
    }

    /// The first key set at the top of `[gateway]` (none may be with nested tables).
    fn flat_key(&self) -> Option<&'static str> {
        let set = [
            ("kind", self.kind.is_some()),
            ("url", self.url.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
        ];
        set.into_iter()
            .find(|(_, s)| *s)
            .map(|(k, _)| k)
            .or_else(|| {
                self.openapi_only()
                    .into_iter()
                    .chain(self.ams_only())
                    .chain(self.key_files())
                    .find(|(_, v)| v.is_some())
                    .map(|(k, _)| k)
            })
    }

    fn key_files(&self) -> [(&'static str, Option<String>); 2] {
        [
            ("private_key_file", self.private_key_file.clone()),
            (
                "alipay_public_key_file",
                self.alipay_public_key_file.clone(),
            ),
        ]
    }
}

impl Validator<'_> {
    /// Every configured gateway, the first one first: the single `[gateway]`, or
    /// `[gateway.alipay]` and then `[gateway.wechat]`.
    pub(super) fn gateways(
        &self,
        mut raw: RawGateway,
    ) -> Result<Vec<GatewaySettings>, ConfigError> {
        let (alipay, wechat) = (raw.alipay.take(), raw.wechat.take());
        if alipay.is_none() && wechat.is_none() {
            return Ok(vec![self.gateway(raw)?]);
        }
        if let Some(key) = raw.flat_key() {
            return Err(self.invalid(
                "gateway",
                key,
                "…",
                "with [gateway.alipay] or [gateway.wechat], every gateway key goes into its own table",
            ));
        }
        let mut all = Vec::new();
        if let Some(mut a) = alipay {
            if a.alipay.is_some() || a.wechat.take().is_some() {
                return Err(self.invalid(
                    "gateway.alipay",
                    "kind",
                    "…",
                    "tables do not nest further",
                ));
            }
            let v = Validator {
                file: self.file,
                base: self.base,
                gateway_section: "gateway.alipay",
            };
            all.push(v.gateway(*a)?);
        }
        if let Some(w) = wechat {
            all.push(GatewaySettings::Wechat(self.wechat(w)?));
        }
        Ok(all)
    }

    pub(super) fn gateway(&self, raw: RawGateway) -> Result<GatewaySettings, ConfigError> {
        let kind = self.required(
            raw.kind,
            self.gateway_section,
            "kind",
            "choose the payment gateway: kind = \"sandbox\"",
        )?;
        if let Some(url) = &raw.url {
            check_url(url).map_err(|why| self.invalid(self.gateway_section, "url", url, why))?;
        }
        let timeout_ms = self.in_range(
            self.gateway_section,
            "timeout_ms",
            raw.timeout_ms.unwrap_or(TIMEOUT_MS_DEFAULT),
            TIMEOUT_MS_RANGE,
            "milliseconds",
        )?;
        let foreign: Vec<(&'static str, Option<String>)> = match kind {
            GatewayKind::Sandbox => raw
                .openapi_only()
                .into_iter()
                .chain(raw.ams_only())
                .chain(raw.key_files())
                .collect(),
            GatewayKind::AlipayOpenapi => raw.ams_only().into_iter().collect(),
            GatewayKind::AlipayAms => raw.openapi_only().into_iter().collect(),
            GatewayKind::WechatPay => Vec::new(),
        };
        if let Some((key, Some(value))) = foreign.into_iter().find(|(_, v)| v.is_some()) {
            return Err(self.invalid(
                self.gateway_section,
                key,
                value,
                format!("not used with kind = \"{}\"; remove it", kind.as_str()),
            ));
        }
        let timeout = Duration::from_millis(timeout_ms);
        Ok(match kind {
            GatewayKind::Sandbox => GatewaySettings::Sandbox(SandboxSettings {
                url: raw.url,
                timeout,
            }),
            GatewayKind::AlipayOpenapi => GatewaySettings::OpenApi(self.openapi(&raw, timeout)?),
            GatewayKind::AlipayAms => GatewaySettings::Ams(self.ams(&raw, timeout)?),
            // Not read from a file: WeChat Pay is configured as [gateway.wechat].
            GatewayKind::WechatPay => {
                return Err(self.invalid(
                    self.gateway_section,
                    "kind",
                    kind.as_str(),
                    "configure WeChat Pay as [gateway.wechat]",
                ));
            }
        })
    }

    /// The merchant's private key and the gateway's public key, with the classic mix-up
    /// (the merchant's own public key configured as the gateway's) named.
    fn private_key(&self, raw: &RawGateway) -> Result<PrivateKey, ConfigError> {
        let private_file = self.required(
            raw.private_key_file.as_ref(),
            self.gateway_section,
            "private_key_file",
            "name the merchant's RSA private key file (mode 0600)",
        )?;
        let private_key = PrivateKey::load(&self.path(private_file)).map_err(|e| {
            self.invalid(
                self.gateway_section,
                "private_key_file",
                private_file,
                e.to_string(),
            )
        })?;
        Ok(private_key)
    }

    fn key_pair(
        &self,
        raw: &RawGateway,
        console: &str,
    ) -> Result<(PrivateKey, PublicKey), ConfigError> {
        let private_key = self.private_key(raw)?;
        let public_file = self.required(
            raw.alipay_public_key_file.as_ref(),
            self.gateway_section,
            "alipay_public_key_file",
            "name the file holding Alipay's public key",
        )?;
        let alipay_public_key = PublicKey::load(&self.path(public_file)).map_err(|e| {
            self.invalid(
                self.gateway_section,
                "alipay_public_key_file",
                public_file,
                e.to_string(),
            )
        })?;
        if alipay_public_key.same_key(&private_key.public_key()) {
            return Err(self.invalid(
                self.gateway_section,
                "alipay_public_key_file",
                public_file,
                format!("this is your own public key, not Alipay's: in the {console} console, copy the \"Alipay public key\" (支付宝公钥), not your app's public key (应用公钥)"),
            ));
        }
        Ok((private_key, alipay_public_key))
    }
}
