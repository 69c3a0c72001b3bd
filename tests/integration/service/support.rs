//! Test support: a tiny HTTP client, a TCP proxy that can cut and restore the path to PostgreSQL, builders
//! for configurations and running services, and the `service` binary run as a process.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collex_tests::{TempDir, clean_command, workspace_bin};
use config::{AppConfig, DbConfig, DbTarget, PgTarget};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub use collex_tests::http::get;

/// Polls `GET path` until it answers `status`, for at most `within`; returns how long it took.
pub async fn wait_for_status(addr: SocketAddr, path: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = get(addr, path).await;
        if r.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} still answers {} after {within:?} (wanted {status}): {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bodies of every endpoint (and of a path that is none), one after another: what a prober sees.
pub async fn every_endpoint(addr: SocketAddr) -> String {
    let mut bodies = String::new();
    for path in [
        "/live",
        "/ready",
        "/health",
        "/health/detailed",
        "/health/database",
        "/metrics",
        "/nope",
    ] {
        bodies.push_str(&get(addr, path).await.body);
    }
    bodies
}

/// Waits until `cond` holds, for at most `within`.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of PostgreSQL. `cut` drops every forwarded connection and refuses new ones by closing
/// them at once; `hang` drops them too but holds new ones open without an answer (a network that swallows
/// packets); `restore` forwards again. It records the most connections it ever carried at once.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    open: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
    accept: AbortHandle,
}

impl Proxy {
    /// Starts a proxy to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let hang = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let open = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let (c, l, o, m) = (cut.clone(), live.clone(), open.clone(), max_open.clone());
        let (h, held_by_task) = (hang.clone(), held.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if h.load(Ordering::SeqCst) {
                    held_by_task.lock().expect("held list").push(client);
                    continue;
                }
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (o2, m2) = (o.clone(), m.clone());
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let n = o2.fetch_add(1, Ordering::SeqCst) + 1;
                    m2.fetch_max(n, Ordering::SeqCst);
                    let _guard = Dec(o2);
                    let (mut client, mut server) = (client, server);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                l.lock().expect("proxy list").push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            cut,
            hang,
            held,
            live,
            open,
            max_open,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in self.live.lock().expect("proxy list").drain(..) {
            h.abort();
        }
    }

    /// Drops every connection and holds new ones open without forwarding a byte.
    pub fn hang(&self) {
        self.hang.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// Forwards again (connections held by `hang` are closed).
    pub fn restore(&self) {
        self.hang.store(false, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
        self.held.lock().expect("held list").clear();
    }

    /// Connections carried right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The most connections carried at once.
    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }
}

struct Dec(Arc<AtomicUsize>);

impl Drop for Dec {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The PostgreSQL parts of a configuration for `url`.
pub fn pg_config(url: &str) -> DbConfig {
    let mut cfg = DbConfig::try_from_url(url).expect("test URL parses");
    cfg.auto_migrate = false;
    cfg
}

/// The same configuration, reached through `proxy`.
pub fn via(mut cfg: DbConfig, proxy: &Proxy) -> DbConfig {
    if let DbTarget::Postgres(PgTarget { host, port, .. }) = &mut cfg.target {
        *host = proxy.addr.ip().to_string();
        *port = proxy.addr.port();
    }
    cfg
}

/// The PostgreSQL server's address from `TEST_DATABASE_URL`.
pub fn upstream(url: &str) -> SocketAddr {
    let cfg = pg_config(url);
    let DbTarget::Postgres(pg) = &cfg.target else {
        panic!("TEST_DATABASE_URL is not PostgreSQL")
    };
    let host = if pg.host == "localhost" {
        "127.0.0.1"
    } else {
        pg.host.as_str()
    };
    format!("{host}:{}", pg.port)
        .parse()
        .expect("TEST_DATABASE_URL host is an IP address or localhost")
}

/// A service configuration on port 0.
pub fn app(db: DbConfig) -> AppConfig {
    let mut cfg = AppConfig::new(db, "127.0.0.1:0".parse().expect("address"));
    // The verdicts on memory and disk are the host's (a CI machine's disk may be nearly full), not the
    // service's: off here, and tested with thresholds the host cannot meet in service::endpoints.
    cfg.health.min_free_memory_percent = 0.0;
    cfg.health.min_free_disk_percent = 0.0;
    cfg
}

/// Starts the service in this process, without a migration runner.
pub async fn start(db: DbConfig) -> service::Running {
    service::start(app(db), Arc::new(service::NotWired))
        .await
        .expect("service starts")
}

/// Starts the service in this process with the real migration runner on `db.migrate_path`, and waits until
/// start-up is done and has read the migration state once.
pub async fn start_with_runner(db: DbConfig) -> service::Running {
    let runner = Arc::new(service::Runner::new(db.migrate_path.clone()));
    let svc = service::start(app(db), runner).await.expect("service starts");
    wait_for_status(svc.addr(), "/ready", 200, Duration::from_secs(30)).await;
    let state = svc.state().clone();
    eventually(
        Duration::from_secs(10),
        "start-up read the migration state",
        || state.migration_state_reads() >= 1,
    )
    .await;
    svc
}

/// Clients asking `path` in a loop until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` clients asking `GET path` of `addr` one request after another.
    pub fn start(addr: SocketAddr, path: &'static str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let _ = get(addr, path).await;
                    }
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops the clients and waits for them.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task did not panic");
        }
    }
}

