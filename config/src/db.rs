//! The database configuration both binaries read: which database ([`DbTarget`]), its pool ([`PoolConfig`]),
//! its migrations, and the rules that pick the target.
//!
//! Rules:
//! - `DATABASE_URL` wins over `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME`; its `sslmode` and
//!   `sslrootcert` win over `DB_SSL_MODE` and `DB_SSL_ROOT_CERT`, which still apply when the URL has none. A
//!   connection variable that is set but overridden this way is a [`ConfigWarning`].
//! - When neither `DATABASE_URL` nor any connection variable ([`vars::CONNECTION`]) is set, the embedded
//!   default is SQLite in `./collex.db`.
//! - An empty value counts as unset, except `DB_PASSWORD`, where empty means "no password".
//! - The password is held as a [`SecretString`] and never becomes part of a URL string: connection options
//!   are built from parts ([`crate::connect()`], [`crate::pg_connect_options`]), because SeaORM's `ConnectOptions` `Debug`, its trace spans and
//!   sqlx's connect errors carry the whole URL.
//!
//! Opening connections is [`mod@crate::connect`]'s; the pool's behaviour is the `service` crate's.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{ConfigError, ConfigWarning};
use crate::read::{Reader, WithWarnings, parse_bool};
use crate::url::{parse_database_url, parse_url_of, query_has};
use crate::vars;

/// The embedded default database file, used when nothing says otherwise.
pub const DEFAULT_SQLITE_PATH: &str = "./collex.db";

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
    pub(crate) const EXPECTED: &'static str =
        "one of disable, allow, prefer, require, verify-ca, verify-full";

    pub(crate) fn parse(s: &str) -> Option<Self> {
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

impl PgTarget {
    /// The password, for building connect options only.
    pub fn password_secret(&self) -> Option<&str> {
        self.password.as_ref().map(ExposeSecret::expose_secret)
    }
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

impl SqliteTarget {
    /// The database file (`sqlite://./collex.db?mode=rwc` → `./collex.db`); `None` for an in-memory database.
    pub fn file(&self) -> Option<PathBuf> {
        let url = self.url.as_str();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
            None
        } else {
            Some(PathBuf::from(path))
        }
    }
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
    /// Built in code ([`DbConfig::try_from_url`]).
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
    /// `DB_MAX_IDLE_GRACE` (default 5s): how long idle connections above `max_idle` may stay unused before
    /// they are retired (HikariCP's model), so a burst does not reconnect at every release. Zero closes them at
    /// release, as Go does.
    pub idle_grace: Duration,
}

impl Default for PoolConfig {
    /// The registry's defaults (a unit test holds the two together).
    fn default() -> Self {
        Self {
            max_open: 100,
            max_idle: 10,
            max_lifetime: Some(Duration::from_secs(3600)),
            max_idle_time: Some(Duration::from_secs(1800)),
            acquire_timeout: Duration::from_secs(30),
            idle_grace: Duration::from_secs(5),
        }
    }
}

/// Read replicas and how reads use them (`DB_REPLICA_*`).
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// `DB_REPLICA_URLS`: the replicas, in the order given; empty when there are none.
    pub targets: Vec<PgTarget>,
    /// `DB_REPLICA_MAX_WAIT` (default 100ms): how long a read carrying a write token waits for a replica to
    /// replay the write before it goes to the primary.
    pub max_wait: Duration,
    /// `DB_REPLICA_MAX_LAG` (default 10s): a replica further behind gets no reads.
    pub max_lag: Duration,
    /// `DB_REPLICA_STICKY` (default 2s): after a write, how long reads of the same read session stay on the
    /// primary; zero turns it off.
    pub sticky: Duration,
}

impl Default for ReplicaConfig {
    /// No replica; the registry's defaults (a unit test holds the two together).
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            max_wait: Duration::from_millis(100),
            max_lag: Duration::from_secs(10),
            sticky: Duration::from_secs(2),
        }
    }
}

