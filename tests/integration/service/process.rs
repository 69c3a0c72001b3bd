//! The `service` binary as a user runs it: the embedded default with nothing set up, exit code 2 for bad
//! configuration, SIGTERM, and a known password that must appear nowhere.

use std::time::Duration;

use collex_tests::{PgTestDb, admin_url};
use config::{DbConfig, DbTarget};

use super::support::{command, every_endpoint, get, spawn, temp_dir, upstream, wait_for_status};

#[tokio::test]
async fn with_nothing_set_up_it_serves_sqlite_in_collex_db_and_stops_on_sigterm() {
    let dir = temp_dir();
    let svc = spawn(command(dir.path(), &[("SERVER_ADDR", "127.0.0.1:0")]));
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    let db = get(addr, "/health/database").await.json();
    assert_eq!(db["database"]["engine"], "sqlite");
    assert!(
        dir.path().join("collex.db").exists(),
        "the embedded default is ./collex.db"
    );
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "exit {exit:?}: {output}");
    assert!(
        output.contains("embedded default"),
        "start-up names the database: {output}"
    );
    assert!(output.contains("shutting down"), "{output}");
}

#[test]
fn invalid_configuration_exits_2_listing_every_problem() {
    let dir = temp_dir();
    let out = command(
        dir.path(),
        &[
            ("DB_PORT", "abc"),
            ("DB_MAX_OPEN_CONNS", "0"),
            ("DB_CONN_MAX_LIFETIME", "soon"),
        ],
    )
    .output()
    .expect("run service");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for var in ["DB_PORT", "DB_MAX_OPEN_CONNS", "DB_CONN_MAX_LIFETIME"] {
        assert!(err.contains(var), "{var} missing from {err}");
    }
}

#[tokio::test]
async fn a_known_password_appears_in_no_log_response_metric_error_or_debug_output() {
    const PASSWORD: &str = "Pw-9f3c1e7a-never-print";
    let test_db = PgTestDb::new().await;
    let pg = upstream(&admin_url());
    let user = match DbConfig::try_from_url(&admin_url()).expect("admin url").target {
        DbTarget::Postgres(t) => t.user,
        _ => "postgres".to_owned(),
    };
    let dir = temp_dir();
    let port = pg.port().to_string();
    let host = pg.ip().to_string();
    let env = [
        ("DB_HOST", host.as_str()),
        ("DB_PORT", port.as_str()),
        ("DB_USER", user.as_str()),
        ("DB_PASSWORD", PASSWORD),
        ("DB_NAME", test_db.name()),
        ("SERVER_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "trace"),
    ];
    let mut everything = String::new();

    // Logs at trace level (sqlx and SeaORM included), every endpoint and the metrics.
    let svc = spawn(command(dir.path(), &env));
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    everything.push_str(&every_endpoint(addr).await);
    let (_, output) = svc.terminate();
    assert!(
        output.contains(&format!("postgres://{user}@{host}:{port}/{}", test_db.name())),
        "{output}"
    );
    everything.push_str(&output);

    // A server that is not there: the connect error, and a start-up that keeps retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let closed_port = closed.port().to_string();
    let mut env_down = env;
    env_down[1] = ("DB_PORT", closed_port.as_str());
    let svc = spawn(command(dir.path(), &env_down));
    let addr = svc.listening_addr();
    everything.push_str(&get(addr, "/ready").await.body);
    everything.push_str(&get(addr, "/health/detailed").await.body);
    let (_, output) = svc.terminate();
    everything.push_str(&output);

    // Configuration errors with the password in a URL.
    let out = command(
        dir.path(),
        &[(
            "DATABASE_URL",
            &format!("postgres://u:{PASSWORD}@h/db?sslmode=bogus"),
        )],
    )
    .output()
    .expect("run service");
    assert_eq!(out.status.code(), Some(2));
    everything.push_str(&String::from_utf8_lossy(&out.stderr));

    // Debug and Display of everything that holds it, and the pool's errors.
    let cfg = DbConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
        .expect("valid config");
    let pool = service::Pool::new(&cfg).expect("pool");
    everything.push_str(&format!("{cfg:?} {cfg} {pool:?} {:?}", pool.stats()));
    let mut down_cfg = cfg.clone();
    if let DbTarget::Postgres(t) = &mut down_cfg.target {
        t.port = closed.port();
    }
    down_cfg.pool.acquire_timeout = Duration::from_secs(1);
    let down = service::Pool::new(&down_cfg).expect("pool");
    let err = down.acquire().await.expect_err("nothing listens there");
    everything.push_str(&format!("{err} {err:?}"));
    let err = config::connect(&down_cfg)
        .await
        .expect_err("nothing listens there");
    everything.push_str(&format!("{err} {err:?}"));
    pool.close().await;
    down.close().await;

    assert!(everything.len() > 10_000, "the capture is suspiciously small");
    assert!(!everything.contains(PASSWORD), "the password leaked");
}
