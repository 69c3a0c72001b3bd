//! `Ctx`: who acts, for which business, and where its reads may go. SeaORM's hooks get no request context, so
//! the caller passes this explicitly to every repository call.
//!
//! Where reads go is the caller's stated intent ([`ReadFrom`]), never guessed from SQL text or method names:
//! SeaORM sends `INSERT … RETURNING` through `query_all`, so a method name says nothing about writing. The
//! repository hands the intent to its connection with every statement ([`crate::Op::read`]); a connection
//! with read replicas (the service's pool) honours it for reads, and sends writes and everything inside a
//! transaction to the primary whatever the intent.

use uuid::Uuid;

/// Which businesses a context may read and write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BusinessScope {
    /// No business chosen: business-scoped entities refuse to work (`EntityError::MissingScope`).
    #[default]
    Unset,
    /// Confined to one business.
    Business(Uuid),
    /// Every business: the visibly named escape for admin and maintenance code.
    All,
}

/// A position in the primary's write-ahead log after a committed write (PostgreSQL's `pg_lsn`, as a number):
/// a replica that has replayed up to it shows the write. Written and parsed in PostgreSQL's `X/Y` form
/// (`16/B374D848`), so it can travel in a header or a cookie to the client's next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteToken(pub u64);

impl std::fmt::Display for WriteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// A string that is not a WAL position in PostgreSQL's `X/Y` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a write token like 16/B374D848 (two hexadecimal numbers of at most 8 digits), got {0:?}")]
pub struct BadWriteToken(String);

impl std::str::FromStr for WriteToken {
    type Err = BadWriteToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadWriteToken(s.chars().take(40).collect());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let part = |p: &str| {
            (!p.is_empty() && p.len() <= 8)
                .then(|| u32::from_str_radix(p, 16).ok())
                .flatten()
        };
        match (part(hi), part(lo)) {
            (Some(hi), Some(lo)) => Ok(Self((u64::from(hi) << 32) | u64::from(lo))),
            _ => Err(bad()),
        }
    }
}

/// Where the reads of a context may go. Writes and transactions always go to the primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadFrom {
    /// The primary (the default): every read sees every committed write.
    #[default]
    Primary,
    /// A replica, which may be behind the primary by its replication lag.
    Replica,
    /// A replica that has replayed this write (read-your-writes); one that has not within the connection's
    /// limit (`DB_REPLICA_MAX_WAIT`) is not used and the read goes to the primary.
    After(WriteToken),
}

/// The caller's context: the actor stamped into audit columns, the business scope and where reads may go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctx {
    actor: Option<Uuid>,
    scope: BusinessScope,
    reads: ReadFrom,
}

impl Ctx {
    /// A context with no actor and no business.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the acting user, stamped into `created_by`/`updated_by`.
    #[must_use]
    pub fn actor(mut self, actor: Uuid) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Confines the context to one business.
    #[must_use]
    pub fn business(mut self, business: Uuid) -> Self {
        self.scope = BusinessScope::Business(business);
        self
    }

    /// Lifts the business confinement: every business's rows become reachable.
    #[must_use]
    pub fn all_businesses(mut self) -> Self {
        self.scope = BusinessScope::All;
        self
    }

    /// Says where this context's reads may go (default [`ReadFrom::Primary`]).
    #[must_use]
    pub fn read_from(mut self, reads: ReadFrom) -> Self {
        self.reads = reads;
        self
    }

    /// Where this context's reads may go.
    pub fn reads(&self) -> ReadFrom {
        self.reads
    }

    /// The acting user.
    pub fn actor_id(&self) -> Option<Uuid> {
        self.actor
    }

    /// The business scope.
    pub fn scope(&self) -> BusinessScope {
        self.scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_token_reads_back_as_written_in_postgres_form() {
        let t: WriteToken = "16/B374D848".parse().expect("valid");
        assert_eq!(t, WriteToken(0x16_B374_D848));
        assert_eq!(t.to_string(), "16/B374D848");
        assert_eq!(WriteToken(0).to_string(), "0/0");
        for bad in ["", "16", "/1", "1/", "x/1", "1/123456789", "1/2/3"] {
            assert!(bad.parse::<WriteToken>().is_err(), "{bad:?}");
        }
    }
}
