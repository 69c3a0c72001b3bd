//! `--help` and `--version` of both binaries: they answer and exit 0 without reading the environment,
//! opening a database or creating `./collex.db`, and the help says what a user needs (variables, exit codes).

use config::vars::{self, Scope};

use super::support::{migration, service, workdir};

#[tokio::test]
async fn service_help_and_version_answer_without_starting_anything() {
    for arg in ["--help", "-h", "--version", "-V"] {
        let dir = workdir();
        // A configuration that would fail, so starting would show.
        let (code, output) = service(dir.path(), &[("DB_PORT", "not-a-port")], &[arg]).await;
        assert_eq!(code, Some(0), "service {arg}: {output}");
        assert!(
            !dir.path().join("collex.db").exists(),
            "service {arg} created ./collex.db"
        );
        if arg.contains('h') {
            for v in vars::ALL {
                assert!(
                    output.contains(v.name),
                    "service {arg} does not list {}: {output}",
                    v.name
                );
            }
            assert!(output.contains("Exit codes"), "{output}");
        } else {
            assert!(output.starts_with("service 0."), "{output}");
        }
    }
}

#[test]
fn migration_help_starts_with_its_own_description_and_lists_the_database_variables_and_exit_codes() {
    let dir = workdir();
    let (code, help, _) = migration(dir.path(), &[], &["--help"]);
    assert_eq!(code, Some(0), "{help}");
    let first = help.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Applies, rolls back and inspects the Collex database migrations"),
        "{first}"
    );
    assert!(
        help.contains("DATABASE_URL when set; else the DB_* connection variables"),
        "{help}"
    );
    for v in vars::in_scopes(&[Scope::Database]) {
        assert!(help.contains(v.name), "{} missing: {help}", v.name);
    }
    for v in vars::in_scopes(&[Scope::Service]) {
        assert!(!help.contains(v.name), "{} is not the CLI's: {help}", v.name);
    }
    for line in [
        "0  success",
        "1  a migration",
        "2  usage, configuration or validation error",
        "3  status --check",
    ] {
        assert!(help.contains(line), "{line:?} missing: {help}");
    }
    assert!(!dir.path().join("collex.db").exists());
}

#[test]
fn lock_timeout_is_offered_only_by_the_commands_that_take_the_lock() {
    let dir = workdir();
    for (command, takes_lock) in [
        ("up", true),
        ("down", true),
        ("redo", true),
        ("fresh", true),
        ("reset", true),
        ("accept-checksum", true),
        ("status", false),
        ("create", false),
    ] {
        let (code, help, _) = migration(dir.path(), &[], &[command, "--help"]);
        assert_eq!(code, Some(0), "{command}: {help}");
        assert_eq!(
            help.contains("--lock-timeout"),
            takes_lock,
            "migration {command} --help: {help}"
        );
    }
    let (_, top, _) = migration(dir.path(), &[], &["--help"]);
    assert!(!top.contains("--lock-timeout"), "{top}");
    let (code, _, stderr) = migration(dir.path(), &[], &["create", "x", "--lock-timeout", "1s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        dir.path()
            .join("migrations")
            .read_dir()
            .expect("dir")
            .next()
            .is_none(),
        "create ran"
    );
}

#[test]
fn migration_prints_configuration_problems_one_per_line() {
    let dir = workdir();
    let (code, _, stderr) = migration(
        dir.path(),
        &[("DB_PORT", "abc"), ("DB_SSL_MODE", "on")],
        &["status"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(lines[0], "error: invalid configuration:");
    assert!(
        lines[1].starts_with("  DB_SSL_MODE: expected one of disable"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("  DB_PORT: expected a port number"),
        "{stderr}"
    );
}
