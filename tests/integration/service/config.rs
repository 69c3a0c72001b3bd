//! Configuration: every variable's default, `DATABASE_URL` winning, the embedded default, and one test per
//! invalid variable checking that the message names the variable, the value and the expected form.

use std::collections::HashMap;
use std::time::Duration;

use config::{AppConfig, ConfigError, DbConfig, DbTarget, LogConfig, LogFormat, SslMode, TargetSource};

fn load(vars: &[(&str, &str)]) -> Result<AppConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    AppConfig::from_lookup(|k| map.get(k).cloned())
}

fn log(vars: &[(&str, &str)]) -> Result<LogConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    LogConfig::from_lookup(|k| map.get(k).cloned())
}

/// The single problem reported for `var=value`, as text.
fn problem(var: &str, value: &str) -> String {
    let err = load(&[("DB_HOST", "db"), (var, value)]).expect_err("invalid value is rejected");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "exactly one problem: {err}");
    assert_eq!(problems[0].var, var);
    problems[0].to_string()
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} should mention {p:?}");
    }
}

#[test]
fn nothing_set_selects_embedded_sqlite_and_spec_defaults() {
    let cfg = load(&[]).expect("valid");
    assert_eq!(cfg.db.source, TargetSource::EmbeddedDefault);
    assert_eq!(cfg.db.target.to_string(), "sqlite://./collex.db");
    assert_eq!(cfg.server_addr.to_string(), "127.0.0.1:8080");
    let p = &cfg.db.pool;
    assert_eq!((p.max_open, p.max_idle), (100, 10));
    assert_eq!(p.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(p.max_idle_time, Some(Duration::from_secs(1800)));
    assert_eq!(p.acquire_timeout, Duration::from_secs(30));
    assert!(cfg.db.auto_migrate);
    assert_eq!(cfg.db.migrate_path, std::path::PathBuf::from("migrations"));
}

#[test]
fn every_variable_of_the_spec_example_is_read() {
    let cfg = load(&[
        ("DB_HOST", "db.example.com"),
        ("DB_PORT", "6543"),
        ("DB_USER", "collex_user"),
        ("DB_PASSWORD", "secure_password_here"),
        ("DB_NAME", "collex_production"),
        ("DB_SSL_MODE", "require"),
        ("DB_MAX_OPEN_CONNS", "200"),
        ("DB_MAX_IDLE_CONNS", "20"),
        ("DB_CONN_MAX_LIFETIME", "2h"),
        ("DB_CONN_MAX_IDLE_TIME", "1h30m"),
        ("DB_CONN_ACQUIRE_TIMEOUT", "90s"),
        ("DB_AUTO_MIGRATE", "false"),
        ("DB_MIGRATE_PATH", "db/migrations"),
        ("SERVER_ADDR", "0.0.0.0:9000"),
    ])
    .expect("valid");
    let DbTarget::Postgres(pg) = &cfg.db.target else {
        panic!("postgres expected")
    };
    assert_eq!(cfg.db.source, TargetSource::Variables);
    assert_eq!(
        (pg.host.as_str(), pg.port, pg.user.as_str()),
        ("db.example.com", 6543, "collex_user")
    );
    assert_eq!(pg.database, "collex_production");
    assert_eq!(pg.ssl_mode, SslMode::Require);
    assert_eq!(pg.password_secret(), Some("secure_password_here"));
    let p = &cfg.db.pool;
    assert_eq!((p.max_open, p.max_idle), (200, 20));
    assert_eq!(p.max_lifetime, Some(Duration::from_secs(7200)));
    assert_eq!(p.max_idle_time, Some(Duration::from_secs(5400)));
    assert_eq!(p.acquire_timeout, Duration::from_secs(90));
    assert!(!cfg.db.auto_migrate);
    assert_eq!(cfg.db.migrate_path, std::path::PathBuf::from("db/migrations"));
    assert_eq!(cfg.server_addr.to_string(), "0.0.0.0:9000");
}

#[test]
fn database_url_wins_over_db_variables() {
    let cfg = load(&[
        (
            "DATABASE_URL",
            "postgres://app:pw@url-host:5433/urldb?sslmode=verify-full",
        ),
        ("DB_HOST", "var-host"),
        ("DB_NAME", "vardb"),
        ("DB_SSL_MODE", "disable"),
    ])
    .expect("valid");
    let DbTarget::Postgres(pg) = &cfg.db.target else {
        panic!("postgres expected")
    };
    assert_eq!(cfg.db.source, TargetSource::DatabaseUrl);
    assert_eq!(
        (pg.host.as_str(), pg.port, pg.database.as_str()),
        ("url-host", 5433, "urldb")
    );
    assert_eq!(pg.ssl_mode, SslMode::VerifyFull);
    assert_eq!(pg.password_secret(), Some("pw"));
}

#[test]
fn db_ssl_mode_applies_to_a_database_url_without_sslmode() {
    let cfg = load(&[("DATABASE_URL", "postgres://app@h/db"), ("DB_SSL_MODE", "prefer")]).expect("valid");
    let DbTarget::Postgres(pg) = &cfg.db.target else {
        panic!("postgres expected")
    };
    assert_eq!(pg.ssl_mode, SslMode::Prefer);
}

#[test]
fn every_ssl_mode_is_accepted() {
    for mode in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ] {
        let cfg = load(&[("DB_SSL_MODE", mode)]).expect("valid mode");
        let DbTarget::Postgres(pg) = &cfg.db.target else {
            panic!("DB_SSL_MODE alone selects postgres")
        };
        assert_eq!(pg.ssl_mode.as_str(), mode);
    }
}

