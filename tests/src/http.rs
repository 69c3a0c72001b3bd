//! A minimal HTTP/1.1 client for the service's endpoints: one `GET` over a fresh connection, so a test sees
//! exactly what a prober sees.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code and body.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` over a fresh connection, within 30 s.
///
/// # Panics
/// When the service does not answer within 30 s, or answers something that is not an HTTP response with a
/// content length.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.expect("connect to the service");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("send request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        // axum answers these endpoints with a content length; chunked bodies would need decoding.
        assert!(
            !head.to_ascii_lowercase().contains("chunked"),
            "{path}: unexpected chunked body: {head}"
        );
        Reply {
            status,
            body: body.to_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .expect("GET within 30s")
}
