//! `scanpay sandbox --listen ADDR`: the sandbox gateway as a standalone HTTP server speaking
//! the Open Platform protocol, with its own keys (generated once into `--dir`, then reused)
//! and a ready client configuration written beside them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::EXIT_OK;
use super::exit::{Exit, Failure, OrExit};
use crate::clock::SystemClock;
use crate::sandbox::{
    Sandbox, SandboxKeys, SandboxServer, ams_client_config, client_config, dual_client_config,
};

/// RSA modulus size of generated keys, as Alipay's own tooling generates.
pub const KEY_BITS: usize = 2048;

pub struct Args {
    pub listen: SocketAddr,
    pub dir: PathBuf,
    pub app_id: String,
    pub client_id: String,
    pub app_public_key: Option<PathBuf>,
    pub wechat_mode: crate::sandbox::WechatModes,
}

/// A running sandbox: its URL and the task serving it.
pub struct Running {
    /// The Open Platform endpoint.
    pub url: String,
    /// The AMS origin (paths `/ams/api/v1/payments/*` below it).
    pub origin: String,
    pub ledger_url: String,
    pub keys: SandboxKeys,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a sandbox server on `listen` with keys in `dir`.
pub async fn start(
    listen: SocketAddr,
    dir: &Path,
    app_id: &str,
    client_id: &str,
    app_public_key: Option<&Path>,
) -> Result<Running, String> {
    start_with_modes(
        listen,
        dir,
        app_id,
        client_id,
        app_public_key,
        crate::sandbox::WechatModes::default(),
    )
    .await
}

/// [`start`], with these WeChat Pay behaviours switched on (docs/gateways.md §8.7).
pub async fn start_with_modes(
    listen: SocketAddr,
    dir: &Path,
    app_id: &str,
    client_id: &str,
    app_public_key: Option<&Path>,
    wechat_modes: crate::sandbox::WechatModes,
) -> Result<Running, String> {
    let keys =
        SandboxKeys::load_or_create(dir, KEY_BITS, app_public_key).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = Arc::new(
        SandboxServer::new(
            Arc::new(Sandbox::new(Arc::new(SystemClock))),
            &keys,
            app_id,
            client_id,
        )
        .with_wechat_modes(wechat_modes),
    );
    let task = tokio::spawn(server.serve(listener));
    Ok(Running {
        url: format!("http://{addr}/gateway.do"),
        origin: format!("http://{addr}"),
        ledger_url: format!("http://{addr}/_sandbox/ledger"),
        keys,
        task,
    })
}

pub async fn run(args: Args) -> Exit {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: the sandbox listens on {}, not only on this machine",
            args.listen
        );
    }
    let running = start_with_modes(
        args.listen,
        &args.dir,
        &args.app_id,
        &args.client_id,
        args.app_public_key.as_deref(),
        args.wechat_mode,
    )
    .await
    .or_usage()?;
    super::out(&format!(
        "scanpay sandbox: Open Platform gateway at {}",
        running.url
    ));
    super::out(&format!("  app_id = {}", args.app_id));
    super::out(&format!(
        "  alipay_public_key_file = {}",
        running.keys.gateway_public_key_file.display()
    ));
    super::out(&format!(
        "scanpay sandbox: Antom AMS gateway at {} (client id {})",
        running.origin, args.client_id
    ));
    super::out(&format!(
        "scanpay sandbox: WeChat Pay APIv3 at {}/v3/ (mchid {}, platform certificate {})",
        running.origin,
        crate::sandbox::WECHAT_MCHID,
        running.keys.wechat.cert_serial
    ));
    let configs = [
        (
            "scanpay.toml",
            "client config",
            client_config(&running.url, &args.app_id, &running.keys),
        ),
        (
            "scanpay-ams.toml",
            "AMS client config",
            ams_client_config(&running.origin, &args.client_id, &running.keys),
        ),
        (
            "scanpay-dual.toml",
            "Alipay + WeChat Pay client config",
            dual_client_config(&running.url, &running.origin, &args.app_id, &running.keys),
        ),
    ];
    for (file, what, config) in configs {
        let Some(config) = config else { continue };
        let path = args.dir.join(file);
        std::fs::write(&path, config)
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
        super::out(&format!("  {what}: {}", path.display()));
    }
    super::out(&format!("  ledger: {}", running.ledger_url));
    let stop = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                },
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::select! {
        _ = running.task => eprintln!("error: the sandbox server stopped"),
        _ = stop => {}
    }
    Ok(EXIT_OK)
}