#[test]
fn zero_durations_mean_no_limit_and_idle_cap_is_capped_at_max_open() {
    let cfg = load(&[
        ("DB_CONN_MAX_LIFETIME", "0"),
        ("DB_CONN_MAX_IDLE_TIME", "0s"),
        ("DB_MAX_OPEN_CONNS", "5"),
        ("DB_MAX_IDLE_CONNS", "50"),
    ])
    .expect("valid");
    assert_eq!(cfg.db.pool.max_lifetime, None);
    assert_eq!(cfg.db.pool.max_idle_time, None);
    assert_eq!(cfg.db.pool.max_idle, 5);
}

#[test]
fn a_sqlite_database_url_is_used_as_is() {
    let cfg = load(&[("DATABASE_URL", "sqlite::memory:")]).expect("valid");
    assert!(matches!(cfg.db.target, DbTarget::Sqlite(ref s) if s.url == "sqlite::memory:"));
}

#[test]
fn invalid_db_port_is_reported() {
    assert_mentions(
        &problem("DB_PORT", "54x"),
        &["DB_PORT", "\"54x\"", "port number from 1 to 65535"],
    );
    assert_mentions(&problem("DB_PORT", "0"), &["DB_PORT", "\"0\""]);
}

#[test]
fn invalid_db_ssl_mode_is_reported() {
    assert_mentions(
        &problem("DB_SSL_MODE", "on"),
        &[
            "DB_SSL_MODE",
            "\"on\"",
            "disable, allow, prefer, require, verify-ca, verify-full",
        ],
    );
}

#[test]
fn missing_db_ssl_root_cert_file_is_reported() {
    assert_mentions(
        &problem("DB_SSL_ROOT_CERT", "/nonexistent/ca.pem"),
        &["DB_SSL_ROOT_CERT", "/nonexistent/ca.pem", "CA certificate file"],
    );
}

#[test]
fn invalid_db_max_open_conns_is_reported() {
    assert_mentions(
        &problem("DB_MAX_OPEN_CONNS", "abc"),
        &["DB_MAX_OPEN_CONNS", "\"abc\"", "positive integer"],
    );
    assert_mentions(
        &problem("DB_MAX_OPEN_CONNS", "0"),
        &["DB_MAX_OPEN_CONNS", "\"0\"", "positive integer"],
    );
}

#[test]
fn invalid_db_max_idle_conns_is_reported() {
    assert_mentions(
        &problem("DB_MAX_IDLE_CONNS", "-1"),
        &["DB_MAX_IDLE_CONNS", "\"-1\"", "non-negative integer"],
    );
}

#[test]
fn invalid_db_conn_max_lifetime_is_reported() {
    assert_mentions(
        &problem("DB_CONN_MAX_LIFETIME", "1 hour-ish"),
        &["DB_CONN_MAX_LIFETIME", "\"1 hour-ish\"", "1h, 30m, 1h30m or 90s"],
    );
}

#[test]
fn invalid_db_conn_max_idle_time_is_reported() {
    assert_mentions(
        &problem("DB_CONN_MAX_IDLE_TIME", "30"),
        &["DB_CONN_MAX_IDLE_TIME", "\"30\"", "1h, 30m, 1h30m or 90s"],
    );
}

#[test]
fn invalid_db_conn_acquire_timeout_is_reported() {
    assert_mentions(
        &problem("DB_CONN_ACQUIRE_TIMEOUT", "0s"),
        &["DB_CONN_ACQUIRE_TIMEOUT", "\"0s\"", "positive duration"],
    );
}

#[test]
fn invalid_db_auto_migrate_is_reported() {
    assert_mentions(
        &problem("DB_AUTO_MIGRATE", "maybe"),
        &["DB_AUTO_MIGRATE", "\"maybe\"", "true or false"],
    );
}

#[test]
fn invalid_server_addr_is_reported() {
    assert_mentions(
        &problem("SERVER_ADDR", "localhost"),
        &["SERVER_ADDR", "\"localhost\"", "127.0.0.1:8080"],
    );
}

