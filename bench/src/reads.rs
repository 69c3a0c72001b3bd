//! Pooled reads: the entity crate's scoped, soft-delete-filtered `find_by_id` on `users` against the same SQL
//! through raw sqlx on the same pool, plain SeaORM `find_by_id` with a hand-written filter, and pgbench; and
//! the repository's cached lookup by an indexed column (`list_by` phone number, limit 10) against the same
//! SQL through raw sqlx.
//!
//! The three Rust paths share one `PgPool` (SeaORM's own, taken with `get_postgres_connection_pool`), so pool
//! size and settings are identical by construction; they alternate within each round so drift on a shared
//! machine spreads evenly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use entity::repo::RepoExt;
use entity::{Ctx, users};
use sea_orm::sqlx::{self, PgPool, Row as _};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    Statement,
};
use uuid::Uuid;

use crate::RunArgs;
use crate::db::{self, Data};
use crate::report::{Figure, Report, Target};
use crate::tools::{self, Tools};

/// The three Rust read paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPath {
    /// `users::Entity::repo(&db, Ctx::new().business(b))?.find_by_id(id)`.
    Repo,
    /// The SQL the repo sends, through `sqlx::query` on the same pool, decoded column by column.
    Raw,
    /// `users::Entity::find_by_id(id)` plus `business_id = b AND deleted_at IS NULL` written by hand.
    Plain,
    /// Investigation: the repo's SQL built once, run through SeaORM's `query_one_raw` and decoded by
    /// `FromQueryResult`, i.e. SeaORM without sea-query building the statement on every call.
    Prebuilt,
    /// `users::Entity::repo(..)?.list_by(users::Column::PhoneNumber, phone, 10)`.
    RepoListBy,
    /// The SQL `list_by` sends, through `sqlx::query` on the same pool, every row decoded by name.
    RawListBy,
}

impl ReadPath {
    const ALL: [ReadPath; 4] = [ReadPath::Repo, ReadPath::Raw, ReadPath::Plain, ReadPath::Prebuilt];
}

/// What raw sqlx decodes: every column of `users`, by name, as SeaORM's `FromQueryResult` does.
#[allow(dead_code)] // Held only so the decoding work is done and kept.
#[derive(Debug)]
struct RawUser {
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
    created_by: Option<Uuid>,
    updated_by: Option<Uuid>,
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    business_id: Uuid,
    version: i32,
    phone_number: String,
    email: Option<String>,
    display_name: Option<String>,
    status: String,
}

impl RawUser {
    fn decode(r: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.try_get("id")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            created_by: r.try_get("created_by")?,
            updated_by: r.try_get("updated_by")?,
            deleted_at: r.try_get("deleted_at")?,
            business_id: r.try_get("business_id")?,
            version: r.try_get("version")?,
            phone_number: r.try_get("phone_number")?,
            email: r.try_get("email")?,
            display_name: r.try_get("display_name")?,
            status: r.try_get("status")?,
        })
    }
}

/// The SQL the repository sends for one find-by-id: `(sql, number of bound values)`.
fn repo_sql(db: &DatabaseConnection) -> anyhow::Result<(String, usize)> {
    let repo = users::Entity::repo(db, Ctx::new().business(db::business_id(1)))?;
    let stmt = repo
        .find()
        .filter(users::Column::Id.eq(db::user_id(1)))
        .limit(1)
        .statement();
    let n = stmt.values.as_ref().map_or(0, |v| v.0.len());
    Ok((stmt.sql, n))
}

/// The SQL the repository sends for `list_by(PhoneNumber, _, 10)`: `(sql, number of bound values)`.
fn list_by_sql(db: &DatabaseConnection) -> anyhow::Result<(String, usize)> {
    let repo = users::Entity::repo(db, Ctx::new().business(db::business_id(1)))?;
    let stmt = repo
        .find()
        .filter(users::Column::PhoneNumber.eq(db::phone(1)))
        .order_by_asc(users::Column::Id)
        .limit(10)
        .statement();
    let n = stmt.values.as_ref().map_or(0, |v| v.0.len());
    Ok((stmt.sql, n))
}

