//! The HTTP server as a hostile or careless client meets it: invented methods and random paths cannot grow
//! `/metrics`; idle and half-sent sockets are closed; a connection limit keeps `/live` answering; SIGTERM
//! with a request stuck half-sent still ends within the shutdown deadline; a wrong method gets JSON.

use std::net::SocketAddr;
use std::time::Duration;

use collex_tests::PgTestDb;
use collex_tests::http::request;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::serve;
use super::support::{get, pg_config, start, wait_for_status};

/// The methods OpenTelemetry's HTTP conventions name; anything else is reported as `_OTHER`.
const KNOWN_METHODS: [&str; 10] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "_OTHER",
];

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

#[tokio::test]
async fn invented_methods_and_random_paths_cannot_grow_the_metrics() {
    let db = PgTestDb::new().await;
    let svc = start(pg_config(db.url())).await;
    let addr = svc.addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(10)).await;

    // 3,000 requests: invented methods on real routes and on random paths, and GETs of random paths.
    let paths = ["/live", "/health", "/metrics", "/ready"];
    futures::stream::iter(0..3000u32)
        .for_each_concurrent(16, |i| async move {
            let method = format!("M{i:05}X");
            let path = match i % 3 {
                0 => paths[(i as usize / 3) % paths.len()].to_owned(),
                1 => format!("/x{i}/{}", i.wrapping_mul(2_654_435_761)),
                _ => format!("/health/{i}?q={i}"),
            };
            let method = if i % 3 == 2 { "GET".to_owned() } else { method };
            let r = request(addr, &method, &path).await;
            assert!(r.status >= 400, "{method} {path} answered {}", r.status);
        })
        .await;

    let metrics = get(addr, "/metrics").await.body;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("http_server_requests_total{"))
        .collect();
    for line in &series {
        let method = label(line, "method").unwrap_or_default();
        assert!(KNOWN_METHODS.contains(&method), "method label {method:?}: {line}");
        let route = label(line, "route").unwrap_or_default();
        assert!(
            route == "unmatched"
                || [
                    "/live",
                    "/ready",
                    "/health",
                    "/health/detailed",
                    "/health/database",
                    "/metrics"
                ]
                .contains(&route),
            "route label {route:?} is not a route of the router: {line}"
        );
    }
    assert!(series.len() <= 20, "{} request series: {series:#?}", series.len());
    assert!(!metrics.contains("M00001X"), "an invented method became a label");
    assert!(metrics.len() < 64 * 1024, "/metrics is {} bytes", metrics.len());
    let other = series
        .iter()
        .find(|l| l.contains("method=\"_OTHER\"") && l.contains("route=\"/live\""))
        .expect("invented methods on /live are counted as _OTHER");
    let n: u64 = other.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(n, 250, "{other}");
    svc.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_wrong_method_gets_405_as_json_like_the_404() {
    let db = PgTestDb::new().await;
    let svc = start(pg_config(db.url())).await;
    let addr = svc.addr();
    let r = request(addr, "POST", "/health").await;
    assert_eq!(r.status, 405, "{}", r.head);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{}",
        r.head
    );
    assert_eq!(r.json()["error"], "method not allowed", "{}", r.body);
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "405 says which methods are allowed: {}",
        r.head
    );
    let missing = request(addr, "GET", "/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not found");
    svc.shutdown().await.expect("shutdown");
}

/// Reads until the server closes the socket; `false` when it is still open after `bound`.
async fn closed_by_server(mut s: TcpStream, bound: Duration) -> bool {
    let read_all = async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(bound, read_all).await.is_ok()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect to the service")
}

/// A connection that made one whole `/live` request, read its answer and stays open (keep-alive).
async fn kept_alive(addr: SocketAddr) -> TcpStream {
    let mut s = connect(addr).await;
    s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send a request");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.expect("read the response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s
}

