//! The registry: every environment variable either binary reads, with its default and a one-line meaning.
//!
//! Owns the list ([`ALL`]) and what is derived from it: the defaults the parsers fall back to (a parser asks
//! `crate::read` for a [`Var`], never for a bare name, and gets the registry's default when it is unset),
//! the variables section of `service --help` and `migration --help` ([`help`]), and the table in
//! `service/README.md` ([`markdown_table`], checked by a unit test). A new variable is added here, once, and
//! read by the parser of its [`Scope`]; the unit tests fail until the parser, the help and the README agree.
//!
//! It does not parse values (see [`crate::db`], [`crate::app`]).

use std::fmt::Write as _;

/// Which configuration reads a variable, and so which binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Which database, its pool and its migrations ([`crate::DbConfig`]): read by the service and the
    /// migration CLI.
    Database,
    /// The service alone ([`crate::AppConfig`], [`crate::LogConfig`]).
    Service,
}

/// One environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Var {
    /// The name.
    pub name: &'static str,
    /// The value used when it is unset (or empty), written as a user would write it; `None`: unset means
    /// "not used".
    pub default: Option<&'static str>,
    /// What it does, in one line.
    pub meaning: &'static str,
    /// Who reads it.
    pub scope: Scope,
}

const fn var(name: &'static str, default: Option<&'static str>, meaning: &'static str, scope: Scope) -> Var {
    Var {
        name,
        default,
        meaning,
        scope,
    }
}

