//! Configuration from the environment: the one loader shared by the migration CLI and the service.
//!
//! Owns the meaning, defaults and validation of `DATABASE_URL`, the twelve `DB_*` variables of the spec,
//! `DB_SSL_ROOT_CERT`, `DB_CONN_ACQUIRE_TIMEOUT` and `SERVER_ADDR`. It does not open connections (see
//! [`crate::db`]) and does not own the pool's behaviour (the `service` crate does).
//!
//! Rules:
//! - `DATABASE_URL` wins over `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME`; its `sslmode` and
//!   `sslrootcert` win over `DB_SSL_MODE` and `DB_SSL_ROOT_CERT`, which still apply when the URL has none.
//! - When neither `DATABASE_URL` nor any connection variable (`DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`,
//!   `DB_NAME`, `DB_SSL_MODE`, `DB_SSL_ROOT_CERT`) is set, the embedded default is SQLite in `./collex.db`.
//! - An empty value counts as unset, except `DB_PASSWORD`, where empty means "no password".
//! - Every invalid variable is collected and reported at once; each message names the variable, the value
//!   (never a password: URLs are shown redacted, `DB_PASSWORD` is never shown) and the expected form.
//! - The password is held as a [`SecretString`] and never becomes part of a URL string: connection options
//!   are built from parts ([`crate::db`]), because SeaORM's `ConnectOptions` `Debug`, its trace spans and
//!   sqlx's connect errors carry the whole URL.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Default listen address of the service (`SERVER_ADDR`).
pub const DEFAULT_SERVER_ADDR: &str = "127.0.0.1:8080";
/// The embedded default database file, used when nothing says otherwise.
pub const DEFAULT_SQLITE_PATH: &str = "./collex.db";

/// Variables that select a PostgreSQL server; setting any of them turns the embedded default off.
pub const CONNECTION_VARS: [&str; 7] = [
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SSL_MODE",
    "DB_SSL_ROOT_CERT",
];

/// `DB_SSL_MODE`: libpq's modes, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS first, plain if the server has none.
    Prefer,
    /// TLS only (verifies the CA when `DB_SSL_ROOT_CERT` is given).
    Require,
    /// TLS, certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, trusted CA and the host name matches.
    VerifyFull,
}

impl SslMode {
    const EXPECTED: &'static str = "one of disable, allow, prefer, require, verify-ca, verify-full";

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PostgreSQL server and how to reach it. `Debug` shows the password as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// Host name or address (`DB_HOST`, default `localhost`).
    pub host: String,
    /// Port (`DB_PORT`, default 5432).
    pub port: u16,
    /// User (`DB_USER`, default `postgres`).
    pub user: String,
    /// Password (`DB_PASSWORD`, default `postgres`); `None` when empty.
    pub password: Option<SecretString>,
    /// Database name (`DB_NAME`, default `collex`).
    pub database: String,
    /// TLS mode (`DB_SSL_MODE`, default `disable`).
    pub ssl_mode: SslMode,
    /// CA certificate file (`DB_SSL_ROOT_CERT`).
    pub ssl_root_cert: Option<PathBuf>,
    /// `application_name` from `DATABASE_URL`, if given.
    pub application_name: Option<String>,
}

impl fmt::Display for PgTarget {
    /// A URL without the password, safe for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "postgres://{}@{host}:{}/{}?sslmode={}",
            self.user, self.port, self.database, self.ssl_mode
        )?;
        if self.password.is_some() {
            // Say that a password is configured without showing anything of it.
            f.write_str(" (password set)")?;
        }
        Ok(())
    }
}

/// A SQLite database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteTarget {
    /// The URL sqlx understands (`sqlite://./collex.db`, `sqlite::memory:`); SQLite URLs carry no secrets.
    pub url: String,
}

