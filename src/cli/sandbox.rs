//! `scanpay sandbox --listen ADDR`: the sandbox gateway as a standalone HTTP server speaking
//! the Open Platform protocol, with its own keys (generated once into `--dir`, then reused)
//! and a ready client configuration written beside them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::EXIT_OK;
use super::exit::{Exit, Failure, OrExit};
use crate::clock::SystemClock;
use crate::sandbox::{
    CertFiles, CertMode, Sandbox, SandboxKeys, SandboxServer, ams_client_config,
    cert_client_config, client_config, dual_client_config,
};

/// RSA modulus size of generated keys, as Alipay's own tooling generates.
pub const KEY_BITS: usize = 2048;

pub struct Args {
    /// `HOST:PORT`: an address, or a name such as `localhost` that resolves to one.
    pub listen: String,
    pub dir: PathBuf,
    pub app_id: String,
    pub client_id: String,
    pub app_public_key: Option<PathBuf>,
    pub wechat_mode: crate::sandbox::WechatModes,
    /// Play an Open Platform app in certificate mode (docs/gateways.md §9).
    pub cert_mode: bool,
}

/// A running sandbox: its URL and the task serving it.
pub struct Running {
    /// Where it listens (the address `--listen` resolved to).
    pub listening: SocketAddr,
    /// The Open Platform endpoint, at an address a client on this machine can connect to.
    pub url: String,
    /// The AMS origin (paths `/ams/api/v1/payments/*` below it).
    pub origin: String,
    pub ledger_url: String,
    pub keys: SandboxKeys,
    /// In certificate mode: the certificate files a client names.
    pub cert: Option<CertFiles>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Where a client on this machine reaches a server listening on `addr`: a wildcard address
/// (`0.0.0.0`, `::`) is not one to connect to, so the loopback address of its family stands in.
pub fn client_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
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
    start_full(
        listen,
        dir,
        app_id,
        client_id,
        app_public_key,
        wechat_modes,
        false,
    )
    .await
}

/// [`start_with_modes`], and with `cert_mode` the Open Platform app in certificate mode: a
/// root CA, the Alipay and app certificates written into `dir` (docs/gateways.md §9).
pub async fn start_full(
    listen: SocketAddr,
    dir: &Path,
    app_id: &str,
    client_id: &str,
    app_public_key: Option<&Path>,
    wechat_modes: crate::sandbox::WechatModes,
    cert_mode: bool,
) -> Result<Running, String> {
    let keys =
        SandboxKeys::load_or_create(dir, KEY_BITS, app_public_key).map_err(|e| e.to_string())?;
    let certs = if cert_mode {
        let app_file = keys.app_private_key_file.as_ref().ok_or(
            "--cert-mode issues the app certificate for the app key the sandbox generates: leave out --app-public-key",
        )?;
        let app_key =
            crate::gateway::keys::PrivateKey::load(app_file).map_err(|e| e.to_string())?;
        Some(
            CertMode::create(dir, KEY_BITS, app_id, &keys.gateway_key, &app_key)
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let listening = listener.local_addr().map_err(|e| e.to_string())?;
    let addr = client_addr(listening);
    let mut server = SandboxServer::new(
        Arc::new(Sandbox::new(Arc::new(SystemClock))),
        &keys,
        app_id,
        client_id,
    )
    .with_wechat_modes(wechat_modes);
    let cert = match certs {
        Some((mode, files)) => {
            server = server.with_cert_mode(mode);
            Some(files)
        }
        None => None,
    };
    let server = Arc::new(server);
    let task = tokio::spawn(server.serve(listener));
    Ok(Running {
        listening,
        url: format!("http://{addr}/gateway.do"),
        origin: format!("http://{addr}"),
        ledger_url: format!("http://{addr}/_sandbox/ledger"),
        keys,
        cert,
        task,
    })
}

/// `--listen`: an address, or a name (`localhost:8089`) resolved to its addresses, the first
/// that binds taken.
async fn start_on(listen: &str, args: &Args) -> Result<Running, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e} (write HOST:PORT, e.g. 127.0.0.1:8089)"))?
        .collect();
    let mut failure = format!("--listen {listen}: the name resolves to no address");
    for addr in addrs {
        match start_full(
            addr,
            &args.dir,
            &args.app_id,
            &args.client_id,
            args.app_public_key.as_deref(),
            args.wechat_mode,
            args.cert_mode,
        )
        .await
        {
            Ok(running) => return Ok(running),
            // Names the address tried (`--listen 127.0.0.1:8089: Address in use`).
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

pub async fn run(args: Args) -> Exit {
    let running = start_on(&args.listen, &args).await.or_usage()?;
    if !running.listening.ip().is_loopback() {
        eprintln!(
            "warning: the sandbox listens on {}, not only on this machine",
            running.listening
        );
    }
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
    if let Some(cert) = &running.cert {
        super::out(&format!(
            "scanpay sandbox: the Open Platform app is in certificate mode (root bundle {}); POST {}{} rotates the Alipay certificate",
            cert.root_cert_file.display(),
            running.origin,
            crate::sandbox::ROTATE_PATH
        ));
    }
    let cert_config = running
        .cert
        .as_ref()
        .and_then(|c| cert_client_config(&running.url, &args.app_id, &running.keys, c));
    let configs = [
        (
            "scanpay-cert.toml",
            "certificate-mode client config",
            cert_config,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_connect_to_loopback_when_the_sandbox_listens_on_every_address() {
        let at = |s: &str| client_addr(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8089"), "127.0.0.1:8089");
        assert_eq!(at("[::]:8089"), "[::1]:8089");
        assert_eq!(at("127.0.0.1:8089"), "127.0.0.1:8089");
        assert_eq!(at("192.0.2.7:8089"), "192.0.2.7:8089");
    }
}