/// Snapshots (`migration backup`, `up --backup`): where they go, how many are kept, and whether migrating
/// takes one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// `DB_BACKUP_DIR` (default `backups`): snapshots and their manifests.
    pub dir: PathBuf,
    /// `DB_BACKUP_KEEP` (default 0, keep all): the newest N snapshots of a database are kept after a backup.
    pub keep: Option<u32>,
    /// `DB_BACKUP_BEFORE_MIGRATE` (default false): `up` and the service's auto-migrate snapshot first when
    /// something is pending.
    pub before_migrate: bool,
}

impl Default for BackupConfig {
    /// The registry's defaults.
    fn default() -> Self {
        Self {
            dir: PathBuf::from("backups"),
            keep: None,
            before_migrate: false,
        }
    }
}

/// `DB_POOLER_MODE`: what sits between the service and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolerMode {
    /// Direct connections.
    #[default]
    None,
    /// PgBouncer with `pool_mode = session`: a server connection per client connection, so prepared
    /// statements and session settings stay with their client.
    Session,
}

impl PoolerMode {
    /// The spelling of `DB_POOLER_MODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Session => "session",
        }
    }
}

/// Why `DB_POOLER_MODE=transaction` is refused: what was measured through Debian's PgBouncer 1.18.
pub const TRANSACTION_POOLING_REFUSED: &str = "transaction pooling is not supported: through PgBouncer 1.18 in \
     transaction mode, sqlx and SeaORM got another statement's result with no error (841 of 1,600 queries with \
     unnamed statements were silently wrong) and a session `SET` made by one client was seen by another; set \
     `pool_mode = session` in PgBouncer and DB_POOLER_MODE=session, or connect directly";

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
    /// Read replicas (`DB_REPLICA_*`).
    pub replicas: ReplicaConfig,
    /// The pooler in front of the database (`DB_POOLER_MODE`).
    pub pooler: PoolerMode,
    /// A direct connection to the same database for migrations and their lock (`DB_MIGRATION_URL`).
    pub migration_target: Option<DbTarget>,
    /// Snapshots: `DB_BACKUP_DIR`, `DB_BACKUP_KEEP`, `DB_BACKUP_BEFORE_MIGRATE`.
    pub backup: BackupConfig,
    /// Variables that are set but have no effect; each binary prints them once.
    pub warnings: Vec<ConfigWarning>,
}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.target, self.source)
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
        let mut r = Reader::new(get);
        let cfg = read(&mut r);
        r.finish(cfg)
    }

    /// A configuration for an explicit URL (tests, tools), with the default pool settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `DATABASE_URL` when the URL cannot be understood.
    pub fn try_from_url(url: &str) -> Result<Self, ConfigError> {
        let mut r = Reader::new(|_: &str| None);
        let target = parse_database_url(&mut r, url, SslMode::Disable, None);
        match target {
            Some(target) if r.problems.is_empty() => Ok(Self::with_target(target, TargetSource::Explicit)),
            _ => Err(ConfigError::Invalid { problems: r.problems }),
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
            replicas: ReplicaConfig::default(),
            pooler: PoolerMode::None,
            migration_target: None,
            backup: BackupConfig::default(),
            warnings: Vec::new(),
        }
    }

    /// The configuration migrations and their lock use: the same, with `DB_MIGRATION_URL`'s target when it is
    /// set (a direct connection where the app's URL points at a pooler) and no replicas.
    pub fn for_migrations(&self) -> Self {
        let mut cfg = self.clone();
        if let Some(t) = &self.migration_target {
            cfg.target = t.clone();
        }
        cfg.replicas.targets.clear();
        cfg
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

impl WithWarnings for DbConfig {
    fn add_warnings(&mut self, warnings: Vec<ConfigWarning>) {
        self.warnings.extend(warnings);
    }
}

/// Reads the [`vars::Scope::Database`] variables.
pub(crate) fn read<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> DbConfig {
    let ssl_mode = r.parsed(
        &vars::DB_SSL_MODE,
        SslMode::EXPECTED,
        SslMode::Disable,
        SslMode::parse,
    );
    let ssl_root_cert = r.set(&vars::DB_SSL_ROOT_CERT).map(PathBuf::from);
    if let Some(path) = &ssl_root_cert
        && !path.is_file()
    {
        r.fail(
            &vars::DB_SSL_ROOT_CERT,
            format!(
                "expected a readable CA certificate file, got {:?} (no such file)",
                path.display().to_string()
            ),
        );
    }

    let any_connection_var = vars::CONNECTION.iter().any(|v| r.is_present(v));
    let (target, source) = if let Some(url) = r.set(&vars::DATABASE_URL) {
        let target = parse_database_url(r, &url, ssl_mode, ssl_root_cert.clone());
        warn_overridden(r, &url, target.as_ref());
        (target, TargetSource::DatabaseUrl)
    } else if any_connection_var {
        let port = r.parsed(&vars::DB_PORT, "a port number from 1 to 65535", 5432, |v| {
            v.parse::<u16>().ok().filter(|p| *p > 0)
        });
        // Empty DB_PASSWORD means "no password"; unset means the registry's default.
        let password = match r.exact(&vars::DB_PASSWORD) {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(SecretString::from(p)),
            None => vars::DB_PASSWORD.default.map(SecretString::from),
        };
        let target = PgTarget {
            host: r.string(&vars::DB_HOST),
            port,
            user: r.string(&vars::DB_USER),
            password,
            database: r.string(&vars::DB_NAME),
            ssl_mode,
            ssl_root_cert: ssl_root_cert.clone(),
            application_name: None,
        };
        (Some(DbTarget::Postgres(target)), TargetSource::Variables)
    } else {
        (None, TargetSource::EmbeddedDefault)
    };

    let defaults = PoolConfig::default();
    let max_open = r.parsed(
        &vars::DB_MAX_OPEN_CONNS,
        "a positive integer",
        defaults.max_open,
        |v| v.parse::<u32>().ok().filter(|n| *n > 0),
    );
    let max_idle = r.parsed(
        &vars::DB_MAX_IDLE_CONNS,
        "a non-negative integer (0 keeps no idle connection)",
        defaults.max_idle,
        |v| v.parse::<u32>().ok(),
    );
    let max_lifetime = r.duration(&vars::DB_CONN_MAX_LIFETIME, true, defaults.max_lifetime);
    let max_idle_time = r.duration(&vars::DB_CONN_MAX_IDLE_TIME, true, defaults.max_idle_time);
    let acquire_timeout = r
        .duration(
            &vars::DB_CONN_ACQUIRE_TIMEOUT,
            false,
            Some(defaults.acquire_timeout),
        )
        .unwrap_or(defaults.acquire_timeout);
    let idle_grace = r.parsed(
        &vars::DB_MAX_IDLE_GRACE,
        "a duration like 5s or 500ms (0 closes idle connections above DB_MAX_IDLE_CONNS at release, as Go does)",
        defaults.idle_grace,
        |v| match v {
            "0" => Some(Duration::ZERO),
            _ => humantime::parse_duration(v).ok(),
        },
    );
    let auto_migrate = r.parsed(&vars::DB_AUTO_MIGRATE, "true or false", true, parse_bool);
    let migrate_path = PathBuf::from(r.string(&vars::DB_MIGRATE_PATH));
    let keep = r.parsed(
        &vars::DB_BACKUP_KEEP,
        "a non-negative integer (0 keeps every snapshot)",
        0,
        |v| v.parse::<u32>().ok(),
    );
    let backup = BackupConfig {
        dir: PathBuf::from(r.string(&vars::DB_BACKUP_DIR)),
        // 0 keeps every snapshot.
        keep: (keep > 0).then_some(keep),
        before_migrate: r.parsed(
            &vars::DB_BACKUP_BEFORE_MIGRATE,
            "true or false",
            false,
            parse_bool,
        ),
    };

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
        idle_grace,
    };
    cfg.migrate_path = migrate_path;
    cfg.auto_migrate = auto_migrate;
    cfg.replicas = read_replicas(r, &cfg.target, ssl_mode, ssl_root_cert.as_ref());
    cfg.pooler = read_pooler(r);
    cfg.migration_target = r
        .set(&vars::DB_MIGRATION_URL)
        .and_then(|url| parse_url_of(r, &vars::DB_MIGRATION_URL, &url, ssl_mode, ssl_root_cert.clone()));
    if let (Some(DbTarget::Sqlite(_)), DbTarget::Postgres(_))
    | (Some(DbTarget::Postgres(_)), DbTarget::Sqlite(_)) = (&cfg.migration_target, &cfg.target)
    {
        r.fail(
            &vars::DB_MIGRATION_URL,
            "expected the same kind of database as the service's (a direct connection to it), got another engine"
                .to_owned(),
        );
    }
    cfg.backup = backup;
    cfg
}