impl fmt::Display for SqliteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Which database the process talks to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DbTarget {
    /// A PostgreSQL server.
    Postgres(PgTarget),
    /// A SQLite file or in-memory database.
    Sqlite(SqliteTarget),
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(p) => p.fmt(f),
            Self::Sqlite(s) => s.fmt(f),
        }
    }
}

/// Where the target came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetSource {
    /// `DATABASE_URL`.
    DatabaseUrl,
    /// The `DB_*` connection variables (with defaults for the unset ones).
    Variables,
    /// Nothing was set: SQLite in `./collex.db`.
    EmbeddedDefault,
    /// Built in code ([`DbConfig::from_url`]).
    Explicit,
}

impl fmt::Display for TargetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DatabaseUrl => "from DATABASE_URL",
            Self::Variables => "from DB_* variables",
            Self::EmbeddedDefault => {
                "embedded default: neither DATABASE_URL nor DB_* connection variables are set"
            }
            Self::Explicit => "given in code",
        })
    }
}

/// Pool settings, with Go `database/sql` meanings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// `DB_MAX_OPEN_CONNS` (default 100): connections open at once, in use or idle.
    pub max_open: u32,
    /// `DB_MAX_IDLE_CONNS` (default 10): idle connections kept; more are closed on release. Capped at
    /// `max_open`, as Go does.
    pub max_idle: u32,
    /// `DB_CONN_MAX_LIFETIME` (default 1h): `None` (`0`) keeps connections forever.
    pub max_lifetime: Option<Duration>,
    /// `DB_CONN_MAX_IDLE_TIME` (default 30m): `None` (`0`) keeps idle connections forever.
    pub max_idle_time: Option<Duration>,
    /// `DB_CONN_ACQUIRE_TIMEOUT` (default 30s): how long a caller waits for a connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_open: 100,
            max_idle: 10,
            max_lifetime: Some(Duration::from_secs(3600)),
            max_idle_time: Some(Duration::from_secs(1800)),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Which database the process talks to and how. `Debug` and `Display` never show a password.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// The database.
    pub target: DbTarget,
    /// Where `target` came from.
    pub source: TargetSource,
    /// Pool settings.
    pub pool: PoolConfig,
    /// Directory of hand-written SQL migrations (`DB_MIGRATE_PATH`, default `migrations`).
    pub migrate_path: PathBuf,
    /// Whether the service migrates on start (`DB_AUTO_MIGRATE`, default true).
    pub auto_migrate: bool,
}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.target, self.source)
    }
}

