//! Helpers shared by the integration tests: the sandbox's ledger over HTTP, and a fake
//! gateway that answers each connection with a canned HTTP response.

#![allow(dead_code)]

pub mod procs;

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An LED-class device as sysfs shows one (brightness, max_brightness `1`, a timer trigger)
/// in `root/name`.
pub fn led_dir(root: &std::path::Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("brightness"), "0").unwrap();
    std::fs::write(d.join("max_brightness"), "1").unwrap();
    std::fs::write(d.join("trigger"), "[none] timer").unwrap();
    d
}

/// The sandbox ledger as JSON entries.
pub async fn ledger(url: &str) -> Vec<Value> {
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Serves each connection one canned answer (empty: close without answering), recording
/// each request's body. Returns `http://127.0.0.1:PORT` and the bodies seen.
pub async fn fake_http(answers: Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (mut stream, _) = listener.accept().await.unwrap();
            let body = read_request(&mut stream).await;
            record.lock().unwrap().push(body);
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        }
    });
    (format!("http://{addr}"), seen)
}

/// Reads one request (headers, then Content-Length bytes) and returns its body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return String::new();
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return text[end + 4..].to_string();
            }
        }
    }
}

/// One HTTP/1.1 request over the Unix socket; returns status and JSON body.
pub async fn call(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scanpay");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// The HTTP sandbox on loopback with the default app and client ids, its keys under
/// `dir/sbx`.
pub async fn sandbox(dir: &std::path::Path) -> scanpay::cli::sandbox::Running {
    scanpay::cli::sandbox::start(
        ([127, 0, 0, 1], 0).into(),
        &dir.join("sbx"),
        scanpay::sandbox::DEFAULT_APP_ID,
        scanpay::sandbox::DEFAULT_CLIENT_ID,
        None,
    )
    .await
    .unwrap()
}