async fn read_once(
    path: ReadPath,
    db: &DatabaseConnection,
    pool: &PgPool,
    sql: &'static str,
    business: Uuid,
    (id, i): (Uuid, u32),
) -> anyhow::Result<bool> {
    Ok(match path {
        ReadPath::RepoListBy => !users::Entity::repo(db, Ctx::new().business(business))?
            .list_by(users::Column::PhoneNumber, db::phone(i), 10)
            .await?
            .is_empty(),
        ReadPath::RawListBy => !sqlx::query(sql)
            .bind(business)
            .bind(db::phone(i))
            .bind(10i64)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| RawUser::decode(row).map(std::hint::black_box))
            .collect::<Result<Vec<_>, _>>()?
            .is_empty(),
        ReadPath::Repo => users::Entity::repo(db, Ctx::new().business(business))?
            .find_by_id(id)
            .await?
            .map(std::hint::black_box)
            .is_some(),
        ReadPath::Raw => sqlx::query(sql)
            .bind(business)
            .bind(id)
            .bind(1i64)
            .fetch_optional(pool)
            .await?
            .map(|row| RawUser::decode(&row).map(std::hint::black_box))
            .transpose()?
            .is_some(),
        ReadPath::Prebuilt => db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [business.into(), id.into(), 1u64.into()],
            ))
            .await?
            .map(|row| users::Model::from_query_result(&row, ""))
            .transpose()?
            .map(std::hint::black_box)
            .is_some(),
        ReadPath::Plain => users::Entity::find_by_id(id)
            .filter(users::Column::BusinessId.eq(business))
            .filter(users::Column::DeletedAt.is_null())
            .one(db)
            .await?
            .map(std::hint::black_box)
            .is_some(),
    })
}

/// CPU time this process has used (user + system), from `/proc/self/stat`, in seconds.
fn process_cpu_s() -> f64 {
    // Fields 14 and 15 (utime, stime) in clock ticks; Linux's USER_HZ is 100 on every common build.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // After the `)`, field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// One measured window: reads per second and the client's CPU microseconds per read.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    cpu_us: f64,
}