/// `postgres://…` or `sqlite://…`; wins over the `DB_*` connection variables.
pub const DATABASE_URL: Var = var(
    "DATABASE_URL",
    None,
    "`postgres://user:password@host:port/db[?sslmode=..&sslrootcert=..&application_name=..]` or `sqlite://path`; wins over `DB_HOST`..`DB_NAME`",
    Scope::Database,
);
/// PostgreSQL host.
pub const DB_HOST: Var = var("DB_HOST", Some("localhost"), "PostgreSQL host", Scope::Database);
/// PostgreSQL port.
pub const DB_PORT: Var = var(
    "DB_PORT",
    Some("5432"),
    "PostgreSQL port, 1 to 65535",
    Scope::Database,
);
/// PostgreSQL user.
pub const DB_USER: Var = var("DB_USER", Some("postgres"), "PostgreSQL user", Scope::Database);
/// PostgreSQL password.
pub const DB_PASSWORD: Var = var(
    "DB_PASSWORD",
    Some("postgres"),
    "PostgreSQL password, never shown; empty means no password",
    Scope::Database,
);
/// PostgreSQL database name.
pub const DB_NAME: Var = var("DB_NAME", Some("collex"), "PostgreSQL database", Scope::Database);
/// TLS mode.
pub const DB_SSL_MODE: Var = var(
    "DB_SSL_MODE",
    Some("disable"),
    "disable, allow, prefer, require, verify-ca or verify-full (also for a `DATABASE_URL` without `sslmode`)",
    Scope::Database,
);
/// CA certificate file.
pub const DB_SSL_ROOT_CERT: Var = var(
    "DB_SSL_ROOT_CERT",
    None,
    "CA certificate file for verify-ca / verify-full; must exist",
    Scope::Database,
);
/// Pool size.
pub const DB_MAX_OPEN_CONNS: Var = var(
    "DB_MAX_OPEN_CONNS",
    Some("100"),
    "connections open at once, in use or idle; a positive integer",
    Scope::Database,
);
/// Idle cap.
pub const DB_MAX_IDLE_CONNS: Var = var(
    "DB_MAX_IDLE_CONNS",
    Some("10"),
    "idle connections kept, 0 or more; capped at `DB_MAX_OPEN_CONNS` (as Go does)",
    Scope::Database,
);
/// Connection lifetime.
pub const DB_CONN_MAX_LIFETIME: Var = var(
    "DB_CONN_MAX_LIFETIME",
    Some("1h"),
    "how long a connection lives: `1h`, `30m`, `1h30m`, `90s`; `0` = no limit",
    Scope::Database,
);
/// Idle time.
pub const DB_CONN_MAX_IDLE_TIME: Var = var(
    "DB_CONN_MAX_IDLE_TIME",
    Some("30m"),
    "how long a connection may sit idle, same syntax; `0` = no limit",
    Scope::Database,
);
/// Grace of the idle connections above the idle cap.
pub const DB_MAX_IDLE_GRACE: Var = var(
    "DB_MAX_IDLE_GRACE",
    Some("5s"),
    "how long idle connections above `DB_MAX_IDLE_CONNS` may stay unused before they are retired; `0` closes them at release, as Go does",
    Scope::Database,
);
/// Acquire timeout.
pub const DB_CONN_ACQUIRE_TIMEOUT: Var = var(
    "DB_CONN_ACQUIRE_TIMEOUT",
    Some("30s"),
    "how long a caller waits for a connection; a positive duration",
    Scope::Database,
);
/// Auto-migrate at start-up.
pub const DB_AUTO_MIGRATE: Var = var(
    "DB_AUTO_MIGRATE",
    Some("true"),
    "the service applies pending migrations at start-up: true/false (also 1/0, yes/no, on/off)",
    Scope::Database,
);
/// Migrations directory.
pub const DB_MIGRATE_PATH: Var = var(
    "DB_MIGRATE_PATH",
    Some("migrations"),
    "directory of `NNN_name.sql` + `NNN_rollback.sql`",
    Scope::Database,
);
/// Read replicas.
pub const DB_REPLICA_URLS: Var = var(
    "DB_REPLICA_URLS",
    None,
    "comma-separated `postgres://…` URLs of streaming replicas of the primary; each gets its own pool (same `DB_MAX_*` settings) and statistics. Reads go there only when the caller asks (`Ctx::read_from`)",
    Scope::Database,
);
/// How long a read-your-writes read waits for a replica.
pub const DB_REPLICA_MAX_WAIT: Var = var(
    "DB_REPLICA_MAX_WAIT",
    Some("100ms"),
    "how long a replica read carrying a write token waits for the replica to replay that write before it goes to the primary (counted as a fallback); `0` never waits",
    Scope::Database,
);
/// The lag beyond which a replica is skipped.
pub const DB_REPLICA_MAX_LAG: Var = var(
    "DB_REPLICA_MAX_LAG",
    Some("10s"),
    "a replica whose replay is this far behind (seconds of lag, measured every second) gets no reads until it catches up; a positive duration",
    Scope::Database,
);
/// The sticky window after a write.
pub const DB_REPLICA_STICKY: Var = var(
    "DB_REPLICA_STICKY",
    Some("2s"),
    "after a write through a read session, its replica reads without a token go to the primary for this long (Rails' 2 s); `0` turns it off",
    Scope::Database,
);
/// What connection pooler sits in front of PostgreSQL.
pub const DB_POOLER_MODE: Var = var(
    "DB_POOLER_MODE",
    Some("none"),
    "`none` (direct connections), `session` (PgBouncer `pool_mode = session`, supported) or `transaction` (refused: wrong results through it)",
    Scope::Database,
);
/// A direct connection for migrations.
pub const DB_MIGRATION_URL: Var = var(
    "DB_MIGRATION_URL",
    None,
    "`postgres://…` of the same database reached directly (not through a pooler): migrations and their lock use it when set",
    Scope::Database,
);
/// Backup directory.
pub const DB_BACKUP_DIR: Var = var(
    "DB_BACKUP_DIR",
    Some("backups"),
    "where `migration backup` writes snapshots and their manifests (created when missing)",
    Scope::Database,
);
/// Backup retention.
pub const DB_BACKUP_KEEP: Var = var(
    "DB_BACKUP_KEEP",
    Some("0"),
    "after each backup keep the newest N snapshots of the same database and delete older ones; `0` keeps all",
    Scope::Database,
);
/// Snapshot before migrating.
pub const DB_BACKUP_BEFORE_MIGRATE: Var = var(
    "DB_BACKUP_BEFORE_MIGRATE",
    Some("false"),
    "`migration up` and the service's auto-migrate take a snapshot first when something is pending; a failed snapshot stops the migration",
    Scope::Database,
);
/// Listen address.
pub const SERVER_ADDR: Var = var(
    "SERVER_ADDR",
    Some("127.0.0.1:8080"),
    "where the service listens: `host:port`, the host an address or a name (`localhost:8080`, `[::1]:8080`)",
    Scope::Service,
);
/// Request head timeout.
pub const SERVER_HEADER_READ_TIMEOUT: Var = var(
    "SERVER_HEADER_READ_TIMEOUT",
    Some("10s"),
    "a client that has begun a request must finish its head within this; a positive duration",
    Scope::Service,
);
/// Idle connection timeout.
pub const SERVER_IDLE_TIMEOUT: Var = var(
    "SERVER_IDLE_TIMEOUT",
    Some("75s"),
    "a connection without a request (before its first one, or between keep-alive requests) is closed after this; a positive duration",
    Scope::Service,
);
/// Connection limit.
pub const SERVER_MAX_CONNECTIONS: Var = var(
    "SERVER_MAX_CONNECTIONS",
    Some("1024"),
    "connections served at once, more wait in the listen backlog; a positive integer",
    Scope::Service,
);
/// Shutdown deadline.
pub const SERVER_SHUTDOWN_TIMEOUT: Var = var(
    "SERVER_SHUTDOWN_TIMEOUT",
    Some("20s"),
    "after SIGTERM, how long requests in flight may take; connections still open then are dropped; a positive duration",
    Scope::Service,
);
/// Slow-query log threshold.
pub const DB_SLOW_QUERY_THRESHOLD: Var = var(
    "DB_SLOW_QUERY_THRESHOLD",
    Some("200ms"),
    "a statement taking this long or longer is logged once (normalized SQL, no bound values): `200ms`, `1s`; `0` = off",
    Scope::Service,
);
/// Log filter.
pub const RUST_LOG: Var = var(
    "RUST_LOG",
    Some("info"),
    "log filter, e.g. `info`, `service=debug,sqlx=warn` (tracing-subscriber syntax)",
    Scope::Service,
);
/// Log format.
pub const LOG_FORMAT: Var = var(
    "LOG_FORMAT",
    Some("text"),
    "`text` (one readable line per event) or `json` (one JSON object per line, for log shippers)",
    Scope::Service,
);

