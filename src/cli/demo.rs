//! `scanpay demo`: the whole sale path on the embedded default, with no config and no
//! hardware. stdin is the scanner and the register: a line that is an amount (`12.50`)
//! starts a sale, a line of digits is a scan, `cancel` aborts the waiting sale; `bind M1`
//! shows member M1's wallet binding QR, `approve` plays the customer approving it, and
//! `member M1 12.50` charges a sale to the bound member (auto-debit through Antom AMS).
//! On a terminal it is interactive; piped, it reads to EOF and prints each finished sale as
//! one JSON line on stdout (human text goes to stderr).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::exit::{Exit, Failure, OrExit};
use super::{EXIT_NOT_PAID, EXIT_OK};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::daemon::console::{self, Line};
use crate::engine::{Engine, EngineError, SaleRequest, ScanOutcome};
use crate::gateway::Gateway;
use crate::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
use crate::gateway::keys::PrivateKey;
use crate::journal::Journal;
use crate::output::terminal::TerminalOutput;
use crate::sandbox::{DEFAULT_APP_ID, DEFAULT_CLIENT_ID};
use crate::view::SaleView;

const CANCEL_GIVE_UP_AFTER: Duration = Duration::from_secs(60);

pub async fn run(journal: Option<PathBuf>) -> Exit {
    let mut stop = Stop::catch()
        .map_err(|e| Failure::failed(format!("cannot catch Ctrl-C for the demo: {e}")))?;
    let interactive = std::io::stdin().is_terminal();
    // Kept alive until the end of the demo; the sandbox's keys (and, unless a journal was
    // named, the journal) go with it.
    let temp = tempfile::Builder::new()
        .prefix("scanpay-demo-")
        .tempdir()
        .map_err(|e| {
            Failure::failed(format!(
                "cannot create a temporary directory for the demo: {e}"
            ))
        })?;
    let journal_path = journal.unwrap_or_else(|| temp.path().join("journal.sqlite"));
    let config = Config::demo(&journal_path).or_usage()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The real Open Platform client, against the sandbox served over HTTP on loopback.
    let sandbox = super::sandbox::start(
        ([127, 0, 0, 1], 0).into(),
        &temp.path().join("sandbox"),
        DEFAULT_APP_ID,
        DEFAULT_CLIENT_ID,
        None,
    )
    .await
    .map_err(|e| Failure::failed(format!("cannot start the sandbox: {e}")))?;
    // Alipay codes through the Open Platform, WeChat Pay codes through APIv3: both served
    // by the sandbox, one scanner line for either.
    // Members are bound and auto-debited through Antom AMS, also served by the sandbox.
    let ams = ams_client(&sandbox, &config, clock.clone()).or_failed()?;
    let gateway: Arc<dyn Gateway> = Arc::new(
        crate::gateway::router::Router::new(vec![
            openapi_client(&sandbox, &config, clock.clone()).or_failed()?,
            wechat_client(&sandbox, &config, clock.clone()).or_failed()?,
            Arc::new(MemberPay(ams.clone())),
        ])
        .or_failed()?,
    );
    let journal = Arc::new(Journal::open(&config.journal.path).or_usage()?);
    let members = demo_members(journal.clone(), ams).or_failed()?;
    // The binding shown, waiting for `approve`: member id and its authState.
    let mut binding: Option<(String, String)> = None;
    let human: Box<dyn std::io::Write + Send> = if interactive {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::io::stderr())
    };
    let color = interactive && std::io::stdout().is_terminal();
    let output = Arc::new(TerminalOutput::new(
        human,
        color,
        &config.terminal.id,
        config.terminal.zone,
    ));
    let engine = Engine::new(
        journal,
        gateway,
        clock,
        output.clone(),
        config.engine_settings(Some(CANCEL_GIVE_UP_AFTER), true),
    );
    let emit = |sale: &SaleView| {
        if !interactive {
            super::out(&crate::api::wire::sale_line(sale));
        }
    };
    output.say(&format!(
        "scanpay demo: Open Platform, WeChat Pay and AMS (members) clients -> sandbox at {}, journal {}",
        sandbox.url,
        config.journal.path.display()
    ));
    if let Some(log) = super::DEMO_LOG.get() {
        output.say(&format!(
            "the demo's log (warnings, errors): {}",
            log.display()
        ));
    }
    if interactive {
        output.say(
            "type an amount (12.50) to start a sale, then a payment code (Alipay 286000000000000000, WeChat Pay 134567890123450000);",
        );
        output.say("the code's last two digits choose the sandbox's answer (see the README); 'qr' shows the sale's QR for the customer to scan, 'scan-qr' plays the customer paying it; 'cancel' aborts, 'quit' ends");
        output.say("members: 'bind M1' shows M1's wallet binding QR, 'approve' plays the customer approving it, 'member M1 12.50' charges a sale to the bound member");
    }
    match engine.recover().await {
        Ok(finished) => finished.iter().for_each(emit),
        Err(e) => {
            return Err(Failure::failed(format!("finishing earlier attempts: {e}")));
        }
    }

    // Bytes, not text: a scanner can send anything, and garbage must not end the demo.
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        if interactive {
            use std::io::Write;
            print!(
                "{}> ",
                if engine.armed().is_some() {
                    "scan"
                } else {
                    "amount"
                }
            );
            let _ = std::io::stdout().flush();
        }
        buf.clear();
        let read = tokio::select! {
            read = stdin.read_until(b'\n', &mut buf) => read,
            why = stop.recv() => {
                output.say(&format!("{why}: ending the demo"));
                break;
            }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                output.say(&format!("stdin: {e}; ending the demo"));
                break;
            }
        }
        let line = match console::parse(&buf) {
            Line::Empty => continue,
            Line::Quit => break,
            Line::Cancel => {
                match engine.armed() {
                    // Its QR is shown: closed with the gateway now.
                    Some(id) if shows_qr(&engine, &id) => {
                        let ended = match engine.expedite(&id) {
                            Ok(()) => engine.resolve_sale(&id).await,
                            Err(e) => Err(e),
                        };
                        match ended {
                            Ok(view) => emit(&view),
                            Err(e) => output.say(&format!("cannot cancel: {e}")),
                        }
                    }
                    Some(id) => match engine.abort(&id, "cancelled by the cashier") {
                        Ok(view) => emit(&view),
                        Err(e) => output.say(&format!("cannot cancel: {e}")),
                    },
                    None => output.say("no sale is waiting"),
                }
                continue;
            }
            Line::Qr => {
                match engine.armed() {
                    Some(id) => {
                        if let Err(e) = engine
                            .present(&id, crate::gateway::Presentation::OrderCode)
                            .await
                        {
                            output.say(&format!("no QR: {e}"));
                        }
                    }
                    None => output.say("no sale is waiting: type an amount first"),
                }
                continue;
            }
            Line::CustomerPaysQr => {
                let shown = engine
                    .armed()
                    .and_then(|id| engine.view(&id).ok())
                    .and_then(|v| v.qr.map(|q| (v.sale_id, q.request_id)));
                let Some((id, request_id)) = shown else {
                    output.say("no QR is shown: type 'qr' first");
                    continue;
                };
                // The customer scans and confirms in the wallet: the sandbox's admin call.
                if let Err(e) = customer_pays(&sandbox.origin, &request_id).await {
                    output.say(&format!("the sandbox did not play the customer: {e}"));
                    continue;
                }
                output.say("the customer scanned the QR and confirmed in the wallet");
                match engine.resolve_sale(&id).await {
                    Ok(view) => emit(&view),
                    Err(e) => output.say(&format!("error: {e}")),
                }
                continue;
            }
            Line::Bind(member_id) => {
                match members.start_binding(&member_id, &*output).await {
                    Ok(started) => {
                        output.say("type 'approve' to play the customer approving in the wallet");
                        binding = Some((member_id, started.auth_state));
                    }
                    Err(e) => output.say(&format!("cannot bind {member_id}: {}", e.message)),
                }
                continue;
            }
            Line::Approve => {
                let Some((member_id, auth_state)) = binding.take() else {
                    output.say("no binding waits for the customer: type 'bind M1' first");
                    continue;
                };
                // The customer scans the QR and approves in the wallet, which hands the
                // auth code to the store's page: the sandbox's admin call plays both.
                let code = match customer_approves(&sandbox.origin, &auth_state).await {
                    Ok(code) => code,
                    Err(e) => {
                        output.say(&format!("the sandbox did not play the customer: {e}"));
                        continue;
                    }
                };
                match members
                    .complete_binding(&member_id, &code, Some(&auth_state))
                    .await
                {
                    Ok(crate::api::members::Exchanged::Bound(row)) => output.say(&format!(
                        "member {member_id} is bound to {}: 'member {member_id} 12.50' charges them",
                        row.wallet
                    )),
                    Ok(crate::api::members::Exchanged::Failed(_, reason)) => {
                        output.say(&format!("cannot bind {member_id}: {reason}"))
                    }
                    Ok(crate::api::members::Exchanged::Unclear(_, why)) => output.say(&format!(
                        "no trusted answer from the wallet for {member_id} ({why}): type 'bind {member_id}' to start again"
                    )),
                    Err(e) => output.say(&format!("cannot bind {member_id}: {}", e.message)),
                }
                continue;
            }
            Line::Member { member_id, amount } => {
                if let Some(id) = engine.armed() {
                    output.say(&format!(
                        "sale {id} was still waiting for a scan: cancelling it"
                    ));
                    if let Ok(view) = engine.abort(&id, "replaced by a new sale") {
                        emit(&view);
                    }
                }
                if let Some(view) =
                    member_sale(&engine, &members, &member_id, &amount, &config, &output).await
                {
                    emit(&view);
                }
                continue;
            }
            Line::Amount(text) => {
                if let Some(id) = engine.armed() {
                    output.say(&format!(
                        "sale {id} was still waiting for a scan: cancelling it"
                    ));
                    if let Ok(view) = engine.abort(&id, "replaced by a new sale") {
                        emit(&view);
                    }
                }
                let amount = match console::sale_amount(&text, config.terminal.currency) {
                    Ok(a) => a,
                    Err(why) => {
                        output.say(&why);
                        continue;
                    }
                };
                let request = SaleRequest::at_the_till(amount);
                match engine.arm(request) {
                    Ok(_) => {}
                    Err(e @ EngineError::Journal(_)) => {
                        output.say(&format!("error: {e}"));
                        return Ok(EXIT_NOT_PAID);
                    }
                    Err(e) => output.say(&format!("sale refused: {e}")),
                }
                continue;
            }
            Line::Scan(text) => text,
        };
        let outcome = tokio::select! {
            outcome = engine.scan(&line) => outcome,
            why = stop.recv() => {
                output.say(&format!("{why}: ending the demo with a payment in progress"));
                break;
            }
        };
        if let ScanOutcome::Attempted { sale } = outcome {
            // A code scanned beside the sale's QR: the QR is closed (or, if the customer
            // paid it too, reversed) before the next sale.
            let sale = if sale
                .attempts
                .iter()
                .any(|a| a.method.presented() && !a.state.is_final())
            {
                engine.resolve_sale(&sale.sale_id).await.unwrap_or(sale)
            } else {
                sale
            };
            emit(&sale);
        }
    }
    // A QR still shown is closed with the gateway: the demo leaves nothing open.
    if let Some(id) = engine.armed()
        && shows_qr(&engine, &id)
        && engine.expedite(&id).is_ok()
        && let Ok(view) = engine.resolve_sale(&id).await
    {
        emit(&view);
    }
    if let Some(id) = engine.armed()
        && let Ok(view) = engine.abort(&id, "input ended before a payment code was scanned")
    {
        emit(&view);
    }
    Ok(EXIT_OK)
}

