//! Passwords in malformed `DATABASE_URL`s never show, and short passwords do not garble messages: redaction
//! replaces the password where it stands, never by searching for its text.

use super::support::{migration, service, workdir};

const PASSWORD: &str = "Pw-7c2e-malformed";

/// URLs a careless hand writes: no `//`, the password as a parameter, no scheme, a wrong scheme.
fn malformed() -> Vec<String> {
    vec![
        format!("postgres:{PASSWORD}@127.0.0.1:5432/db"),
        format!("postgres://postgres@127.0.0.1:5432/db?password={PASSWORD}"),
        format!("postgres://postgres@127.0.0.1:5432/db?sslmode=disable&password={PASSWORD}&pool=3"),
        format!("u:{PASSWORD}@127.0.0.1:5432/db"),
        format!("//u:{PASSWORD}@127.0.0.1:5432/db"),
        format!("pgsql://u:{PASSWORD}@127.0.0.1:5432/db"),
    ]
}

#[tokio::test]
async fn the_service_refuses_a_malformed_database_url_without_showing_its_password() {
    for url in malformed() {
        let dir = workdir();
        let (code, everything) = service(
            dir.path(),
            &[
                ("DATABASE_URL", &url),
                ("SERVER_ADDR", "127.0.0.1:0"),
                ("RUST_LOG", "debug"),
            ],
            &[],
        )
        .await;
        assert!(
            !everything.contains(PASSWORD),
            "{url} leaked the password: {everything}"
        );
        assert_eq!(
            code,
            Some(2),
            "{url} must be refused as invalid configuration: {everything}"
        );
        assert!(everything.contains("DATABASE_URL"), "{everything}");
    }
}

#[test]
fn the_cli_refuses_a_malformed_database_url_without_showing_its_password() {
    for url in malformed() {
        let dir = workdir();
        let (code, stdout, stderr) = migration(dir.path(), &[("DATABASE_URL", &url)], &["status"]);
        let everything = format!("{stdout}{stderr}");
        assert!(
            !everything.contains(PASSWORD),
            "{url} leaked the password: {everything}"
        );
        assert_eq!(code, Some(2), "{url}: {everything}");
        assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    }
}

#[test]
fn a_short_or_common_password_leaves_the_cli_messages_readable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
        .to_string();
    for password in ["1", "postgres", "0"] {
        let dir = workdir();
        let (code, _, stderr) = migration(
            dir.path(),
            &[
                ("DB_HOST", "127.0.0.1"),
                ("DB_PORT", &closed),
                ("DB_PASSWORD", password),
                ("DB_NAME", "nc_mig"),
            ],
            &["status"],
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "postgres://postgres@127.0.0.1:{closed}/nc_mig?sslmode=disable (password set)"
            )),
            "DB_PASSWORD={password}: the target is garbled: {stderr}"
        );
        assert!(
            stderr.contains("(os error 111)"),
            "DB_PASSWORD={password}: {stderr}"
        );
        assert!(
            !stderr.contains("***"),
            "DB_PASSWORD={password}: masked by text search: {stderr}"
        );
    }
}