/// Memory threshold of `/health`.
pub const HEALTH_MIN_FREE_MEMORY: Var = var(
    "HEALTH_MIN_FREE_MEMORY",
    Some("5"),
    "`/health` reports memory unhealthy below this percentage of the machine's memory available; 0 to 100",
    Scope::Service,
);
/// Disk threshold of `/health`.
pub const HEALTH_MIN_FREE_DISK: Var = var(
    "HEALTH_MIN_FREE_DISK",
    Some("5"),
    "`/health` reports disk unhealthy below this percentage of the data's filesystem available; 0 to 100",
    Scope::Service,
);

/// Every variable, in the order help and README list them.
pub const ALL: &[Var] = &[
    DATABASE_URL,
    DB_HOST,
    DB_PORT,
    DB_USER,
    DB_PASSWORD,
    DB_NAME,
    DB_SSL_MODE,
    DB_SSL_ROOT_CERT,
    DB_MAX_OPEN_CONNS,
    DB_MAX_IDLE_CONNS,
    DB_CONN_MAX_LIFETIME,
    DB_CONN_MAX_IDLE_TIME,
    DB_MAX_IDLE_GRACE,
    DB_CONN_ACQUIRE_TIMEOUT,
    DB_AUTO_MIGRATE,
    DB_MIGRATE_PATH,
    DB_REPLICA_URLS,
    DB_REPLICA_MAX_WAIT,
    DB_REPLICA_MAX_LAG,
    DB_REPLICA_STICKY,
    DB_POOLER_MODE,
    DB_MIGRATION_URL,
    DB_BACKUP_DIR,
    DB_BACKUP_KEEP,
    DB_BACKUP_BEFORE_MIGRATE,
    SERVER_ADDR,
    SERVER_HEADER_READ_TIMEOUT,
    SERVER_IDLE_TIMEOUT,
    SERVER_MAX_CONNECTIONS,
    SERVER_SHUTDOWN_TIMEOUT,
    HEALTH_MIN_FREE_MEMORY,
    HEALTH_MIN_FREE_DISK,
    DB_SLOW_QUERY_THRESHOLD,
    RUST_LOG,
    LOG_FORMAT,
];

/// The variables that select a PostgreSQL server: setting any of them turns the embedded SQLite default
/// off, and `DATABASE_URL` overrides them.
pub const CONNECTION: [Var; 7] = [
    DB_HOST,
    DB_PORT,
    DB_USER,
    DB_PASSWORD,
    DB_NAME,
    DB_SSL_MODE,
    DB_SSL_ROOT_CERT,
];

/// The variables `scopes` read, in registry order.
pub fn in_scopes(scopes: &[Scope]) -> impl Iterator<Item = &'static Var> {
    ALL.iter().filter(move |v| scopes.contains(&v.scope))
}

fn shown_default(v: &Var) -> &'static str {
    v.default.unwrap_or("unset")
}

/// The variables of `scopes` as a help section: one line each, name, default and meaning, under `title`.
pub fn help(title: &str, scopes: &[Scope]) -> String {
    let width = in_scopes(scopes).map(|v| v.name.len()).max().unwrap_or(0);
    let dwidth = in_scopes(scopes)
        .map(|v| shown_default(v).len())
        .max()
        .unwrap_or(0);
    let mut out = format!("{title}\n");
    for v in in_scopes(scopes) {
        let meaning = v.meaning.replace('`', "");
        let _ = writeln!(
            out,
            "  {:<width$}  {:<dwidth$}  {meaning}",
            v.name,
            shown_default(v)
        );
    }
    out
}