/// Reads per second of `path` with `tasks` concurrent tasks over `db`'s pool, during `window`.
async fn measure(
    path: ReadPath,
    tasks: usize,
    db: &DatabaseConnection,
    sql: &'static str,
    ids: &Arc<Vec<(Uuid, Uuid, u32)>>,
    window: Duration,
) -> anyhow::Result<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (stop, done, ids, db) = (stop.clone(), done.clone(), ids.clone(), db.clone());
        handles.push(tokio::spawn(async move {
            let pool = db.get_postgres_connection_pool().clone();
            // xorshift: the same cheap id choice for every path.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x2545_F491_4F6C_DD1D);
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (id, business, i) = ids[(x % ids.len() as u64) as usize];
                if !read_once(path, &db, &pool, sql, business, (id, i)).await? {
                    bail!("{path:?} found no row for live user {id}");
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (start_count, start, cpu0) = (done.load(Ordering::Relaxed), Instant::now(), process_cpu_s());
    tokio::time::sleep(window).await;
    let (end_count, elapsed, cpu1) = (done.load(Ordering::Relaxed), start.elapsed(), process_cpu_s());
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.context("read task panicked")??;
    }
    let n = (end_count - start_count) as f64;
    Ok(Sample {
        rate: n / elapsed.as_secs_f64(),
        cpu_us: (cpu1 - cpu0) * 1e6 / n.max(1.0),
    })
}

/// Runs the read benchmark and adds its figures.
///
/// # Errors
/// Database errors, a read that finds no row, or pgbench failing.
pub async fn run(args: &RunArgs, tools: &Tools, data: &Data, report: &mut Report) -> anyhow::Result<()> {
    let (sql, n_values) = repo_sql(&data.db)?;
    if n_values != 3 {
        bail!(
            "expected the repo's find-by-id to bind 3 values (business, id, limit), it binds {n_values}: {sql}"
        );
    }
    report.note(format!("reads: the repo's SQL, also sent by raw sqlx: {sql}"));
    report.note(format!("reads: schema from {}", data.schema_source));
    let sql: &'static str = Box::leak(sql.into_boxed_str());
    let ids: Arc<Vec<(Uuid, Uuid, u32)>> = Arc::new(
        (1..=db::USERS - db::DELETED)
            .map(|i| (db::user_id(i), db::business_id(i), i))
            .collect(),
    );
    let script = pgbench_script(sql)?;

    // (tasks, pool size): pool = tasks like pgbench's clients; the last case is the 32-task investigation.
    let mut cases = Vec::new();
    for case in &args.read_cases {
        let parsed = case
            .split_once(':')
            .and_then(|(t, p)| Some((t.trim().parse::<usize>().ok()?, p.trim().parse::<u32>().ok()?)))
            .filter(|(t, p)| *t > 0 && *p > 0);
        match parsed {
            Some(c) => cases.push(c),
            None => bail!("--read-cases: expected TASKS:POOL with positive integers, got {case:?}"),
        }
    }
    for (tasks, pool_size) in cases {
        eprintln!("collex-bench: reads, {tasks} tasks, pool {pool_size}");
        let db = db::connect(&data.url, pool_size).await?;
        let mut samples: [Vec<f64>; 4] = Default::default();
        let mut cpu: [Vec<f64>; 4] = Default::default();
        for round in 0..args.rounds as usize {
            for k in 0..ReadPath::ALL.len() {
                let i = (k + round) % ReadPath::ALL.len();
                let s = measure(ReadPath::ALL[i], tasks, &db, sql, &ids, args.window()).await?;
                samples[i].push(s.rate);
                cpu[i].push(s.cpu_us);
            }
        }
        db.close().await.ok();
        let [repo, raw, plain, prebuilt] = samples.map(tools::median);
        let [repo_cpu, raw_cpu, plain_cpu, prebuilt_cpu] = cpu.map(tools::median);
        let label = if tasks as u32 == pool_size {
            format!("{tasks} tasks")
        } else {
            format!("{tasks} tasks, pool {pool_size}")
        };
        let (builtin, same_select) = if tasks as u32 == pool_size {
            pgbench_pair(tools, &data.url, tasks, &script, args).await
        } else {
            (None, None)
        };
        let mut repo_fig = Figure::new(
            "reads",
            format!("entity repo find_by_id, {label}"),
            repo,
            "reads/s",
        )
        .against("raw sqlx, same SQL and pool", Some(raw));
        if tasks as u32 == pool_size {
            repo_fig = repo_fig.target(Target::RatioAtLeast(0.95));
        }
        report.add(repo_fig);
        report.add(
            Figure::new(
                "reads",
                format!("plain SeaORM find_by_id + filter, {label}"),
                plain,
                "reads/s",
            )
            .against("raw sqlx, same SQL and pool", Some(raw)),
        );
        report.add(
            Figure::new(
                "reads",
                format!("SeaORM, SQL built once (prototype), {label}"),
                prebuilt,
                "reads/s",
            )
            .against("raw sqlx, same SQL and pool", Some(raw)),
        );
        report.add(
            Figure::new(
                "reads",
                format!("client CPU per read, entity repo, {label}"),
                repo_cpu,
                "us",
            )
            .against("raw sqlx", Some(raw_cpu)),
        );
        report.add(
            Figure::new(
                "reads",
                format!("client CPU per read, plain SeaORM, {label}"),
                plain_cpu,
                "us",
            )
            .against("raw sqlx", Some(raw_cpu)),
        );
        report.add(
            Figure::new(
                "reads",
                format!("client CPU per read, SQL built once, {label}"),
                prebuilt_cpu,
                "us",
            )
            .against("raw sqlx", Some(raw_cpu)),
        );
        if tasks as u32 != pool_size {
            continue;
        }
        match builtin {
            Some(Ok(tps)) => {
                for (name, v) in [("entity repo", repo), ("raw sqlx", raw)] {
                    report.add(
                        Figure::new("reads", format!("{name}, {label}"), v, "reads/s")
                            .against(format!("pgbench -S -M prepared -c {tasks}"), Some(tps)),
                    );
                }
            }
            Some(Err(e)) => report.add(Figure::missing(
                "reads",
                format!("pgbench -S, {label}"),
                format!("{e:#}"),
            )),
            None => report.add(Figure::missing(
                "reads",
                format!("pgbench -S, {label}"),
                "pgbench missing",
            )),
        }
        match same_select {
            Some(Ok(tps)) => report.add(
                Figure::new("reads", format!("entity repo, {label}"), repo, "reads/s").against(
                    format!("pgbench -M prepared, same SELECT script, -c {tasks}"),
                    Some(tps),
                ),
            ),
            Some(Err(e)) => report.add(Figure::missing(
                "reads",
                format!("pgbench same-SELECT script, {label}"),
                format!("{e:#}"),
            )),
            None => {}
        }
    }
    report.note(
        "reads: pgbench runs with -j min(clients, 2) -n -T window; its same-SELECT script computes the ids \
         with md5() server-side (two md5 calls per query), as the client derives them",
    );
    list_by(args, data, &ids, report).await
}

/// The cached lookup by an indexed column: `list_by` phone number (limit 10) against its SQL in raw sqlx, at
/// 8 tasks on 8 connections, alternating within each round.
async fn list_by(
    args: &RunArgs,
    data: &Data,
    ids: &Arc<Vec<(Uuid, Uuid, u32)>>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (sql, n_values) = list_by_sql(&data.db)?;
    if n_values != 3 {
        bail!("expected list_by to bind 3 values (business, phone, limit), it binds {n_values}: {sql}");
    }
    report.note(format!("reads: list_by's SQL, also sent by raw sqlx: {sql}"));
    let sql: &'static str = Box::leak(sql.into_boxed_str());
    eprintln!("collex-bench: reads, list_by, 8 tasks, pool 8");
    let db = db::connect(&data.url, 8).await?;
    let paths = [ReadPath::RepoListBy, ReadPath::RawListBy];
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    for round in 0..args.rounds as usize {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let s = measure(paths[i], 8, &db, sql, ids, args.window()).await?;
            rates[i].push(s.rate);
            cpu[i].push(s.cpu_us);
        }
    }
    db.close().await.ok();
    let [repo, raw] = rates.map(tools::median);
    let [repo_cpu, raw_cpu] = cpu.map(tools::median);
    report.add(
        Figure::new(
            "reads",
            "entity repo list_by phone (limit 10), 8 tasks",
            repo,
            "reads/s",
        )
        .against("raw sqlx, same SQL and pool", Some(raw))
        .target(Target::RatioAtLeast(0.95)),
    );
    report.add(
        Figure::new(
            "reads",
            "client CPU per read, entity repo list_by, 8 tasks",
            repo_cpu,
            "us",
        )
        .against("raw sqlx", Some(raw_cpu)),
    );
    Ok(())
}

/// The repo's SELECT for pgbench: `$1` (business), `$2` (id), `$3` (limit) from pgbench variables.
fn pgbench_script(sql: &str) -> anyhow::Result<std::path::PathBuf> {
    let select = sql
        .replace("$3", "1")
        .replace("$2", "md5(:i::text)::uuid")
        .replace("$1", "md5('b' || :b)::uuid");
    let text = format!(
        "\\set i random(1, {live})\n\\set b :i % 3\n{select};\n",
        live = db::USERS - db::DELETED
    );
    let dir = crate::work_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("find_by_id.pgbench");
    std::fs::write(&path, text)?;
    Ok(path)
}

type Tps = Option<anyhow::Result<f64>>;

async fn pgbench_pair(
    tools: &Tools,
    url: &str,
    clients: usize,
    script: &std::path::Path,
    args: &RunArgs,
) -> (Tps, Tps) {
    let Some(pgbench) = &tools.pgbench else {
        return (None, None);
    };
    let common = vec![
        "-n".to_owned(),
        "-M".into(),
        "prepared".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        clients.min(2).to_string(),
        "-T".into(),
        args.seconds.max(1).to_string(),
    ];
    let mut builtin = Vec::new();
    let mut same = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let mut a = common.clone();
        a.push("-S".into());
        builtin.push(tools::pgbench(pgbench, &a, url).await);
        let mut a = common.clone();
        a.push("-f".into());
        a.push(script.display().to_string());
        same.push(tools::pgbench(pgbench, &a, url).await);
    }
    let collect = |v: Vec<anyhow::Result<f64>>| -> anyhow::Result<f64> {
        Ok(tools::median(
            v.into_iter().collect::<anyhow::Result<Vec<f64>>>()?,
        ))
    };
    (Some(collect(builtin)), Some(collect(same)))
}
