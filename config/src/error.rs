//! What can go wrong with the configuration: invalid variables ([`ConfigError`]), variables that are set but
//! ignored ([`ConfigWarning`]), and a database that cannot be reached with it ([`ConnectError`]).
//!
//! Nothing here holds a password: URLs are redacted before they become part of a message, and targets are
//! shown from their parts (which carry no password).

use std::fmt;

use sea_orm::sqlx;

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong, with the (redacted) value and the expected form.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// A variable that is set but has no effect; the binaries print (the service logs) each once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// `DB_*` connection variables set beside `DATABASE_URL`, which wins.
    IgnoredBesideDatabaseUrl {
        /// The ignored variables, in registry order.
        vars: Vec<&'static str>,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IgnoredBesideDatabaseUrl { vars } => write!(
                f,
                "{} {} set but ignored: DATABASE_URL is set too and wins (unset {}, or unset DATABASE_URL to use {})",
                vars.join(", "),
                if vars.len() == 1 { "is" } else { "are" },
                if vars.len() == 1 { "it" } else { "them" },
                if vars.len() == 1 { "it" } else { "them" },
            ),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One or more variables are invalid; all of them are listed, one per line.
    #[error("invalid configuration:{}", lines(.problems))]
    Invalid {
        /// Every invalid variable.
        problems: Vec<ConfigProblem>,
    },
    /// A URL given in code could not be edited ([`crate::with_database`]).
    #[error("cannot use the URL {shown}: {source}")]
    Url {
        /// The URL, redacted.
        shown: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
}

impl ConfigError {
    /// The problems, one per invalid variable (empty for errors that are not about variables).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            Self::Invalid { problems } => problems,
            Self::Url { .. } => &[],
        }
    }
}

fn lines(problems: &[ConfigProblem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// The database could not be reached, or the SQLite URL not understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The driver's error, after the password-free target it was for; PostgreSQL's message without its
    /// internal source line, and what to do for a missing database or a refused login.
    #[error("{target}: {}", reason(.source))]
    Connect {
        /// The target as shown in logs (no password).
        target: String,
        /// The driver's error (it never contains the password: options are built from parts).
        #[source]
        source: sqlx::Error,
    },
    /// A SQLite file that cannot be opened or created, with the reason found on the file system.
    #[error("cannot open the SQLite database {}: {cause}", path.display())]
    SqliteOpen {
        /// The file.
        path: std::path::PathBuf,
        /// Why (its directory is missing, permission denied, ...).
        cause: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A SQLite file that does not exist, where a command must not create it (`status` only reads).
    #[error("no database at {}: nothing to read (`migration up` or `make migrate` creates it)", path.display())]
    NoSqliteFile {
        /// The file.
        path: std::path::PathBuf,
    },
    /// sqlx cannot understand the SQLite URL.
    #[error("invalid sqlite url {url}: {source}")]
    SqliteUrl {
        /// The URL (SQLite URLs carry no secrets).
        url: String,
        /// sqlx's reason.
        #[source]
        source: sqlx::Error,
    },
}

/// SQLSTATE 3D000: the database does not exist.
pub const PG_INVALID_CATALOG: &str = "3D000";

/// The driver's error as the user needs it: PostgreSQL's message and SQLSTATE without the line of
/// PostgreSQL's own C source that sqlx appends (`at line 948`, which reads like a line of a migration), and
/// the command that fixes a missing database or a refused login.
pub fn reason(e: &sqlx::Error) -> String {
    let sqlx::Error::Database(db) = e else {
        return e.to_string();
    };
    let msg = db.message();
    match db.code().as_deref() {
        Some(PG_INVALID_CATALOG) => {
            format!("{msg}: run `make db-create` (or `migration database create`) to create it")
        }
        Some("28P01" | "28000") => format!(
            "{msg}: check DB_USER and DB_PASSWORD (or the user and password in DATABASE_URL), and the server's pg_hba.conf"
        ),
        Some(code) => format!("{msg} (SQLSTATE {code})"),
        None => msg.to_owned(),
    }
}