/// `DB_REPLICA_URLS` and the settings of replica reads. Replicas are PostgreSQL streaming replicas of a
/// PostgreSQL primary; each URL's `sslmode`/`sslrootcert` default to `DB_SSL_MODE`/`DB_SSL_ROOT_CERT`.
fn read_replicas<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    primary: &DbTarget,
    ssl_mode: SslMode,
    ssl_root_cert: Option<&PathBuf>,
) -> ReplicaConfig {
    let defaults = ReplicaConfig::default();
    let zero_or_duration = |v: &str| match v {
        "0" => Some(Duration::ZERO),
        _ => humantime::parse_duration(v).ok(),
    };
    let max_wait = r.parsed(
        &vars::DB_REPLICA_MAX_WAIT,
        "a duration like 100ms or 1s (0 never waits)",
        defaults.max_wait,
        zero_or_duration,
    );
    let max_lag = r
        .duration(&vars::DB_REPLICA_MAX_LAG, false, Some(defaults.max_lag))
        .unwrap_or(defaults.max_lag);
    let sticky = r.parsed(
        &vars::DB_REPLICA_STICKY,
        "a duration like 2s or 500ms (0 turns the sticky window off)",
        defaults.sticky,
        zero_or_duration,
    );
    let mut targets = Vec::new();
    if let Some(list) = r.set(&vars::DB_REPLICA_URLS) {
        for raw in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            match parse_url_of(r, &vars::DB_REPLICA_URLS, raw, ssl_mode, ssl_root_cert.cloned()) {
                Some(DbTarget::Postgres(t)) => targets.push(t),
                Some(DbTarget::Sqlite(s)) => r.fail(
                    &vars::DB_REPLICA_URLS,
                    format!("expected postgres:// URLs of streaming replicas, got {:?}", s.url),
                ),
                None => {}
            }
        }
        if !targets.is_empty() && !matches!(primary, DbTarget::Postgres(_)) {
            r.fail(
                &vars::DB_REPLICA_URLS,
                format!(
                    "replicas need a PostgreSQL primary, but the database is {primary}: set DATABASE_URL (or DB_HOST..) \
                     to the primary"
                ),
            );
        }
    }
    ReplicaConfig {
        targets,
        max_wait,
        max_lag,
        sticky,
    }
}

