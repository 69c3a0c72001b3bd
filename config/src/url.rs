//! URLs: `DATABASE_URL` parsed into a target, passwords redacted where they stand, and the database name of a
//! URL replaced (tests and the bench reach their throwaway databases that way).
//!
//! Redaction never searches for the password's text (a short password such as `1` or `postgres` would garble
//! every message that happens to contain it, and show which characters it has): it finds the password's
//! position in the string's structure (user info, `password=` parameters of a query or a `key=value`
//! connection string) and replaces that span. A string that is not a well-formed `scheme://` URL has its
//! whole user info hidden, since which part of it is the password cannot be told.

use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use secrecy::SecretString;

use crate::db::{DbTarget, PgTarget, SqliteTarget, SslMode};
use crate::error::ConfigError;
use crate::read::Reader;
use crate::vars::{self, Var};

const URL_EXPECTED: &str =
    "postgres://user:password@host:port/database[?sslmode=...&sslrootcert=...] or sqlite://path";

/// Parses `DATABASE_URL` into a target. Problems name `DATABASE_URL` and show the URL redacted.
pub(crate) fn parse_database_url<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    raw: &str,
    ssl_mode: SslMode,
    ssl_root_cert: Option<PathBuf>,
) -> Option<DbTarget> {
    parse_url_of(r, &vars::DATABASE_URL, raw, ssl_mode, ssl_root_cert)
}

/// Parses a database URL given in `var` (`DATABASE_URL`, an entry of `DB_REPLICA_URLS`, `DB_MIGRATION_URL`);
/// problems name `var` and show the URL redacted.
pub(crate) fn parse_url_of<F: Fn(&str) -> Option<String>>(
    r: &mut Reader<F>,
    var: &Var,
    raw: &str,
    ssl_mode: SslMode,
    ssl_root_cert: Option<PathBuf>,
) -> Option<DbTarget> {
    let shown = redact_url(raw);
    let fail = |r: &mut Reader<F>, why: String| {
        r.fail(var, format!("expected {URL_EXPECTED}, got {shown:?} ({why})"));
    };
    let Some((scheme, rest)) = split_scheme(raw) else {
        fail(
            r,
            "no scheme: it must start with postgres:// or sqlite://".to_owned(),
        );
        return None;
    };
    if scheme.eq_ignore_ascii_case("sqlite") {
        // sqlx's own forms (`sqlite::memory:`, `sqlite:path`, `sqlite://path`); SQLite URLs hold no secret.
        return match SqliteConnectOptions::from_str(raw) {
            Ok(_) => Some(DbTarget::Sqlite(SqliteTarget { url: raw.to_owned() })),
            Err(e) => {
                fail(r, e.to_string());
                None
            }
        };
    }
    if !matches!(scheme.to_ascii_lowercase().as_str(), "postgres" | "postgresql") {
        fail(r, format!("unsupported scheme {scheme:?}"));
        return None;
    }
    if !rest.starts_with("//") {
        fail(r, format!("no \"//\" after \"{scheme}:\""));
        return None;
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            fail(r, e.to_string());
            return None;
        }
    };
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
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
        ssl_mode,
        ssl_root_cert,
        application_name: None,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => match SslMode::parse(&v) {
                Some(m) => target.ssl_mode = m,
                None => r.fail(
                    var,
                    format!(
                        "expected sslmode to be {}, got {:?} in {shown:?}",
                        SslMode::EXPECTED,
                        v.as_ref()
                    ),
                ),
            },
            "sslrootcert" => target.ssl_root_cert = Some(PathBuf::from(v.as_ref())),
            "application_name" => target.application_name = Some(v.into_owned()),
            other => r.fail(
                var,
                format!(
                    "expected only the query parameters sslmode, sslrootcert and application_name, got {other:?} \
                     in {shown:?}"
                ),
            ),
        }
    }
    Some(DbTarget::Postgres(target))
}

/// Whether the URL's query sets `key` (so a `DB_*` fallback for it has no effect).
pub(crate) fn query_has(raw: &str, key: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| u.query_pairs().any(|(k, _)| k == key))
}

/// `scheme` and what follows its `:`, when the string starts with a URL scheme (`[A-Za-z][A-Za-z0-9+.-]*:`).
fn split_scheme(raw: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = raw.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
        .then_some((scheme, rest))
}

