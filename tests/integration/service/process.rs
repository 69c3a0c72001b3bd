//! The `service` binary as a user runs it: the embedded default with nothing set up, exit code 2 for bad
//! configuration, SIGTERM, and a known password that must appear nowhere.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collex_tests::{PgTestDb, TempDir, admin_url, clean_command, workspace_bin};
use migration::config::{DbConfig, DbTarget};

use super::support::{get, upstream, wait_for_status};

/// The service's working directory, with an empty `migrations/`.
fn temp_dir() -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("migrations")).expect("temp dir");
    dir
}

fn command(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = clean_command(&workspace_bin("service"));
    cmd.current_dir(cwd)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A running binary whose stdout and stderr are drained by threads (a full pipe would block the service).
struct Proc {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn spawn(mut cmd: Command) -> Proc {
    let mut child = cmd.spawn().expect("start service");
    let output = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout piped"));
    let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr piped"));
    for mut pipe in [stdout, stderr] {
        let output = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = output.lock() {
                    o.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }));
    }
    Proc {
        child,
        output,
        readers,
    }
}

impl Proc {
    fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Waits until the service says where it listens.
    fn listening_addr(&self) -> std::net::SocketAddr {
        let started = Instant::now();
        loop {
            let text = self.output();
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("collex service listening on http://"))
            {
                return line
                    .rsplit("http://")
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("address in the listening line");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no listening line: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and collects the exit status and everything printed.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let started = Instant::now();
        let exit = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "service did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (exit, self.output())
    }
}

#[tokio::test]
async fn with_nothing_set_up_it_serves_sqlite_in_collex_db_and_stops_on_sigterm() {
    let dir = temp_dir();
    let svc = spawn(command(dir.path(), &[("SERVER_ADDR", "127.0.0.1:0")]));
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    let db = get(addr, "/health/database").await.json();
    assert_eq!(db["database"]["engine"], "sqlite");
    assert!(
        dir.path().join("collex.db").exists(),
        "the embedded default is ./collex.db"
    );
    let (exit, output) = svc.terminate();
    assert!(exit.success(), "exit {exit:?}: {output}");
    assert!(
        output.contains("embedded default"),
        "start-up names the database: {output}"
    );
    assert!(output.contains("shutting down"), "{output}");
}

#[test]
fn invalid_configuration_exits_2_listing_every_problem() {
    let dir = temp_dir();
    let out = command(
        dir.path(),
        &[
            ("DB_PORT", "abc"),
            ("DB_MAX_OPEN_CONNS", "0"),
            ("DB_CONN_MAX_LIFETIME", "soon"),
        ],
    )
    .output()
    .expect("run service");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for var in ["DB_PORT", "DB_MAX_OPEN_CONNS", "DB_CONN_MAX_LIFETIME"] {
        assert!(err.contains(var), "{var} missing from {err}");
    }
}

#[tokio::test]
async fn a_known_password_appears_in_no_log_response_metric_error_or_debug_output() {
    const PASSWORD: &str = "Pw-9f3c1e7a-never-print";
    let test_db = PgTestDb::new().await;
    let pg = upstream(&admin_url());
    let user = match DbConfig::try_from_url(&admin_url()).expect("admin url").target {
        DbTarget::Postgres(t) => t.user,
        _ => "postgres".to_owned(),
    };
    let dir = temp_dir();
    let port = pg.port().to_string();
    let host = pg.ip().to_string();
    let env = [
        ("DB_HOST", host.as_str()),
        ("DB_PORT", port.as_str()),
        ("DB_USER", user.as_str()),
        ("DB_PASSWORD", PASSWORD),
        ("DB_NAME", test_db.name()),
        ("SERVER_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "trace"),
    ];
    let mut everything = String::new();

    // Logs at trace level (sqlx and SeaORM included), every endpoint and the metrics.
    let svc = spawn(command(dir.path(), &env));
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    for path in [
        "/live",
        "/ready",
        "/health",
        "/health/detailed",
        "/health/database",
        "/metrics",
        "/nope",
    ] {
        everything.push_str(&get(addr, path).await.body);
    }
    let (_, output) = svc.terminate();
    assert!(
        output.contains(&format!("postgres://{user}@{host}:{port}/{}", test_db.name())),
        "{output}"
    );
    everything.push_str(&output);

    // A server that is not there: the connect error, and a start-up that keeps retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let closed_port = closed.port().to_string();
    let mut env_down = env;
    env_down[1] = ("DB_PORT", closed_port.as_str());
    let svc = spawn(command(dir.path(), &env_down));
    let addr = svc.listening_addr();
    everything.push_str(&get(addr, "/ready").await.body);
    everything.push_str(&get(addr, "/health/detailed").await.body);
    let (_, output) = svc.terminate();
    everything.push_str(&output);

    // Configuration errors with the password in a URL.
    let out = command(
        dir.path(),
        &[(
            "DATABASE_URL",
            &format!("postgres://u:{PASSWORD}@h/db?sslmode=bogus"),
        )],
    )
    .output()
    .expect("run service");
    assert_eq!(out.status.code(), Some(2));
    everything.push_str(&String::from_utf8_lossy(&out.stderr));

    // Debug and Display of everything that holds it, and the pool's errors.
    let cfg = DbConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
        .expect("valid config");
    let pool = service::Pool::new(&cfg).expect("pool");
    everything.push_str(&format!("{cfg:?} {cfg} {pool:?} {:?}", pool.stats()));
    let mut down_cfg = cfg.clone();
    if let DbTarget::Postgres(t) = &mut down_cfg.target {
        t.port = closed.port();
    }
    down_cfg.pool.acquire_timeout = Duration::from_secs(1);
    let down = service::Pool::new(&down_cfg).expect("pool");
    let err = down.acquire().await.expect_err("nothing listens there");
    everything.push_str(&format!("{err} {err:?}"));
    let err = migration::db::connect(&down_cfg)
        .await
        .expect_err("nothing listens there");
    everything.push_str(&format!("{err} {err:?}"));
    pool.close().await;
    down.close().await;

    assert!(everything.len() > 10_000, "the capture is suspiciously small");
    assert!(!everything.contains(PASSWORD), "the password leaked");
}
