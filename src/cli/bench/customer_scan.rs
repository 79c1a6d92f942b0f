//! The customer scans: from the customer confirming in the (HTTP) sandbox to the sale `paid`
//! in the journal of a real `scanpay run`, with the notification receiver and without
//! (docs/gateways.md §12). Without it the figure is bounded by the inquiry pace (the Open
//! Platform's 3–6 s); with it, by the notification's way in and one inquiry.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::daemon_api::call;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// Milliseconds from the customer's confirmation to `paid`, one per sale, with a
/// notification receiver (`notify`) or without.
pub(super) async fn confirm_to_paid(
    work: &Path,
    sales: usize,
    notify: bool,
) -> Result<Vec<f64>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = work.join(if notify { "qr-notify" } else { "qr-inquiry" });
    let mut sandbox = Command::new(&exe)
        .args(["sandbox", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(sandbox.stdout.take().ok_or("no sandbox stdout")?).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let port: u16 = first
        .strip_suffix("/gateway.do")
        .and_then(|u| u.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("sandbox: no port in {first:?}"))?;
    for line in lines.by_ref() {
        if line
            .map_err(|e| e.to_string())?
            .trim()
            .starts_with("ledger:")
        {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let _sandbox = Kill(sandbox);
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let mut text = std::fs::read_to_string(dir.join("scanpay.toml")).map_err(|e| e.to_string())?;
    if notify {
        text = text.replacen(
            "[gateway]\n",
            &format!("[gateway]\nnotify_url = \"http://{listen}/notify/alipay\"\n"),
            1,
        );
        text += &format!("\n[notify]\nlisten = \"{listen}\"\n");
    }
    // The Open Platform's own inquiry pace: no [watchdog] inquiry_interval_ms.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("inquiry_interval_ms"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n[api]\nsocket = \"bench.sock\"\n";
    let config = dir.join("bench.toml");
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let socket = dir.join("bench.sock");
    let daemon = Command::new(&exe)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let _daemon = Kill(daemon);
    let limit = Duration::from_secs(10);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        if Instant::now() > end {
            return Err("the bench daemon did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    for _ in 0..sales {
        let body =
            serde_json::json!({"amount": "8.00", "currency": "CNY", "method": "customer_scan"});
        let (status, sale) = call(&socket, "POST", "/v1/sales", &[], Some(&body), limit)
            .await
            .map_err(|e| format!("{e:?}"))?;
        if status != 201 {
            return Err(format!("create: {status} {sale}"));
        }
        let id = sale["sale_id"].as_str().unwrap_or_default().to_string();
        let request_id = sale["qr"]["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // The watchdog has taken it and made its first inquiry.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let confirmed = Instant::now();
        let answer = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{port}/_sandbox/customer?code={request_id}&action=pay"
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("the sandbox's customer: {}", answer.status()));
        }
        loop {
            let (_, now) = call(&socket, "GET", &format!("/v1/sales/{id}"), &[], None, limit)
                .await
                .map_err(|e| format!("{e:?}"))?;
            if now["state"] == "paid" {
                break;
            }
            if confirmed.elapsed() > Duration::from_secs(30) {
                return Err(format!("sale {id} not paid within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(confirmed.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(samples)
}
