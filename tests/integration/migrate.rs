//! Tests of the migration runner (`migration` crate) and its CLI, on throwaway PostgreSQL databases (and
//! SQLite where SQLite is the subject). Migration files are generated into temporary directories, never read
//! from the repository's `migrations/` folder.

mod cli;
mod concurrency;
mod edits;
mod failures;
mod inputs;
mod roundtrip;
mod sqlite;
mod support;
mod validation;