/// A sale of `amount` charged to bound member `member_id`, by the rules of `member_id` in
/// `POST /v1/sales` (src/api/sales.rs): a member who cannot be charged gets no sale; over a
/// limit the sale waits for a scanned code. The sale when it has ended.
async fn member_sale(
    engine: &Engine,
    members: &crate::api::members::Members,
    member_id: &str,
    amount: &str,
    config: &Config,
    output: &TerminalOutput,
) -> Option<SaleView> {
    let amount = match console::sale_amount(amount, config.terminal.currency) {
        Ok(a) => a,
        Err(why) => {
            output.say(&why);
            return None;
        }
    };
    let zone = engine.zone();
    let day_start = zone.day(zone.date_of(chrono::Utc::now())).0;
    let charge = match members.charge_for(member_id, amount, day_start) {
        Ok(c) => c,
        Err(e) => {
            output.say(&format!("member {member_id} not charged: {}", e.message));
            return None;
        }
    };
    let view = match engine.arm(SaleRequest::at_the_till(amount)) {
        Ok(v) => v,
        Err(e) => {
            output.say(&format!("sale refused: {e}"));
            return None;
        }
    };
    match charge {
        Ok(charge) => match engine.charge_member(&view.sale_id, charge).await {
            Ok(view) if view.state.is_final() => Some(view),
            Ok(view) => engine.resolve_sale(&view.sale_id).await.ok(),
            Err(e) => {
                output.say(&format!("member {member_id} not charged: {e}"));
                None
            }
        },
        Err(why) => {
            if let Err(e) =
                engine
                    .journal()
                    .note_refused_scan(&view.sale_id, &why, chrono::Utc::now())
            {
                output.say(&format!("error: {e}"));
            }
            output.say(&why);
            None
        }
    }
}

