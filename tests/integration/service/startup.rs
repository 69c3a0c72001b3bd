//! Start-up of the real binary: failures that cannot heal by waiting (an invalid migration file, a checksum
//! mismatch) stop the retries, keep `/ready` at 503 with the reason and are logged once; with auto-migrate
//! off, pending migrations are reported; `LOG_FORMAT=json`. (A taken `SERVER_ADDR`: `edges::listen`.)

use std::time::{Duration, Instant};

use collex_tests::{PgTestDb, migrations_dir};

use super::support::{Proc, command, get, spawn, temp_dir, wait_for_status};

const HEADER: &str = "-- Migration: widgets\n-- Version: 001\n-- Description: widgets\n\n";
const ROLLBACK: &str =
    "-- Rollback Migration: widgets\n-- Version: 001\n-- Description: widgets\n\nDROP TABLE widgets;\n";

/// Polls `/ready` for `period` (longer than several retry pauses of the old every-2-s retry), asserting 503.
async fn stays_not_ready(addr: std::net::SocketAddr, period: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let r = get(addr, "/ready").await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(get(addr, "/live").await.status, 200);
        if started.elapsed() > period {
            return r.json();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Start-up stopped for a reason containing `reason`: `/ready` stays 503 with it, says it is not retried,
/// and the log says it once, however long the service runs.
async fn stopped_and_said_once(svc: Proc, addr: std::net::SocketAddr, reason: &str) {
    let ready = stays_not_ready(addr, Duration::from_secs(6)).await;
    assert_eq!(ready["checks"]["migrations"], "failed", "{ready}");
    let error = ready["error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "{error}");
    assert!(error.contains("not retried"), "{error}");
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "{output}");
    assert_eq!(
        occurrences(&output, reason),
        1,
        "the failure is logged once, not at every retry: {output}"
    );
}

#[tokio::test]
async fn an_invalid_migration_file_stops_start_up_retries_and_keeps_ready_503_with_the_reason() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("migrations/001_widgets.sql"),
        HEADER.replace("Version: 001", "Version: 002") + "CREATE TABLE widgets (id integer PRIMARY KEY);\n",
    )
    .expect("write migration");
    std::fs::write(dir.path().join("migrations/001_rollback.sql"), ROLLBACK).expect("write rollback");
    // SQLite, the embedded default.
    let svc = spawn(command(dir.path(), &[("SERVER_ADDR", "127.0.0.1:0")]));
    let addr = svc.listening_addr();
    svc.wait_for_output("001_widgets.sql");
    stopped_and_said_once(svc, addr, "Version: 002").await;
}

#[tokio::test]
async fn a_checksum_mismatch_stops_start_up_retries_on_postgresql() {
    let db = PgTestDb::new().await;
    let dir = temp_dir();
    let migration = dir.path().join("migrations/001_widgets.sql");
    std::fs::write(
        &migration,
        format!("{HEADER}CREATE TABLE widgets (id integer PRIMARY KEY);\n"),
    )
    .expect("write migration");
    std::fs::write(dir.path().join("migrations/001_rollback.sql"), ROLLBACK).expect("write rollback");
    let env = [("DATABASE_URL", db.url()), ("SERVER_ADDR", "127.0.0.1:0")];

    let first = spawn(command(dir.path(), &env));
    wait_for_status(first.listening_addr(), "/ready", 200, Duration::from_secs(30)).await;
    let (exit, output) = first.terminate();
    assert!(exit.success(), "{output}");

    // The applied file is edited afterwards.
    std::fs::write(
        &migration,
        format!("{HEADER}CREATE TABLE widgets (id bigint PRIMARY KEY);\n"),
    )
    .expect("edit migration");
    let second = spawn(command(dir.path(), &env));
    let addr = second.listening_addr();
    second.wait_for_output("modified after it was applied");
    stopped_and_said_once(second, addr, "modified after it was applied").await;
}

#[tokio::test]
async fn with_auto_migrate_off_pending_migrations_are_reported_by_ready_and_logged() {
    let dir = temp_dir();
    for e in std::fs::read_dir(migrations_dir()).expect("migrations").flatten() {
        std::fs::copy(e.path(), dir.path().join("migrations").join(e.file_name())).expect("copy");
    }
    let svc = spawn(command(
        dir.path(),
        &[("SERVER_ADDR", "127.0.0.1:0"), ("DB_AUTO_MIGRATE", "false")],
    ));
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    let ready = get(addr, "/ready").await.json();
    assert_eq!(ready["checks"]["migrations"], "pending", "{ready}");
    let warning = ready["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("pending"), "{ready}");
    assert!(warning.contains("DB_AUTO_MIGRATE"), "{ready}");
    svc.wait_for_output("pending");
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "{output}");
    let line = output
        .lines()
        .find(|l| l.contains("WARN") && l.contains("pending"))
        .unwrap_or_else(|| panic!("no warning at start-up: {output}"));
    assert!(line.contains("DB_AUTO_MIGRATE"), "{line}");
}

#[tokio::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let dir = temp_dir();
    let svc = spawn(command(
        dir.path(),
        &[("SERVER_ADDR", "127.0.0.1:0"), ("LOG_FORMAT", "json")],
    ));
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "{output}");
    let mut logged = 0;
    for line in output
        .lines()
        .filter(|l| !l.starts_with("collex service listening"))
    {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{output}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        logged += 1;
    }
    assert!(logged >= 3, "{output}");

    let out = command(dir.path(), &[("LOG_FORMAT", "yaml")])
        .output()
        .expect("run service");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LOG_FORMAT") && err.contains("json"), "{err}");
}
