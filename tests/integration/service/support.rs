//! Test support: a tiny HTTP client, a TCP proxy that can cut and restore the path to PostgreSQL, and
//! builders for configurations and running services.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migration::config::{AppConfig, DbConfig, DbTarget, PgTarget};
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

/// Waits until `cond` holds, for at most `within`.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of PostgreSQL. `cut` drops every forwarded connection and refuses new ones by closing
/// them at once; `restore` forwards again. It records the most connections it ever carried at once.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
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
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let open = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let (c, l, o, m) = (cut.clone(), live.clone(), open.clone(), max_open.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
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

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
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
    AppConfig {
        db,
        server_addr: "127.0.0.1:0".parse().expect("address"),
    }
}

/// Starts the service in this process, without a migration runner.
pub async fn start(db: DbConfig) -> service::Running {
    service::start(app(db), Arc::new(service::NotWired))
        .await
        .expect("service starts")
}