/// The sandbox's customer approves the binding consulted under `auth_state`; the auth code
/// the wallet gives the store.
async fn customer_approves(
    origin: &str,
    auth_state: &str,
) -> Result<crate::gateway::alipay_ams::authorizations::Token, String> {
    let url = format!(
        "{}/_sandbox/authorizations/approve?auth_state={auth_state}",
        origin.trim_end_matches('/')
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let ok = answer.status().is_success();
    let text = answer.text().await.map_err(|e| e.to_string())?;
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|_| text.clone())?;
    match body["auth_code"].as_str() {
        Some(code) if ok => Ok(crate::gateway::alipay_ams::authorizations::Token::new(code)),
        _ => Err(body.to_string()),
    }
}

/// The demo's members: bindings over the AMS client, their tokens sealed under a key made
/// for this run (it goes with the demo).
fn demo_members(
    journal: Arc<Journal>,
    ams: Arc<crate::gateway::alipay_ams::Ams>,
) -> Result<crate::api::members::Members, String> {
    let key: [u8; 32] = rand::random();
    let keys = crate::journal::members::TokenKeys::new(&key, &[])?;
    let config = crate::api::members::MembersConfig {
        keys: Arc::new(keys),
        wallet: "ALIPAY_CN".into(),
        auth_redirect_url: "https://127.0.0.1/member/bound".into(),
        terminal_type: "WAP".into(),
        os_type: None,
        refresh_before: Duration::from_secs(86_400),
        refresh_every: Duration::from_secs(300),
        max_per_sale: None,
        max_per_day: None,
        barcode: None,
    };
    Ok(crate::api::members::Members::new(config, journal, ams))
}