/// `DB_POOLER_MODE`: `transaction` is a problem with the measured reason ([`TRANSACTION_POOLING_REFUSED`]).
fn read_pooler<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> PoolerMode {
    let Some(v) = r.value(&vars::DB_POOLER_MODE) else {
        return PoolerMode::None;
    };
    match v.to_ascii_lowercase().as_str() {
        "none" => PoolerMode::None,
        "session" => PoolerMode::Session,
        "transaction" => {
            r.fail(&vars::DB_POOLER_MODE, TRANSACTION_POOLING_REFUSED.to_owned());
            PoolerMode::None
        }
        _ => {
            r.fail(
                &vars::DB_POOLER_MODE,
                format!("expected one of none, session (transaction is refused), got {v:?}"),
            );
            PoolerMode::None
        }
    }
}

/// A warning naming the connection variables that are set but overridden by `DATABASE_URL`: the server
/// variables always, `DB_SSL_MODE` / `DB_SSL_ROOT_CERT` when the URL sets its own (or is SQLite's).
fn warn_overridden<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, url: &str, target: Option<&DbTarget>) {
    let sqlite = matches!(target, Some(DbTarget::Sqlite(_)));
    let ignored: Vec<&'static str> = vars::CONNECTION
        .iter()
        .filter(|v| r.is_present(v))
        .filter(|v| match v.name {
            "DB_SSL_MODE" => sqlite || query_has(url, "sslmode"),
            "DB_SSL_ROOT_CERT" => sqlite || query_has(url, "sslrootcert"),
            _ => true,
        })
        .map(|v| v.name)
        .collect();
    if !ignored.is_empty() {
        r.warnings
            .push(ConfigWarning::IgnoredBesideDatabaseUrl { vars: ignored });
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
    fn the_file_of_a_sqlite_target() {
        let file = |url: &str| SqliteTarget { url: url.to_owned() }.file();
        assert_eq!(file("sqlite://./collex.db"), Some(PathBuf::from("./collex.db")));
        assert_eq!(
            file("sqlite:///tmp/x.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(file("sqlite::memory:"), None);
    }

    #[test]
    fn nothing_set_means_embedded_sqlite() {
        let cfg = load(&[]).expect("defaults are valid");
        assert_eq!(cfg.source, TargetSource::EmbeddedDefault);
        assert!(matches!(cfg.target, DbTarget::Sqlite(ref s) if s.url == "sqlite://./collex.db"));
        assert_eq!(cfg.pool, PoolConfig::default());
        assert!(cfg.auto_migrate);
        assert!(cfg.warnings.is_empty());
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
    fn a_url_without_slashes_after_the_scheme_is_refused_without_its_password() {
        for url in [
            "postgres:PW-secret@127.0.0.1:5432/db",
            "PW-secret@127.0.0.1:5432/db",
            "u:PW-secret@127.0.0.1:5432/db",
            "postgres://u@127.0.0.1/db?password=PW-secret",
        ] {
            let text = load(&[("DATABASE_URL", url)]).expect_err(url).to_string();
            assert!(text.contains("DATABASE_URL"), "{text}");
            assert!(!text.contains("PW-secret"), "{url}: {text}");
        }
    }

    #[test]
    fn connection_variables_beside_database_url_are_named_in_one_warning() {
        let cfg = load(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("DB_HOST", "other"),
            ("DB_PASSWORD", "x"),
            ("DB_SSL_MODE", "require"),
        ])
        .expect("valid");
        let [ConfigWarning::IgnoredBesideDatabaseUrl { vars }] = cfg.warnings.as_slice() else {
            panic!("one warning expected: {:?}", cfg.warnings)
        };
        // DB_SSL_MODE applies: the URL has no sslmode of its own.
        assert_eq!(vars, &["DB_HOST", "DB_PASSWORD"]);
        let text = cfg.warnings[0].to_string();
        assert!(text.contains("DATABASE_URL") && text.contains("wins"), "{text}");

        let cfg = load(&[
            ("DATABASE_URL", "postgres://u@h/db?sslmode=disable"),
            ("DB_SSL_MODE", "require"),
        ])
        .expect("valid");
        assert_eq!(
            cfg.warnings,
            [ConfigWarning::IgnoredBesideDatabaseUrl {
                vars: vec!["DB_SSL_MODE"]
            }]
        );
        assert!(
            load(&[("DATABASE_URL", "postgres://u@h/db")])
                .expect("valid")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn replica_urls_are_a_list_whose_passwords_never_show() {
        let cfg = load(&[
            ("DATABASE_URL", "postgres://u:pw-primary@p/db"),
            (
                "DB_REPLICA_URLS",
                "postgres://u:pw-r1@r1:5433/db, postgres://u:pw-r2@r2/db?sslmode=require,",
            ),
        ])
        .expect("valid");
        let hosts: Vec<_> = cfg
            .replicas
            .targets
            .iter()
            .map(|t| (t.host.as_str(), t.port))
            .collect();
        assert_eq!(hosts, [("r1", 5433), ("r2", 5432)]);
        assert_eq!(cfg.replicas.targets[1].ssl_mode, SslMode::Require);
        let shown = format!("{cfg:?} {cfg}");
        assert!(!shown.contains("pw-r1") && !shown.contains("pw-r2"), "{shown}");

        let err = load(&[
            ("DATABASE_URL", "postgres://u@p/db"),
            ("DB_REPLICA_URLS", "postgres://u@r1/db,mysql://u:pw-bad@r2/db"),
        ])
        .expect_err("a bad entry");
        let text = err.to_string();
        assert!(
            text.contains("DB_REPLICA_URLS") && text.contains("u:***@r2"),
            "{text}"
        );
        assert!(!text.contains("pw-bad"), "{text}");
    }

    #[test]
    fn replicas_need_a_postgres_primary() {
        let err = load(&[("DB_REPLICA_URLS", "postgres://u@r1/db")]).expect_err("sqlite primary");
        assert!(
            err.to_string().contains("replicas need a PostgreSQL primary"),
            "{err}"
        );
    }

    #[test]
    fn replica_timings_have_defaults_and_refuse_bad_values() {
        let cfg = load(&[]).expect("defaults");
        assert_eq!(cfg.replicas.max_wait, Duration::from_millis(100));
        assert_eq!(cfg.replicas.max_lag, Duration::from_secs(10));
        assert_eq!(cfg.replicas.sticky, Duration::from_secs(2));
        let cfg = load(&[("DB_REPLICA_STICKY", "0"), ("DB_REPLICA_MAX_WAIT", "1s")]).expect("valid");
        assert_eq!(cfg.replicas.sticky, Duration::ZERO);
        assert_eq!(cfg.replicas.max_wait, Duration::from_secs(1));
        let err = load(&[
            ("DB_REPLICA_MAX_WAIT", "soon"),
            ("DB_REPLICA_MAX_LAG", "0"),
            ("DB_REPLICA_STICKY", "2"),
        ])
        .expect_err("three bad values");
        let vars: Vec<_> = err.problems().iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            ["DB_REPLICA_MAX_WAIT", "DB_REPLICA_MAX_LAG", "DB_REPLICA_STICKY"]
        );
    }

    #[test]
    fn transaction_pooling_is_refused_with_the_measured_reason() {
        let err = load(&[("DB_POOLER_MODE", "transaction")]).expect_err("refused");
        let [problem] = err.problems() else {
            panic!("one problem: {err}")
        };
        assert_eq!(problem.var, "DB_POOLER_MODE");
        assert!(
            problem.message.contains("another statement's result"),
            "{problem}"
        );
        assert!(problem.message.contains("pool_mode = session"), "{problem}");
        assert_eq!(
            load(&[("DB_POOLER_MODE", "session")]).expect("valid").pooler,
            PoolerMode::Session
        );
        let err = load(&[("DB_POOLER_MODE", "statement")]).expect_err("unknown");
        assert!(err.to_string().contains("expected one of none, session"), "{err}");
    }

    #[test]
    fn migrations_use_the_migration_url_when_set() {
        let cfg = load(&[
            ("DATABASE_URL", "postgres://app:pw-a@bouncer:6432/collex"),
            ("DB_MIGRATION_URL", "postgres://owner:pw-m@db:5432/collex"),
            ("DB_POOLER_MODE", "session"),
            ("DB_REPLICA_URLS", "postgres://app@r1/collex"),
        ])
        .expect("valid");
        let m = cfg.for_migrations();
        assert_eq!(
            m.target.to_string(),
            "postgres://owner@db:5432/collex?sslmode=disable (password set)"
        );
        assert!(m.replicas.targets.is_empty());
        assert!(!format!("{cfg:?}").contains("pw-m"));
        let plain = load(&[("DATABASE_URL", "postgres://app@db/collex")]).expect("valid");
        assert_eq!(
            plain.for_migrations().target.to_string(),
            plain.target.to_string()
        );
        let err = load(&[
            ("DATABASE_URL", "postgres://app@db/collex"),
            ("DB_MIGRATION_URL", "sqlite://x.db"),
        ])
        .expect_err("another engine");
        assert!(err.to_string().contains("DB_MIGRATION_URL"), "{err}");
    }
}