/// The README table of every variable: `| Variable | Default | Meaning |`.
pub fn markdown_table() -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n| --- | --- | --- |\n");
    for v in ALL {
        let default = v.default.map_or_else(|| "unset".to_owned(), |d| format!("`{d}`"));
        let _ = writeln!(out, "| `{}` | {default} | {} |", v.name, v.meaning);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;
    use crate::{AppConfig, DbConfig, LogConfig};

    fn names<'a>(vars: impl Iterator<Item = &'a Var>) -> BTreeSet<&'static str> {
        vars.map(|v| v.name).collect()
    }

    /// The names a parser asks for, whatever it finds.
    fn asked_by(parse: impl FnOnce(&dyn Fn(&str) -> Option<String>)) -> BTreeSet<String> {
        let asked = RefCell::new(BTreeSet::new());
        let lookup = |k: &str| {
            asked.borrow_mut().insert(k.to_owned());
            None
        };
        parse(&lookup);
        asked.into_inner()
    }

    #[test]
    fn names_are_unique() {
        assert_eq!(names(ALL.iter()).len(), ALL.len());
    }

    #[test]
    fn the_database_configuration_reads_exactly_the_database_scope() {
        let asked = asked_by(|get| {
            let _ = DbConfig::from_lookup(get);
        });
        let expected: BTreeSet<String> = in_scopes(&[Scope::Database]).map(|v| v.name.to_owned()).collect();
        assert_eq!(asked, expected);
    }

    #[test]
    fn the_service_reads_every_registered_variable_and_no_other() {
        let asked = asked_by(|get| {
            let _ = AppConfig::from_lookup(get);
            let _ = LogConfig::from_lookup(get);
        });
        let expected: BTreeSet<String> = ALL.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(asked, expected);
    }

    #[test]
    fn setting_a_variable_to_its_registered_default_changes_nothing() {
        let base = AppConfig::from_lookup(|_| None).expect("defaults are valid");
        for v in ALL {
            let Some(default) = v.default else { continue };
            let cfg = AppConfig::from_lookup(|k| (k == v.name).then(|| default.to_owned()))
                .unwrap_or_else(|e| panic!("{}={default} is rejected: {e}", v.name));
            // A connection variable selects PostgreSQL: compare the settings that do not depend on it.
            if CONNECTION.iter().any(|c| c.name == v.name) {
                continue;
            }
            assert_eq!(format!("{cfg:?}"), format!("{base:?}"), "{}={default}", v.name);
        }
        let pg_defaults = AppConfig::from_lookup(|k| match k {
            "DB_HOST" => Some("localhost".to_owned()),
            _ => None,
        })
        .expect("valid");
        for v in CONNECTION {
            let Some(default) = v.default else { continue };
            let cfg = AppConfig::from_lookup(|k| match k {
                "DB_HOST" => Some("localhost".to_owned()),
                k if k == v.name => Some(default.to_owned()),
                _ => None,
            })
            .unwrap_or_else(|e| panic!("{}={default} is rejected: {e}", v.name));
            assert_eq!(
                format!("{cfg:?}"),
                format!("{pg_defaults:?}"),
                "{}={default}",
                v.name
            );
        }
    }

    #[test]
    fn help_lists_each_variable_of_its_scopes_once() {
        let text = help("Environment:", &[Scope::Database]);
        for v in ALL {
            let lines = text
                .lines()
                .filter(|l| l.split_whitespace().next() == Some(v.name))
                .count();
            let expected = usize::from(v.scope == Scope::Database);
            assert_eq!(lines, expected, "{}: {text}", v.name);
        }
    }

    /// The table between the header line and the next blank line of `readme`.
    fn table_in(readme: &str) -> Option<String> {
        let start = readme.find("| Variable | Default | Meaning |")?;
        let rest = &readme[start..];
        let end = rest.find("\n\n").map_or(rest.len(), |e| e + 1);
        Some(rest[..end].to_owned())
    }

    #[test]
    fn the_service_readme_table_is_the_registry() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../service/README.md");
        let readme = std::fs::read_to_string(&path).expect("service/README.md");
        let table =
            table_in(&readme).expect("a `| Variable | Default | Meaning |` table in service/README.md");
        assert_eq!(
            table,
            markdown_table(),
            "service/README.md's variable table differs from the registry (config/src/vars.rs); replace it with:\n{}",
            markdown_table()
        );
    }
}
