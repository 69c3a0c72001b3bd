//! `DB_*` connection variables set beside `DATABASE_URL` are ignored, and both binaries say so once.

use super::support::{migration, service, workdir};

const IGNORED: &str = "DB_HOST, DB_PASSWORD are set but ignored: DATABASE_URL is set too and wins";

#[tokio::test]
async fn the_service_warns_once_about_connection_variables_beside_database_url() {
    let dir = workdir();
    let (_, output) = service(
        dir.path(),
        &[
            ("DATABASE_URL", "sqlite://./w.db"),
            ("DB_HOST", "elsewhere"),
            ("DB_PASSWORD", "Pw-warn-3f1"),
            ("SERVER_ADDR", "127.0.0.1:0"),
        ],
        &[],
    )
    .await;
    assert_eq!(output.matches(IGNORED).count(), 1, "{output}");
    assert!(!output.contains("Pw-warn-3f1"), "{output}");
}

#[test]
fn the_cli_warns_once_about_connection_variables_beside_database_url() {
    let dir = workdir();
    // `status` never creates the SQLite file (issue 16.4): the database exists first.
    std::fs::write(dir.path().join("w.db"), b"").expect("empty database file");
    let (code, _, stderr) = migration(
        dir.path(),
        &[
            ("DATABASE_URL", "sqlite://./w.db"),
            ("DB_HOST", "elsewhere"),
            ("DB_PASSWORD", "Pw-warn-3f1"),
        ],
        &["status"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stderr.matches(&format!("warning: {IGNORED}")).count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("Pw-warn-3f1"), "{stderr}");
}
