//! A minimal HTTP/1.1 client for the service's endpoints: one request over a fresh connection, so a test sees
//! exactly what a prober (or an attacker) sends and gets.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code, head and body.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
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

    /// The value of a header (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` over a fresh connection, within 30 s.
///
/// # Panics
/// As [`request`].
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path).await
}

/// `method path` over a fresh connection, within 30 s. `method` is sent as written, so a test can send any
/// token a client could.
///
/// # Panics
/// When the service does not answer within 30 s, or answers something that is not an HTTP response with a
/// content length.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.expect("connect to the service");
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
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
        // The service answers with a content length; chunked bodies would need decoding.
        assert!(
            !head.to_ascii_lowercase().contains("chunked"),
            "{path}: unexpected chunked body: {head}"
        );
        Reply {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .expect("the request is answered within 30s")
}