/// The AMS client against the sandbox (the app's key, the sandbox's gateway key).
fn ams_client(
    sandbox: &super::sandbox::Running,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<crate::gateway::alipay_ams::Ams>, String> {
    use crate::gateway::alipay_ams::wire::Merchant;
    use crate::gateway::alipay_ams::{Ams, AmsSettings};
    let app_key_file = sandbox
        .keys
        .app_private_key_file
        .as_ref()
        .ok_or("the sandbox has no app key")?;
    let settings = AmsSettings {
        origin: url::Url::parse(&sandbox.origin).map_err(|e| e.to_string())?,
        client_id: DEFAULT_CLIENT_ID.to_string(),
        key_version: 1,
        private_key: PrivateKey::load(app_key_file).map_err(|e| e.to_string())?,
        alipay_public_key: sandbox.keys.gateway_key.public_key(),
        merchant: Merchant {
            reference_merchant_id: "M0001".into(),
            merchant_name: "Demo Cafe".into(),
            merchant_mcc: "5812".into(),
            reference_store_id: "S0001".into(),
            store_name: "Demo Cafe Main St".into(),
            merchant_region: None,
            settlement_currency: None,
            payment_notify_url: None,
        },
        payment_expiry: None,
        timeout: config.gateway.timeout(),
    };
    Ok(Arc::new(Ams::new(settings, clock)?))
}

/// The AMS client as the demo's router sees it: members' auto-debit only (`Alipay+`, the
/// wallet `Router::pay_agreement` looks for), so Alipay codes stay with the Open Platform;
/// its request ids end in `M` so later calls about them come back here.
struct MemberPay(Arc<crate::gateway::alipay_ams::Ams>);

#[async_trait::async_trait]
impl Gateway for MemberPay {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn policy(&self) -> crate::gateway::Policy {
        self.0.policy()
    }
    fn accepts(&self, wallet: crate::paycode::Wallet) -> bool {
        wallet == crate::paycode::Wallet::AlipayPlus
    }
    fn request_id_tag(&self, _wallet: crate::paycode::Wallet) -> &'static str {
        "M"
    }
    fn policy_for(&self, request_id: &str) -> crate::gateway::Policy {
        self.0.policy_for(request_id)
    }
    fn clock_skew_s(&self) -> Option<i64> {
        self.0.clock_skew_s()
    }
    fn clock_agrees(&self) -> bool {
        self.0.clock_agrees()
    }
    fn signing_key(&self, wallet: crate::paycode::Wallet) -> Option<String> {
        self.0.signing_key(wallet)
    }
    async fn pay(
        &self,
        request: &crate::gateway::PayRequest,
    ) -> crate::gateway::Outcome<crate::gateway::Paid> {
        self.0.pay(request).await
    }
    async fn pay_agreement(
        &self,
        request: &crate::gateway::AgreementRequest,
    ) -> crate::gateway::Outcome<crate::gateway::Paid> {
        self.0.pay_agreement(request).await
    }
    async fn inquire(
        &self,
        request_id: &str,
    ) -> crate::gateway::Outcome<crate::gateway::TradeStatus> {
        self.0.inquire(request_id).await
    }
    async fn cancel(&self, request_id: &str) -> crate::gateway::Outcome<crate::gateway::Cancelled> {
        self.0.cancel(request_id).await
    }
    async fn refund(
        &self,
        request: &crate::gateway::RefundRequest,
    ) -> crate::gateway::Outcome<crate::gateway::Refunded> {
        self.0.refund(request).await
    }
    async fn inquire_refund(
        &self,
        request: &crate::gateway::RefundRequest,
    ) -> crate::gateway::Outcome<bool> {
        self.0.inquire_refund(request).await
    }
}

