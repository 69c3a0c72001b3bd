//! `SERVER_ADDR` as people type it: a host name is resolved when the service binds.

use super::support::{service, workdir};
use crate::service::support::{command, get, spawn};

#[tokio::test]
async fn a_host_name_in_server_addr_is_resolved_when_binding() {
    let dir = workdir();
    let proc = spawn(command(dir.path(), &[("SERVER_ADDR", "localhost:0")]));
    let addr = proc.listening_addr();
    assert!(
        addr.ip().is_loopback(),
        "localhost resolves to a loopback address: {addr}"
    );
    assert_eq!(get(addr, "/live").await.status, 200);
    let (exit, output) = proc.terminate();
    assert!(exit.success(), "{output}");
}

#[tokio::test]
async fn an_address_in_use_is_named_with_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = workdir();
    let (code, output) = service(dir.path(), &[("SERVER_ADDR", &addr)], &[]).await;
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!("cannot listen on {addr} (SERVER_ADDR)")),
        "{output}"
    );
    // Said once, readably, with what to do (not the OS error twice, as the error's source chain would).
    assert_eq!(
        output.to_lowercase().matches("already in use").count(),
        1,
        "{output}"
    );
    assert!(output.contains("set SERVER_ADDR to a free port"), "{output}");
}
