//! Snapshots (`migration backup`, `backups`, `restore`, `up --backup`, issue 15), run through the real
//! binary against throwaway PostgreSQL databases and SQLite files: rows in every table come back exactly
//! after a migration that drops a column, a damaged snapshot is refused, retention keeps exactly N, and the
//! password is on no command line.

mod postgres;
mod sqlite;
mod support;