#[tokio::test]
async fn idle_half_sent_and_kept_alive_sockets_are_closed_by_the_server() {
    let (_dir, svc, addr) = serve(&[
        ("SERVER_HEADER_READ_TIMEOUT", "1s"),
        ("SERVER_IDLE_TIMEOUT", "1s"),
    ])
    .await;

    let mut sockets = Vec::new();
    for _ in 0..100 {
        // Connected, nothing sent.
        sockets.push(connect(addr).await);
    }
    for _ in 0..100 {
        // A request head that never ends.
        let mut s = connect(addr).await;
        s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("send half a request");
        sockets.push(s);
    }
    for _ in 0..20 {
        // One whole request, then kept alive and idle.
        sockets.push(kept_alive(addr).await);
    }
    // Generous bound: the server closes them after about a second; a server without timeouts never does.
    let closed = futures::future::join_all(
        sockets
            .into_iter()
            .map(|s| closed_by_server(s, Duration::from_secs(20))),
    )
    .await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        open,
        0,
        "{open} of {} sockets were never closed by the server",
        closed.len()
    );
    assert_eq!(get(addr, "/live").await.status, 200);
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "{output}");
}

#[tokio::test]
async fn at_the_connection_limit_live_answers_once_other_connections_go() {
    let (_dir, svc, addr) = serve(&[
        ("SERVER_MAX_CONNECTIONS", "20"),
        ("SERVER_IDLE_TIMEOUT", "1h"),
        ("SERVER_HEADER_READ_TIMEOUT", "1h"),
    ])
    .await;

    // Twenty clients each make a request and keep their connection: the limit is reached.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(kept_alive(addr).await);
    }
    let probe = tokio::spawn(async move { get(addr, "/live").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !probe.is_finished(),
        "a 21st connection was served while 20 were open with SERVER_MAX_CONNECTIONS=20"
    );
    // One client leaves: the waiting connection is taken and answered.
    drop(held.pop());
    let r = tokio::time::timeout(Duration::from_secs(20), probe)
        .await
        .expect("/live answers once a connection is free")
        .expect("probe task");
    assert_eq!(r.status, 200);
    drop(held);
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "{output}");
}

#[tokio::test]
async fn sigterm_with_a_half_sent_request_exits_cleanly_at_the_shutdown_deadline() {
    let (_dir, svc, addr) = serve(&[
        ("SERVER_SHUTDOWN_TIMEOUT", "1s"),
        // Long, so that only the shutdown deadline can end the stuck request.
        ("SERVER_HEADER_READ_TIMEOUT", "1h"),
        ("SERVER_IDLE_TIMEOUT", "1h"),
    ])
    .await;
    let mut stuck = connect(addr).await;
    stuck
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("send half a request");
    // The server has the connection (it answers others meanwhile).
    assert_eq!(get(addr, "/live").await.status, 200);

    // terminate() panics if the process is still running 20 s after SIGTERM.
    let (exit, output) = svc.terminate();
    assert_eq!(
        exit.code(),
        Some(0),
        "the service must exit by itself with 0, not be killed: {exit:?}\n{output}"
    );
    assert!(
        output.contains("shutdown deadline"),
        "the log says connections were dropped at the deadline: {output}"
    );
    assert!(closed_by_server(stuck, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_connection_limit_that_does_not_fit_the_open_file_limit_is_lowered_with_a_warning() {
    let dir = super::support::temp_dir();
    // The hard limit cannot be raised without privileges: 128 files for 1024 connections and 100 pool ones.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=128:128")
        .arg(collex_tests::workspace_bin("service"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SERVER_ADDR", "127.0.0.1:0")
        .env("DB_MAX_OPEN_CONNS", "10")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let svc = super::support::spawn(cmd);
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    svc.wait_for_output("serving at most 54 connections");
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "{output}");
    assert!(output.contains("SERVER_MAX_CONNECTIONS=1024"), "{output}");
}