/// The service's working directory, with an empty `migrations/`.
pub fn temp_dir() -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("migrations")).expect("temp dir");
    dir
}

pub fn command(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = clean_command(&workspace_bin("service"));
    cmd.current_dir(cwd)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What a started service did first.
pub enum Settled {
    /// It exited by itself, with everything it printed.
    Exited(std::process::ExitStatus, String),
    /// It is serving at this address.
    Listening(Proc, SocketAddr),
}

/// A running binary whose stdout and stderr are drained by threads (a full pipe would block the service).
pub struct Proc {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

pub fn spawn(mut cmd: Command) -> Proc {
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
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The address of the listening line, once the service printed it.
    fn announced(&self) -> Option<SocketAddr> {
        let text = self.output();
        let line = text
            .lines()
            .find(|l| l.starts_with("collex service listening on http://"))?;
        Some(
            line.rsplit("http://")
                .next()
                .and_then(|a| a.parse().ok())
                .expect("address in the listening line"),
        )
    }

    /// Waits until the process exits by itself or says where it listens, whichever comes first.
    pub fn settle(mut self) -> Settled {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Settled::Exited(status, self.output());
            }
            if let Some(addr) = self.announced() {
                return Settled::Listening(self, addr);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "neither exited nor listening: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the service says where it listens.
    pub fn listening_addr(&self) -> std::net::SocketAddr {
        let started = Instant::now();
        loop {
            if let Some(addr) = self.announced() {
                return addr;
            }
            let text = self.output();
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no listening line: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the output contains `text` (at most 30 s).
    pub fn wait_for_output(&self, text: &str) {
        let started = Instant::now();
        while !self.output().contains(text) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{text:?} never printed: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and collects the exit status and everything printed. Panics when the process has not
    /// exited 20 s after the signal (it is killed then, so no process is left behind).
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
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
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("service did not stop within 20s of SIGTERM: {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (exit, self.output())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A test that panicked before terminate() must not leave the service running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary on a free port of 127.0.0.1 in a working directory of its own (SQLite there unless `env` says
/// otherwise), once `/ready` answers 200. Keep the directory as long as the process.
pub async fn serve(env: &[(&str, &str)]) -> (TempDir, Proc, SocketAddr) {
    let dir = temp_dir();
    let mut cmd = command(dir.path(), &[("SERVER_ADDR", "127.0.0.1:0")]);
    cmd.envs(env.iter().copied());
    let svc = spawn(cmd);
    let addr = svc.listening_addr();
    wait_for_status(addr, "/ready", 200, Duration::from_secs(15)).await;
    (dir, svc, addr)
}