#[test]
fn http_limits_idle_grace_and_log_format_have_their_documented_defaults() {
    let cfg = load(&[]).expect("valid");
    let h = &cfg.http;
    assert_eq!(h.header_read_timeout, Duration::from_secs(10));
    assert_eq!(h.idle_timeout, Duration::from_secs(75));
    assert_eq!(h.max_connections, 1024);
    assert_eq!(h.shutdown_timeout, Duration::from_secs(20));
    assert_eq!(log(&[]).expect("valid").format, LogFormat::Text);
    assert_eq!(cfg.db.pool.idle_grace, Duration::from_secs(5));

    let cfg = load(&[
        ("SERVER_HEADER_READ_TIMEOUT", "2s"),
        ("SERVER_IDLE_TIMEOUT", "1m"),
        ("SERVER_MAX_CONNECTIONS", "64"),
        ("SERVER_SHUTDOWN_TIMEOUT", "500ms"),
        ("DB_MAX_IDLE_GRACE", "0"),
    ])
    .expect("valid");
    assert_eq!(cfg.http.header_read_timeout, Duration::from_secs(2));
    assert_eq!(cfg.http.idle_timeout, Duration::from_secs(60));
    assert_eq!(cfg.http.max_connections, 64);
    assert_eq!(cfg.http.shutdown_timeout, Duration::from_millis(500));
    assert_eq!(cfg.db.pool.idle_grace, Duration::ZERO);
    let json = log(&[("LOG_FORMAT", "JSON")]).expect("valid");
    assert_eq!(json.format, LogFormat::Json);
}

#[test]
fn invalid_http_limits_are_reported() {
    for var in [
        "SERVER_HEADER_READ_TIMEOUT",
        "SERVER_IDLE_TIMEOUT",
        "SERVER_SHUTDOWN_TIMEOUT",
    ] {
        // No limit at all is what the attack needs: 0 is refused.
        assert_mentions(&problem(var, "0"), &[var, "\"0\"", "positive duration"]);
        assert_mentions(&problem(var, "soon"), &[var, "\"soon\""]);
    }
    assert_mentions(
        &problem("SERVER_MAX_CONNECTIONS", "0"),
        &["SERVER_MAX_CONNECTIONS", "\"0\"", "positive integer"],
    );
}

#[test]
fn invalid_log_format_and_idle_grace_are_reported() {
    let err = log(&[("LOG_FORMAT", "yaml")]).expect_err("not a format");
    assert_mentions(&err.to_string(), &["LOG_FORMAT", "\"yaml\"", "text or json"]);
    assert_mentions(
        &problem("DB_MAX_IDLE_GRACE", "soon"),
        &["DB_MAX_IDLE_GRACE", "\"soon\"", "5s", "Go"],
    );
}

#[test]
fn invalid_database_url_is_reported_with_the_password_hidden() {
    let text = problem("DATABASE_URL", "mysql://app:TopSecret9@h/db");
    assert_mentions(
        &text,
        &[
            "DATABASE_URL",
            "app:***@h/db",
            "postgres://user:password@host:port/database",
        ],
    );
    assert!(!text.contains("TopSecret9"), "{text}");
    let text = problem("DATABASE_URL", "postgres://app:TopSecret9@h/db?sslmode=sometimes");
    assert_mentions(
        &text,
        &["DATABASE_URL", "sslmode", "\"sometimes\"", "verify-full"],
    );
    assert!(!text.contains("TopSecret9"), "{text}");
    let text = problem("DATABASE_URL", "postgres://app:TopSecret9@h/db?pool=9");
    assert_mentions(
        &text,
        &[
            "DATABASE_URL",
            "\"pool\"",
            "sslmode, sslrootcert and application_name",
        ],
    );
    assert!(!text.contains("TopSecret9"), "{text}");
}

#[test]
fn every_invalid_variable_is_reported_at_once() {
    let err = load(&[
        ("DB_PORT", "x"),
        ("DB_SSL_MODE", "x"),
        ("DB_MAX_OPEN_CONNS", "x"),
        ("DB_MAX_IDLE_CONNS", "x"),
        ("DB_CONN_MAX_LIFETIME", "x"),
        ("DB_CONN_MAX_IDLE_TIME", "x"),
        ("DB_CONN_ACQUIRE_TIMEOUT", "x"),
        ("DB_AUTO_MIGRATE", "x"),
        ("SERVER_ADDR", "x"),
    ])
    .expect_err("all invalid");
    let vars: Vec<_> = err.problems().iter().map(|p| p.var).collect();
    assert_eq!(
        vars,
        [
            "DB_SSL_MODE",
            "DB_PORT",
            "DB_MAX_OPEN_CONNS",
            "DB_MAX_IDLE_CONNS",
            "DB_CONN_MAX_LIFETIME",
            "DB_CONN_MAX_IDLE_TIME",
            "DB_CONN_ACQUIRE_TIMEOUT",
            "DB_AUTO_MIGRATE",
            "SERVER_ADDR"
        ]
    );
}

#[test]
fn the_password_never_shows_in_debug_or_display() {
    let cfg = load(&[("DB_PASSWORD", "Hunter2-debug"), ("DB_USER", "app")]).expect("valid");
    let shown = format!("{cfg:?} {} {:?} {}", cfg.db, cfg.db.target, cfg.db.target);
    assert!(!shown.contains("Hunter2-debug"), "{shown}");
    assert!(shown.contains("postgres://app@localhost:5432/collex"), "{shown}");
    let url_cfg = DbConfig::try_from_url("postgres://app:Hunter2-url@h/db").expect("valid");
    let shown = format!("{url_cfg:?} {url_cfg}");
    assert!(!shown.contains("Hunter2-url"), "{shown}");
}