/// Replaces the database name (the URL path) of a PostgreSQL URL, keeping everything else.
///
/// # Errors
/// [`ConfigError::Url`] when `url` is not a URL.
pub fn with_database(url: &str, db: &str) -> Result<String, ConfigError> {
    let mut u = url::Url::parse(url).map_err(|source| ConfigError::Url {
        shown: redact_url(url),
        source,
    })?;
    u.set_path(&format!("/{db}"));
    Ok(u.into())
}

/// Replaces the password in a URL or a `key=value` connection string with `***`, where it stands: the
/// password of the user info and every `password=` value. A string that is not a well-formed `scheme://` URL
/// has its whole user info replaced. See the module docs for why this never searches for the password's text.
pub fn redact_url(raw: &str) -> String {
    let mut spans = Vec::new();
    if let Some(span) = password_in_user_info(raw) {
        spans.push(span);
    }
    spans.extend(password_parameters(raw));
    replace(raw, spans)
}

/// The byte range to hide in the user info (`scheme://user:PASSWORD@host`), if any.
fn password_in_user_info(raw: &str) -> Option<Range<usize>> {
    let (start, well_formed) = match split_scheme(raw) {
        Some((scheme, rest)) if rest.starts_with("//") => (scheme.len() + 3, true),
        Some((scheme, _)) => (scheme.len() + 1, false),
        None => (0, false),
    };
    // The user info ends at the last '@': a password may hold '@', '/' or '?' unencoded, and hiding too much
    // of a string that also has an '@' further on is better than showing a password.
    let at = start + raw[start..].rfind('@')?;
    if !well_formed {
        return (at > start).then_some(start..at);
    }
    let colon = raw[start..at].find(':')?;
    Some(start + colon + 1..at)
}

/// The byte ranges of the values of `password=` parameters, in a URL query (`&`-separated) or a libpq
/// connection string (space-separated, values optionally in single quotes).
fn password_parameters(raw: &str) -> Vec<Range<usize>> {
    let bytes = raw.as_bytes();
    let lower = raw.to_ascii_lowercase();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password") {
        let key = from + found;
        from = key + "password".len();
        let starts_param = key == 0 || matches!(bytes[key - 1], b'?' | b'&' | b';' | b' ' | b'\t' | b'\n');
        if !starts_param {
            continue;
        }
        let mut i = from;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let value_start = i;
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !matches!(bytes[i], b'&' | b'#' | b' ' | b'\t' | b'\n' | b';') {
                i += 1;
            }
        }
        if i > value_start {
            spans.push(value_start..i);
        }
        from = i.max(from);
    }
    spans
}

/// `raw` with each span (merged where they overlap) replaced by `***`.
fn replace(raw: &str, mut spans: Vec<Range<usize>>) -> String {
    spans.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    for s in spans {
        if s.end <= at {
            continue;
        }
        let start = s.start.max(at);
        out.push_str(&raw[at..start]);
        out.push_str("***");
        at = s.end;
    }
    out.push_str(&raw[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_the_user_info_is_replaced_where_it_stands() {
        assert_eq!(redact_url("postgres://u:p@ss@h:5/d"), "postgres://u:***@h:5/d");
        assert_eq!(redact_url("postgres://u:p/w@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact_url("postgres://u:p?w@h/d"), "postgres://u:***@h/d");
        assert_eq!(
            redact_url("postgres://postgres:postgres@h/postgres"),
            "postgres://postgres:***@h/postgres"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }

    #[test]
    fn a_malformed_url_has_its_whole_user_info_hidden() {
        assert_eq!(
            redact_url("postgres:PW@127.0.0.1:5432/db"),
            "postgres:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact_url("u:PW@127.0.0.1:5432/db"), "u:***@127.0.0.1:5432/db");
        assert_eq!(redact_url("//u:PW@h/db"), "***@h/db");
    }

    #[test]
    fn password_parameters_are_replaced() {
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=disable&password=PW&x=1"),
            "postgres://u@h/db?sslmode=disable&password=***&x=1"
        );
        assert_eq!(
            redact_url("host=h password='p w' dbname=x"),
            "host=h password=*** dbname=x"
        );
        assert_eq!(redact_url("host=h PASSWORD = PW"), "host=h PASSWORD = ***");
        assert_eq!(
            redact_url("postgres://u@h/my_password_db"),
            "postgres://u@h/my_password_db"
        );
    }

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1").expect("a URL"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "t2").expect("a URL"),
            "postgres://u@h/t2"
        );
        let err = with_database("postgres://u:SECRET@h:port/db", "x").expect_err("not a URL");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}
