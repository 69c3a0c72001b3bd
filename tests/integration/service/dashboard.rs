//! `/dashboard` (issue 14, points 3 and 5): the page, its script and style under a strict
//! Content-Security-Policy, its data from real work on PostgreSQL, and the page itself in headless Chromium:
//! it reaches its ready state showing the real numbers, with no console error, and leaves the screenshot the
//! README shows (`docs/dashboard.png`). Chromium is required: a machine without it fails this test
//! (`scripts/ensure-tools.sh test` installs it).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use collex_tests::PgTestDb;
use entity::prelude::*;
use entity::{businesses, users};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, Statement};
use service::dashboard;

use super::support::{get, pg_config, start_with_runner};

const CHROMIUM: &str = "chromium";

/// Inserts and reads through the repository, and a few statements over the slow-query threshold.
async fn load(pool: &service::Pool, round: u32) {
    let shop = Businesses::repo(pool.db(), Ctx::new())
        .expect("not scoped")
        .insert(businesses::ActiveModel {
            name: Set("Dashboard Shop".into()),
            slug: Set(format!("dashboard-shop-{round}")),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("business");
    let users = Users::repo(pool.db(), Ctx::new().business(shop.id)).expect("scoped");
    let mut ids = Vec::new();
    for n in 0..25 {
        let u = users
            .insert(users::ActiveModel {
                phone_number: Set(format!("+1555{round}00{n:04}")),
                status: Set("active".into()),
                ..Default::default()
            })
            .await
            .expect("user");
        ids.push(u.id);
    }
    for _ in 0..4 {
        for id in &ids {
            users.find_by_id(*id).await.expect("read").expect("found");
        }
    }
    for _ in 0..3 {
        pool.db()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_sleep(0.06)",
            ))
            .await
            .expect("slow statement");
    }
}

fn chromium(args: &[&str]) -> (String, String) {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {CHROMIUM} ({e}): install it with scripts/ensure-tools.sh test (Debian package chromium)")
        });
    assert!(
        out.status.success(),
        "{CHROMIUM} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The console messages Chromium logged for the page (`CONSOLE(line)] "message"` lines).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// The text of the element with `id` in a dumped DOM.
fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].trim())
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_real_numbers_in_headless_chromium() {
    let db = PgTestDb::migrated().await;
    let mut cfg = pg_config(db.url());
    cfg.pool.max_open = 9;
    cfg.migrate_path = collex_tests::migrations_dir();
    let svc = start_with_runner(cfg).await;
    let addr = svc.addr();
    svc.pool().queries().set_slow_threshold(Duration::from_millis(50));
    load(svc.pool(), 1).await;
    // Two samples of history without waiting for the sampler's clock.
    dashboard::sample(svc.state());
    load(svc.pool(), 2).await;
    dashboard::sample(svc.state());

    // The page and its assets: a strict policy, nothing inline.
    let page = get(addr, "/dashboard").await;
    assert_eq!(page.status, 200);
    let csp = page
        .header("content-security-policy")
        .expect("CSP header")
        .to_owned();
    assert_eq!(csp, dashboard::CSP);
    assert!(!page.body.contains("<script>") && page.body.contains("src=\"/dashboard/app.js\""));
    for (path, kind) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").is_some_and(|c| c.starts_with(kind)),
            "{path}"
        );
    }

    // Its data: the users inserted show under insert/users, the slow statements in the slowest list.
    let data = get(addr, "/dashboard/data").await.json();
    assert_eq!(data["pool"]["max_open"], 9);
    let inserts = data["queries"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["entity"] == "users" && r["operation"] == "insert")
        .expect("an insert/users row")
        .clone();
    assert_eq!(inserts["count"], 50);
    assert!(inserts["p95_ms"].as_f64().is_some(), "{inserts}");
    assert!(
        data["slowest"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["sql"] == "SELECT pg_sleep(?)")),
        "{}",
        data["slowest"]
    );
    assert!(data["history"].as_array().is_some_and(|h| h.len() >= 2));
    assert_eq!(data["migrations"]["state"], "known");
    assert_eq!(data["replicas"], serde_json::json!([]), "no DB_REPLICA_URLS");

    // The page in a browser: ready, with the numbers above, and nothing on the console.
    let url = format!("http://{addr}/dashboard");
    let (dom, stderr) = chromium(&["--dump-dom", &url]);
    assert!(dom.contains("data-state=\"ready\""), "not ready: {dom}\n{stderr}");
    assert_eq!(text_of(&dom, "max-open"), Some("9"), "{dom}");
    assert_eq!(text_of(&dom, "mig-pending"), Some("0"), "{dom}");
    assert!(
        dom.contains("<td>users</td><td>insert</td><td class=\"num\">50</td>"),
        "{dom}"
    );
    assert!(dom.contains("SELECT pg_sleep(?)"), "{dom}");
    assert!(text_of(&dom, "ping").is_some_and(|p| p.ends_with(" ms")), "{dom}");
    assert!(dom.contains("<polyline"), "no chart drawn: {dom}");
    assert_eq!(text_of(&dom, "replica"), Some("no replica configured"), "{dom}");
    assert!(
        console_lines(&stderr).is_empty(),
        "console: {:#?}",
        console_lines(&stderr)
    );

    // The screenshot the README shows, and one at a phone's width that must render too.
    let shot = repo_root().join("docs/dashboard.png");
    std::fs::create_dir_all(shot.parent().expect("docs")).expect("docs/");
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,1500",
        &url,
    ]);
    assert!(
        console_lines(&stderr).is_empty(),
        "console: {:#?}",
        console_lines(&stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let phone = tempfile::tempdir().expect("tmp");
    let phone_shot = phone.path().join("phone.png");
    let (_, stderr) = chromium(&[
        &format!("--screenshot={}", phone_shot.display()),
        "--window-size=390,844",
        &url,
    ]);
    assert!(
        console_lines(&stderr).is_empty(),
        "console: {:#?}",
        console_lines(&stderr)
    );
    assert!(std::fs::metadata(&phone_shot).is_ok_and(|m| m.len() > 5_000));
    svc.shutdown().await.expect("shutdown");
}