/// Whether the sale shows a QR for the customer now.
fn shows_qr(engine: &Engine, sale_id: &str) -> bool {
    engine.view(sale_id).is_ok_and(|v| v.qr.is_some())
}

/// The sandbox's customer pays the presented code sent under `request_id`.
async fn customer_pays(origin: &str, request_id: &str) -> Result<(), String> {
    let url = format!(
        "{}/_sandbox/customer?code={request_id}&action=pay",
        origin.trim_end_matches('/')
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(answer.text().await.unwrap_or_default())
    }
}

/// Ctrl-C, SIGTERM or SIGHUP (the terminal closed), caught from the demo's first step: it
/// ends through its normal exit, so its temporary directory (journal, keys) is removed.
struct Stop {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Stop {
    fn catch() -> std::io::Result<Stop> {
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted",
            _ = self.terminate.recv() => "terminated",
            _ = self.hangup.recv() => "the terminal closed",
        }
    }
}

fn openapi_client(
    sandbox: &super::sandbox::Running,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Gateway>, String> {
    let app_key_file = sandbox
        .keys
        .app_private_key_file
        .as_ref()
        .ok_or("the sandbox has no app key")?;
    let settings = OpenApiSettings {
        url: url::Url::parse(&sandbox.url).map_err(|e| e.to_string())?,
        app_id: DEFAULT_APP_ID.to_string(),
        private_key: PrivateKey::load(app_key_file).map_err(|e| e.to_string())?,
        alipay_public_key: sandbox.keys.gateway_key.public_key(),
        app_auth_token: None,
        notify_url: None,
        seller_id: None,
        sys_service_provider_id: None,
        timeout: config.gateway.timeout(),
        cert_mode: None,
    };
    Ok(Arc::new(crate::gateway::scrub::Scrubbed(Arc::new(
        OpenApi::new(settings, clock)?,
    ))))
}

/// The WeChat Pay client against the sandbox, verifying with its public key.
fn wechat_client(
    sandbox: &super::sandbox::Running,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Gateway>, String> {
    use crate::gateway::wechat_pay::{ApiV3Key, DEFAULT_DEADLINE, WechatPay, WechatSettings, wire};
    let app_key_file = sandbox
        .keys
        .app_private_key_file
        .as_ref()
        .ok_or("the sandbox has no app key")?;
    let w = &sandbox.keys.wechat;
    let settings = WechatSettings {
        origin: url::Url::parse(&sandbox.origin).map_err(|e| e.to_string())?,
        appid: crate::sandbox::WECHAT_APPID.to_string(),
        mchid: crate::sandbox::WECHAT_MCHID.to_string(),
        private_key: PrivateKey::load(app_key_file).map_err(|e| e.to_string())?,
        serial_no: crate::sandbox::WECHAT_MERCHANT_SERIAL.to_string(),
        apiv3_key: ApiV3Key::new(&w.apiv3_key)?,
        certificates: Vec::new(),
        public_key: Some(wire::PlatformKey {
            id: w.public_key_id.clone(),
            key: w.platform_key.public_key(),
            not_after: None,
        }),
        download_certificates: false,
        device_ip: None,
        goods_tag: None,
        timeout: config.gateway.timeout(),
        deadline: DEFAULT_DEADLINE,
    };
    Ok(Arc::new(crate::gateway::scrub::Scrubbed(Arc::new(
        WechatPay::new(settings, clock)?,
    ))))
}