/// The service's configuration: the database plus where to listen.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Database settings.
    pub db: DbConfig,
    /// `SERVER_ADDR` (default `127.0.0.1:8080`).
    pub server_addr: SocketAddr,
}

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong, with the (redacted) value and the expected form.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One or more variables are invalid; all of them are listed.
    #[error("invalid configuration: {}", list(.problems))]
    Invalid {
        /// Every invalid variable.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems, one per invalid variable.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems } => problems,
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects problems while reading variables.
struct Reader<F> {
    get: F,
    problems: Vec<Problem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    /// The value, with empty counting as unset.
    fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_owned())
    }

    fn fail(&mut self, var: &'static str, message: String) {
        self.problems.push(Problem { var, message });
    }

    fn parsed<T>(
        &mut self,
        var: &'static str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        match self.raw(var) {
            None => default,
            Some(v) => match parse(&v) {
                Some(t) => t,
                None => {
                    self.fail(var, format!("expected {expected}, got {v:?}"));
                    default
                }
            },
        }
    }

    fn string(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_owned())
    }

    fn duration(
        &mut self,
        var: &'static str,
        default: Option<Duration>,
        zero_is_none: bool,
    ) -> Option<Duration> {
        let expected = if zero_is_none {
            "a duration like 1h, 30m, 1h30m or 90s (0 for no limit)"
        } else {
            "a positive duration like 1h, 30m, 1h30m or 90s"
        };
        self.parsed(var, default, expected, |v| {
            let d = if v == "0" {
                Duration::ZERO
            } else {
                humantime::parse_duration(v).ok()?
            };
            match (d.is_zero(), zero_is_none) {
                (true, true) => Some(None),
                (true, false) => None,
                (false, _) => Some(Some(d)),
            }
        })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl DbConfig {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get`, so tests need not touch the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };
        let cfg = read_db(&mut r);
        if r.problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid { problems: r.problems })
        }
    }

    /// A configuration for an explicit URL (tests, tools), with the default pool settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `DATABASE_URL` when the URL cannot be understood.
    pub fn try_from_url(url: &str) -> Result<Self, ConfigError> {
        let mut r = Reader {
            get: |_: &str| None,
            problems: Vec::new(),
        };
        let target = parse_database_url(&mut r, url, None, None);
        match target {
            Some(target) if r.problems.is_empty() => Ok(Self::with_target(target, TargetSource::Explicit)),
            _ => Err(ConfigError::Invalid { problems: r.problems }),
        }
    }

    /// A configuration for an explicit URL that the caller trusts (tests, tools).
    ///
    /// An unparseable URL yields a read-only SQLite target at a path that cannot exist, so the mistake
    /// surfaces as a connect error rather than a panic. Use [`DbConfig::try_from_url`] for input.
    pub fn from_url(url: impl Into<String>) -> Self {
        let url = url.into();
        match Self::try_from_url(&url) {
            Ok(cfg) => cfg,
            Err(e) => Self::with_target(
                DbTarget::Sqlite(SqliteTarget {
                    // A path that cannot exist, carrying the reason, so connect fails loudly and safely.
                    url: format!(
                        "sqlite:///nonexistent/invalid-database-url-{}?mode=ro",
                        e.problems().len()
                    ),
                }),
                TargetSource::Explicit,
            ),
        }
    }

    /// A configuration for `target` with every other setting at its default.
    pub fn with_target(target: DbTarget, source: TargetSource) -> Self {
        Self {
            target,
            source,
            pool: PoolConfig::default(),
            migrate_path: "migrations".into(),
            auto_migrate: true,
        }
    }

    /// The embedded default: SQLite in `./collex.db`.
    pub fn embedded_default() -> Self {
        Self::with_target(
            DbTarget::Sqlite(SqliteTarget {
                url: format!("sqlite://{DEFAULT_SQLITE_PATH}"),
            }),
            TargetSource::EmbeddedDefault,
        )
    }
}

impl AppConfig {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every invalid variable, `SERVER_ADDR` included.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every invalid variable, `SERVER_ADDR` included.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };
        let db = read_db(&mut r);
        let default_addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let server_addr = r.parsed(
            "SERVER_ADDR",
            default_addr,
            "a socket address like 127.0.0.1:8080 or [::1]:8080",
            |v| v.parse().ok(),
        );
        if r.problems.is_empty() {
            Ok(Self { db, server_addr })
        } else {
            Err(ConfigError::Invalid { problems: r.problems })
        }
    }
}

fn read_db<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> DbConfig {
    let ssl_mode = r.parsed("DB_SSL_MODE", None, SslMode::EXPECTED, |v| {
        SslMode::parse(v).map(Some)
    });
    let ssl_root_cert = r.raw("DB_SSL_ROOT_CERT").map(PathBuf::from);
    if let Some(path) = &ssl_root_cert
        && !path.is_file()
    {
        r.fail(
            "DB_SSL_ROOT_CERT",
            format!(
                "expected a readable CA certificate file, got {:?} (no such file)",
                path.display().to_string()
            ),
        );
    }

    let (target, source) = if let Some(url) = r.raw("DATABASE_URL") {
        let target = parse_database_url(r, &url, ssl_mode, ssl_root_cert.clone());
        (target, TargetSource::DatabaseUrl)
    } else if CONNECTION_VARS.iter().any(|v| (r.get)(v).is_some()) {
        let port = r.parsed("DB_PORT", 5432, "a port number from 1 to 65535", |v| {
            v.parse::<u16>().ok().filter(|p| *p > 0)
        });
        // Empty DB_PASSWORD means "no password"; unset means the spec's default.
        let password = match (r.get)("DB_PASSWORD") {
            None => Some(SecretString::from("postgres")),
            Some(p) if p.is_empty() => None,
            Some(p) => Some(SecretString::from(p)),
        };
        let target = PgTarget {
            host: r.string("DB_HOST", "localhost"),
            port,
            user: r.string("DB_USER", "postgres"),
            password,
            database: r.string("DB_NAME", "collex"),
            ssl_mode: ssl_mode.unwrap_or(SslMode::Disable),
            ssl_root_cert: ssl_root_cert.clone(),
            application_name: None,
        };
        (Some(DbTarget::Postgres(target)), TargetSource::Variables)
    } else {
        (None, TargetSource::EmbeddedDefault)
    };

    let max_open = r.parsed("DB_MAX_OPEN_CONNS", 100, "a positive integer", |v| {
        v.parse::<u32>().ok().filter(|n| *n > 0)
    });
    let max_idle = r.parsed(
        "DB_MAX_IDLE_CONNS",
        10,
        "a non-negative integer (0 keeps no idle connection)",
        |v| v.parse::<u32>().ok(),
    );
    let max_lifetime = r.duration("DB_CONN_MAX_LIFETIME", Some(Duration::from_secs(3600)), true);
    let max_idle_time = r.duration("DB_CONN_MAX_IDLE_TIME", Some(Duration::from_secs(1800)), true);
    let acquire_timeout = r
        .duration("DB_CONN_ACQUIRE_TIMEOUT", Some(Duration::from_secs(30)), false)
        .unwrap_or(Duration::from_secs(30));
    let auto_migrate = r.parsed("DB_AUTO_MIGRATE", true, "true or false", parse_bool);
    let migrate_path = PathBuf::from(r.string("DB_MIGRATE_PATH", "migrations"));

    let mut cfg = match target {
        Some(t) => DbConfig::with_target(t, source),
        None => DbConfig::embedded_default(),
    };
    cfg.pool = PoolConfig {
        max_open,
        // Go's SetMaxIdleConns lowers the idle cap to MaxOpenConns.
        max_idle: max_idle.min(max_open),
        max_lifetime,
        max_idle_time,
        acquire_timeout,
    };
    cfg.migrate_path = migrate_path;
    cfg.auto_migrate = auto_migrate;
    cfg
}

const URL_EXPECTED: &str =
    "postgres://user:password@host:port/database[?sslmode=...&sslrootcert=...] or sqlite://path";

/// Parses `DATABASE_URL` into parts. Problems name `DATABASE_URL` and show the URL redacted.
fn parse_database_url<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    raw: &str,
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
) -> Option<DbTarget> {
    let shown = redact_url(raw);
    if raw.starts_with("sqlite:") {
        return Some(DbTarget::Sqlite(SqliteTarget { url: raw.to_owned() }));
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            r.fail(
                "DATABASE_URL",
                format!("expected {URL_EXPECTED}, got {shown:?} ({e})"),
            );
            return None;
        }
    };
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        r.fail(
            "DATABASE_URL",
            format!(
                "expected {URL_EXPECTED}, got {shown:?} (unsupported scheme {:?})",
                url.scheme()
            ),
        );
        return None;
    }
    let decode = |s: &str| percent_decode(s);
    let mut target = PgTarget {
        host: url
            .host_str()
            .unwrap_or("localhost")
            .trim_matches(['[', ']'])
            .to_owned(),
        port: url.port().unwrap_or(5432),
        user: if url.username().is_empty() {
            "postgres".to_owned()
        } else {
            decode(url.username())
        },
        password: url.password().map(|p| SecretString::from(decode(p))),
        database: match url.path().trim_start_matches('/') {
            "" => "postgres".to_owned(),
            db => decode(db),
        },
        ssl_mode: ssl_mode.unwrap_or(SslMode::Disable),
        ssl_root_cert,
        application_name: None,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => match SslMode::parse(&v) {
                Some(m) => target.ssl_mode = m,
                None => r.fail(
                    "DATABASE_URL",
                    format!("expected sslmode to be {}, got {:?} in {shown:?}", SslMode::EXPECTED, v.as_ref()),
                ),
            },
            "sslrootcert" => target.ssl_root_cert = Some(PathBuf::from(v.as_ref())),
            "application_name" => target.application_name = Some(v.into_owned()),
            other => r.fail(
                "DATABASE_URL",
                format!(
                    "expected only the query parameters sslmode, sslrootcert and application_name, got {other:?} \
                     in {shown:?}"
                ),
            ),
        }
    }
    Some(DbTarget::Postgres(target))
}

fn percent_decode(s: &str) -> String {
    // `url` keeps user info and path percent-encoded; decode them the way libpq does.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces the database name (the URL path) in a PostgreSQL URL, keeping the query string: how tests and
/// benchmarks reach the throwaway databases they create next to an admin URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[prefix_end..].find('/') {
        Some(slash) => &base[..prefix_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Replaces the password of a URL-like string with `***`, also when the string is not a valid URL.
pub fn redact_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return raw.to_owned();
    };
    let rest = &raw[scheme_end + 3..];
    // The user info ends at the last '@' before the path, so a password containing '@' is covered too.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return raw.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{}://{user}:***@{}", &raw[..scheme_end], &rest[at + 1..]),
        None => raw.to_owned(),
    }
}

impl PgTarget {
    /// The password, for building connect options only.
    pub fn password_secret(&self) -> Option<&str> {
        self.password.as_ref().map(ExposeSecret::expose_secret)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<DbConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DbConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_embedded_sqlite() {
        let cfg = load(&[]).expect("defaults are valid");
        assert_eq!(cfg.source, TargetSource::EmbeddedDefault);
        assert!(matches!(cfg.target, DbTarget::Sqlite(ref s) if s.url == "sqlite://./collex.db"));
        assert_eq!(cfg.pool, PoolConfig::default());
        assert!(cfg.auto_migrate);
    }

    #[test]
    fn any_connection_variable_selects_postgres_with_spec_defaults() {
        let cfg = load(&[("DB_HOST", "db.example.com")]).expect("valid");
        let DbTarget::Postgres(pg) = cfg.target else {
            panic!("expected postgres")
        };
        assert_eq!(
            (pg.host.as_str(), pg.port, pg.user.as_str()),
            ("db.example.com", 5432, "postgres")
        );
        assert_eq!(pg.database, "collex");
        assert_eq!(pg.ssl_mode, SslMode::Disable);
        assert_eq!(pg.password_secret(), Some("postgres"));
    }

    #[test]
    fn durations_accept_compound_forms() {
        let cfg = load(&[
            ("DB_CONN_MAX_LIFETIME", "1h30m"),
            ("DB_CONN_MAX_IDLE_TIME", "90s"),
        ])
        .expect("valid");
        assert_eq!(cfg.pool.max_lifetime, Some(Duration::from_secs(5400)));
        assert_eq!(cfg.pool.max_idle_time, Some(Duration::from_secs(90)));
    }

    #[test]
    fn database_url_password_is_redacted_in_messages() {
        let err = load(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]).expect_err("bad scheme");
        let text = err.to_string();
        assert!(
            text.contains("DATABASE_URL") && text.contains("u:***@h"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn redact_handles_at_signs_in_passwords() {
        assert_eq!(redact_url("postgres://u:p@ss@h:5/d"), "postgres://u:***@h:5/d");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
