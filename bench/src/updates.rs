//! Versioned updates under contention: read, increment a counter kept in `display_name`, `Repo::update`;
//! on `EntityError::StaleVersion` read again and retry. 16 tasks on one row, then 16 tasks each picking one
//! of 16 rows at random per update. The reference is the same loop in raw sqlx (`UPDATE ... WHERE version = $n
//! RETURNING *`, a missed row counted as stale without a diagnosing read). The two loops alternate over the
//! rounds; the client's CPU per successful update is reported beside the rate.
//!
//! Lost updates are checked, not assumed: after the run, each row's counter and version must have moved by
//! exactly the number of successes the tasks counted for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use entity::repo::RepoExt;
use entity::{Ctx, EntityError, users};
use sea_orm::sqlx::{self, Row as _};
use sea_orm::{ActiveValue, DatabaseConnection, IntoActiveModel};
use uuid::Uuid;

use crate::db;
use crate::part::Env;
use crate::report::{Figure, Report, Target};
use crate::rounds;

const TASKS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdatePath {
    Repo,
    Raw,
}

/// Counts of one run.
#[derive(Debug, Default, Clone)]
struct Counts {
    successes: u64,
    retries: u64,
    per_row: Vec<u64>,
    elapsed: Duration,
    /// The bench process's CPU seconds over the run.
    cpu_s: f64,
    /// Successes that the counter or the version does not show (must be 0).
    lost: u64,
}

fn counter_of(display_name: Option<&str>) -> anyhow::Result<u64> {
    display_name
        .unwrap_or("0")
        .parse()
        .with_context(|| format!("display_name {display_name:?} is not a counter"))
}

