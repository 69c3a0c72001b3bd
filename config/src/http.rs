//! The service's HTTP server limits: `SERVER_HEADER_READ_TIMEOUT`, `SERVER_IDLE_TIMEOUT`,
//! `SERVER_MAX_CONNECTIONS` and `SERVER_SHUTDOWN_TIMEOUT` ([`HttpConfig`]).
//!
//! Owns their meaning, defaults (the registry's) and validation; the `service` crate's HTTP server enforces
//! them. Zero is refused for each: no limit at all is what a client holding sockets open needs.

use std::time::Duration;

use crate::read::Reader;
use crate::vars::{self, Var};

/// Limits of the HTTP server. The defaults keep a slow or hostile client from holding sockets for long and
/// leave room under a typical open-file limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `SERVER_HEADER_READ_TIMEOUT` (default 10s): how long a client may take to send a request's head, from
    /// its first byte. A connection that has not finished its head by then is closed.
    pub header_read_timeout: Duration,
    /// `SERVER_IDLE_TIMEOUT` (default 75s): how long a connection may sit without a request (before its first
    /// one, or between keep-alive requests) before it is closed. Longer than the 60 s idle timeout of common
    /// load balancers, so they close first and never send on a connection the service is closing.
    pub idle_timeout: Duration,
    /// `SERVER_MAX_CONNECTIONS` (default 1024): connections served at once; further clients wait in the
    /// listen backlog until one closes.
    pub max_connections: u32,
    /// `SERVER_SHUTDOWN_TIMEOUT` (default 20s): after SIGTERM, how long requests in flight may take; the
    /// connections still open then are dropped. Below Kubernetes' default 30 s grace period.
    pub shutdown_timeout: Duration,
}

impl Default for HttpConfig {
    /// The registry's defaults (a unit test holds the two together).
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

fn positive<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>, var: &Var, fallback: Duration) -> Duration {
    r.duration(var, false, Some(fallback)).unwrap_or(fallback)
}

/// Reads the limits, recording each invalid variable in `r`.
pub(crate) fn read<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> HttpConfig {
    let d = HttpConfig::default();
    HttpConfig {
        header_read_timeout: positive(r, &vars::SERVER_HEADER_READ_TIMEOUT, d.header_read_timeout),
        idle_timeout: positive(r, &vars::SERVER_IDLE_TIMEOUT, d.idle_timeout),
        max_connections: r.parsed(
            &vars::SERVER_MAX_CONNECTIONS,
            "a positive integer",
            d.max_connections,
            |v| v.parse::<u32>().ok().filter(|n| *n > 0),
        ),
        shutdown_timeout: positive(r, &vars::SERVER_SHUTDOWN_TIMEOUT, d.shutdown_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_registrys() {
        let r = Reader::new(|_: &str| None);
        let mut r = r;
        assert_eq!(read(&mut r), HttpConfig::default());
        assert!(r.problems.is_empty());
    }
}
