//! The service's own configuration: the database plus where to listen ([`AppConfig`], `SERVER_ADDR` as a
//! [`ServerAddr`], the HTTP limits as an [`HttpConfig`]) and how to log ([`LogConfig`]: `RUST_LOG`,
//! `LOG_FORMAT`).
//!
//! Binding the address is the service's; this module only checks that `SERVER_ADDR` is a `host:port` whose
//! host is an IP address or a host name, and keeps the name so it is resolved when the service binds.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use crate::db::{self, DbConfig};
use crate::error::{ConfigError, ConfigWarning};
use crate::health::{self, HealthConfig};
use crate::http::{self, HttpConfig};
use crate::read::{Reader, WithWarnings};
use crate::vars;

/// `SERVER_ADDR`: a host (an IP address or a host name) and a port. The name is resolved when the service
/// binds, so `localhost:8080` listens on what `localhost` resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    host: String,
    port: u16,
}

impl ServerAddr {
    /// The host as written (without the brackets of an IPv6 address).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (0 asks the system for a free one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `(host, port)`, what `tokio::net::TcpListener::bind` resolves.
    pub fn as_pair(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

/// Why a string is not a [`ServerAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a host:port like 127.0.0.1:8080, localhost:8080 or [::1]:8080, got {0:?}")]
pub struct ServerAddrError(String);

impl FromStr for ServerAddr {
    type Err = ServerAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ServerAddrError(s.to_owned());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, port) = rest.split_once("]:").ok_or_else(bad)?;
            v6.parse::<Ipv6Addr>().map_err(|_| bad())?;
            (v6, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            // A bare IPv6 address is ambiguous with its port: it needs brackets.
            if host.contains(':') || (host.parse::<IpAddr>().is_err() && !is_host_name(host)) {
                return Err(bad());
            }
            (host, port)
        };
        let port = port.parse::<u16>().map_err(|_| bad())?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// RFC 1123: dot-separated labels of letters, digits and inner hyphens, each at most 63 long.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The service's configuration: the database plus where to listen.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Database settings.
    pub db: DbConfig,
    /// `SERVER_ADDR` (default `127.0.0.1:8080`).
    pub server_addr: ServerAddr,
    /// The HTTP server's limits.
    pub http: HttpConfig,
    /// The thresholds of `/health`'s memory and disk checks.
    pub health: HealthConfig,
    /// `DB_SLOW_QUERY_THRESHOLD` (default 200ms): statements taking this long or longer are logged; zero
    /// turns the log off.
    pub slow_query_threshold: Duration,
}

/// The default of `DB_SLOW_QUERY_THRESHOLD` (the registry's; a unit test holds the two together).
pub const DEFAULT_SLOW_QUERY_THRESHOLD: Duration = Duration::from_millis(200);

impl WithWarnings for AppConfig {
    fn add_warnings(&mut self, warnings: Vec<ConfigWarning>) {
        self.db.add_warnings(warnings);
    }
}

impl AppConfig {
    /// A configuration for `db` served on `server_addr`, with the HTTP limits at their defaults (tests,
    /// tools).
    pub fn new(db: DbConfig, server_addr: ServerAddr) -> Self {
        Self {
            db,
            server_addr,
            http: HttpConfig::default(),
            health: HealthConfig::default(),
            slow_query_threshold: DEFAULT_SLOW_QUERY_THRESHOLD,
        }
    }

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
        let mut r = Reader::new(get);
        let db = db::read(&mut r);
        let fallback = ServerAddr {
            host: "127.0.0.1".to_owned(),
            port: 8080,
        };
        let server_addr = r.parsed(
            &vars::SERVER_ADDR,
            "a host:port like 127.0.0.1:8080, localhost:8080 or [::1]:8080",
            fallback,
            |v| v.parse().ok(),
        );
        let http = http::read(&mut r);
        let health = health::read(&mut r);
        let slow_query_threshold = r
            .duration(
                &vars::DB_SLOW_QUERY_THRESHOLD,
                true,
                Some(DEFAULT_SLOW_QUERY_THRESHOLD),
            )
            .unwrap_or(Duration::ZERO);
        r.finish(Self {
            db,
            server_addr,
            http,
            health,
            slow_query_threshold,
        })
    }
}

/// How the service logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// `RUST_LOG` (default `info`), in tracing-subscriber's filter syntax; the service falls back to `info`
    /// when it does not parse.
    pub filter: String,
    /// `LOG_FORMAT` (default `text`).
    pub format: LogFormat,
}

/// `LOG_FORMAT`: how the service writes its log lines to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// `text`: one readable line per event.
    #[default]
    Text,
    /// `json`: one JSON object per line (`timestamp`, `level`, `fields`, `target`), for log shippers.
    Json,
}

impl WithWarnings for LogConfig {
    fn add_warnings(&mut self, _warnings: Vec<ConfigWarning>) {}
}

impl LogConfig {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(get);
        let filter = r.string(&vars::RUST_LOG);
        let format = r.parsed(&vars::LOG_FORMAT, "text or json", LogFormat::Text, |v| {
            match v.to_ascii_lowercase().as_str() {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            }
        });
        r.finish(Self { filter, format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addr_takes_addresses_and_host_names() {
        for ok in [
            "127.0.0.1:8080",
            "0.0.0.0:0",
            "localhost:8080",
            "api.internal-1.example:443",
            "[::1]:9000",
        ] {
            let a: ServerAddr = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(a.to_string(), ok);
        }
        let v6: ServerAddr = "[::1]:9000".parse().expect("valid");
        assert_eq!(v6.as_pair(), ("::1", 9000));
        for bad in [
            "localhost",
            ":8080",
            "::1:8080",
            "host:99999",
            "-bad-:80",
            "a b:80",
            "[zz]:1",
            "h:",
        ] {
            assert!(bad.parse::<ServerAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_slow_query_threshold_defaults_to_the_registrys_and_zero_turns_it_off() {
        let read = |v: Option<&str>| {
            AppConfig::from_lookup(|k| {
                (k == "DB_SLOW_QUERY_THRESHOLD")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            })
        };
        let default = read(None).expect("valid").slow_query_threshold;
        assert_eq!(default, DEFAULT_SLOW_QUERY_THRESHOLD);
        assert_eq!(
            vars::DB_SLOW_QUERY_THRESHOLD
                .default
                .and_then(|d| humantime::parse_duration(d).ok()),
            Some(default)
        );
        assert_eq!(
            read(Some("0")).expect("valid").slow_query_threshold,
            Duration::ZERO
        );
        assert_eq!(
            read(Some("1s")).expect("valid").slow_query_threshold,
            Duration::from_secs(1)
        );
        let err = read(Some("fast")).expect_err("not a duration").to_string();
        assert!(
            err.contains("DB_SLOW_QUERY_THRESHOLD") && err.contains("fast"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_server_addr_names_the_forms_it_takes() {
        let err = AppConfig::from_lookup(|k| (k == "SERVER_ADDR").then(|| "localhost".to_owned()))
            .expect_err("no port");
        let text = err.to_string();
        assert!(
            text.contains("SERVER_ADDR") && text.contains("localhost:8080"),
            "{text}"
        );
    }
}