/// One successful increment of `id`; returns how many stale attempts it took.
async fn increment(
    path: UpdatePath,
    db: &DatabaseConnection,
    business: Uuid,
    id: Uuid,
) -> anyhow::Result<u64> {
    let mut retries = 0;
    loop {
        match path {
            UpdatePath::Repo => {
                let repo = users::Entity::repo(db, Ctx::new().business(business))?;
                let model = repo.get(id).await?;
                let n = counter_of(model.display_name.as_deref())?;
                let mut am = model.into_active_model();
                am.display_name = ActiveValue::Set(Some((n + 1).to_string()));
                match repo.update(am).await {
                    Ok(_) => return Ok(retries),
                    Err(EntityError::StaleVersion { .. }) => retries += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            UpdatePath::Raw => {
                let pool = db.get_postgres_connection_pool();
                let row = sqlx::query(
                    "SELECT * FROM users WHERE business_id = $1 AND deleted_at IS NULL AND id = $2",
                )
                .bind(business)
                .bind(id)
                .fetch_one(pool)
                .await?;
                let version: i32 = row.try_get("version")?;
                let n = counter_of(row.try_get::<Option<String>, _>("display_name")?.as_deref())?;
                let updated = sqlx::query(
                    "UPDATE users SET display_name = $1, updated_at = $2, version = version + 1 \
                     WHERE business_id = $3 AND deleted_at IS NULL AND id = $4 AND version = $5 RETURNING *",
                )
                .bind((n + 1).to_string())
                .bind(entity::repo::now())
                .bind(business)
                .bind(id)
                .bind(version)
                .fetch_optional(pool)
                .await?;
                match updated {
                    Some(row) => {
                        std::hint::black_box(row.try_get::<i32, _>("version")?);
                        return Ok(retries);
                    }
                    None => retries += 1,
                }
            }
        }
    }
}

async fn state(db: &DatabaseConnection, id: Uuid) -> anyhow::Result<(u64, i64)> {
    let row = sqlx::query("SELECT display_name, version FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(db.get_postgres_connection_pool())
        .await?;
    let name: Option<String> = row.try_get(0)?;
    let version: i32 = row.try_get(1)?;
    Ok((counter_of(name.as_deref())?, i64::from(version)))
}

async fn contend(
    path: UpdatePath,
    db: &DatabaseConnection,
    rows: &[(Uuid, Uuid)],
    window: Duration,
) -> anyhow::Result<Counts> {
    let mut before = Vec::new();
    for (id, _) in rows {
        before.push(state(db, *id).await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let rows_arc: Arc<Vec<(Uuid, Uuid)>> = Arc::new(rows.to_vec());
    let mut handles = Vec::new();
    let (start, cpu0) = (Instant::now(), rounds::self_cpu_s());
    for t in 0..TASKS {
        let (stop, rows, db) = (stop.clone(), rows_arc.clone(), db.clone());
        handles.push(tokio::spawn(async move {
            let mut per_row = vec![0u64; rows.len()];
            let mut retries = 0;
            let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ (t as u64 + 7);
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = (x % rows.len() as u64) as usize;
                let (id, business) = rows[k];
                retries += increment(path, &db, business, id).await?;
                per_row[k] += 1;
            }
            anyhow::Ok((per_row, retries))
        }));
    }
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = Counts {
        per_row: vec![0; rows.len()],
        ..Counts::default()
    };
    for h in handles {
        let (per_row, retries) = h.await.context("update task panicked")??;
        counts.retries += retries;
        for (k, n) in per_row.into_iter().enumerate() {
            counts.per_row[k] += n;
        }
    }
    counts.elapsed = start.elapsed();
    counts.cpu_s = rounds::self_cpu_s() - cpu0;
    counts.successes = counts.per_row.iter().sum();
    for (k, (id, _)) in rows.iter().enumerate() {
        let (counter, version) = state(db, *id).await?;
        let (c0, v0) = before[k];
        let n = counts.per_row[k];
        let moved = (counter.saturating_sub(c0)).min(version.saturating_sub(v0).max(0) as u64);
        if counter != c0 + n || version != v0 + n as i64 {
            eprintln!(
                "collex-bench: LOST UPDATES on user {id}: {n} successes counted, counter moved {} and version {}",
                counter as i64 - c0 as i64,
                version - v0
            );
        }
        counts.lost += n.abs_diff(moved);
    }
    Ok(counts)
}

/// Runs the contention benchmark and adds its figures.
///
/// # Errors
/// Database errors, or lost updates (which fail the run: they must be 0).
pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let data = env.data(report).await?;
    let db = db::connect(&data.url, TASKS as u32).await?;
    // Rows of business 1: i = 1, 4, 7, ...
    let rows: Vec<(Uuid, Uuid)> = (0..16u32)
        .map(|k| 1 + 3 * k)
        .map(|i| (db::user_id(i), db::business_id(i)))
        .collect();
    let paths = [UpdatePath::Repo, UpdatePath::Raw];
    for (label, set) in [("16 tasks, 1 row", &rows[..1]), ("16 tasks, 16 rows", &rows[..])] {
        eprintln!("collex-bench: updates, {label}");
        let r = rounds::alternate(env.rounds(), paths.len(), |k, _| {
            contend(paths[k], &db, set, env.window())
        })
        .await?;
        let rate = |c: &Counts| c.successes as f64 / c.elapsed.as_secs_f64();
        let retries = |c: &Counts| c.retries as f64 / c.successes.max(1) as f64;
        let cpu = |c: &Counts| c.cpu_s * 1e6 / c.successes.max(1) as f64;
        let total = |k: usize, f: fn(&Counts) -> u64| r.samples[k].iter().map(f).sum::<u64>();
        let (repo_lost, raw_lost) = (total(0, |c| c.lost), total(1, |c| c.lost));
        let (repo_ok, raw_ok) = (total(0, |c| c.successes), total(1, |c| c.successes));
        report.add(
            Figure::from_rounds(
                "updates",
                format!("Repo::update, {label}"),
                &r.of(0, rate),
                "updates/s",
            )
            .against_rounds("raw sqlx versioned UPDATE, same loop", &r.of(1, rate))
            .target(Target::RatioAtLeast(0.95)),
        );
        report.add(
            Figure::from_rounds(
                "updates",
                format!("client CPU per update, Repo::update, {label}"),
                &r.of(0, cpu),
                "us",
            )
            .against_rounds("raw sqlx", &r.of(1, cpu)),
        );
        report.add(
            Figure::from_rounds(
                "updates",
                format!("retries per success, {label}"),
                &r.of(0, retries),
                "",
            )
            .against_rounds("raw sqlx", &r.of(1, retries)),
        );
        report.add(
            Figure::new("updates", format!("lost updates, {label}"), repo_lost as f64, "")
                .against("raw sqlx", Some(raw_lost as f64))
                .target(Target::ValueAtMost(0.0))
                .note(format!(
                    "checked after every round: each row's counter and version moved by the successes counted \
                     for it ({repo_ok} repo, {raw_ok} raw successes over {} rounds)",
                    env.rounds()
                )),
        );
    }
    report.note(
        "updates: Repo::update tells StaleVersion from NotFound in the UPDATE's own round trip (a CTE whose \
         subquery reads the row's version only on a miss); the raw loop counts a miss as stale without reading",
    );
    db.close().await.ok();
    Ok(())
}
