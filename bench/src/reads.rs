//! Pooled reads: the entity crate's scoped, soft-delete-filtered `find_by_id` on `users` against the same SQL
//! through raw sqlx on the same pool, plain SeaORM `find_by_id` with a hand-written filter, and pgbench; and
//! the repository's cached lookup by an indexed column (`list_by` phone number, limit 10) against the same
//! SQL through raw sqlx.
//!
//! The Rust paths share one `PgPool` (SeaORM's own, taken with `get_postgres_connection_pool`), so pool
//! size and settings are identical by construction; they alternate within each round so drift on a shared
//! machine spreads evenly.

use std::sync::Arc;

use anyhow::bail;
use entity::repo::RepoExt;
use entity::{Ctx, users};
use sea_orm::sqlx::{self, PgPool, Row as _};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::db::{self, Data};
use crate::part::Env;
use crate::report::{Figure, Report, Target};
use crate::rounds::{self, Window};
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
    /// `users::Entity::repo(..)?.list_by(users::Column::PhoneNumber, phone, 10)`.
    RepoListBy,
    /// The SQL `list_by` sends, through `sqlx::query` on the same pool, every row decoded by name.
    RawListBy,
}

impl ReadPath {
    const ALL: [ReadPath; 3] = [ReadPath::Repo, ReadPath::Raw, ReadPath::Plain];
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
        ReadPath::Plain => users::Entity::find_by_id(id)
            .filter(users::Column::BusinessId.eq(business))
            .filter(users::Column::DeletedAt.is_null())
            .one(db)
            .await?
            .map(std::hint::black_box)
            .is_some(),
    })
}

/// One window of `path` with `tasks` concurrent tasks over `db`'s pool: reads done and the bench process's
/// CPU.
async fn measure(
    path: ReadPath,
    tasks: usize,
    db: &DatabaseConnection,
    sql: &'static str,
    ids: &Arc<Vec<(Uuid, Uuid, u32)>>,
    env: &Env<'_>,
) -> anyhow::Result<Window> {
    // One Arc per read (the same for every path): what the spawned tasks share.
    let shared = Arc::new((db.clone(), db.get_postgres_connection_pool().clone(), ids.clone()));
    rounds::closed_loop(tasks, env.warmup(), env.window(), move |_, x| {
        let shared = shared.clone();
        async move {
            let (db, pool, ids) = &*shared;
            let (id, business, i) = ids[(x % ids.len() as u64) as usize];
            if !read_once(path, db, pool, sql, business, (id, i)).await? {
                bail!("{path:?} found no row for live user {id}");
            }
            Ok(1)
        }
    })
    .await
}

/// Runs the read benchmark and adds its figures.
///
/// # Errors
/// Database errors, a read that finds no row, or pgbench failing.
pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let (args, tools) = (env.args, env.tools);
    let data = env.data(report).await?;
    let (sql, n_values) = repo_sql(&data.db)?;
    if n_values != 3 {
        bail!(
            "expected the repo's find-by-id to bind 3 values (business, id, limit), it binds {n_values}: {sql}"
        );
    }
    report.note(format!("reads: the repo's SQL, also sent by raw sqlx: {sql}"));
    report.note(format!("reads: schema from {}", data.schema_source));
    report.note(
        "reads, updates: every side connects as the URL's user (postgres, a superuser, by default), which \
         bypasses row-level security (migration 005): the policies' cost is in none of these figures",
    );
    let sql: &'static str = Box::leak(sql.into_boxed_str());
    let ids: Arc<Vec<(Uuid, Uuid, u32)>> = Arc::new(
        (1..=db::USERS - db::DELETED)
            .map(|i| (db::user_id(i), db::business_id(i), i))
            .collect(),
    );
    let script = pgbench_script(sql)?;

    // (tasks, pool size): pool = tasks like pgbench's clients; the last case is the 32-task investigation.
    let cases = args.read_cases()?;
    // The A/A case: raw sqlx measured twice per round, in two slots of the rotation. The spread of its ratio
    // is the noise floor of this run: a difference inside it cannot be told from noise.
    let a_a = if cases.contains(&(8, 8)) {
        Some((8, 8))
    } else {
        cases.first().copied()
    };
    for (tasks, pool_size) in cases {
        eprintln!("collex-bench: reads, {tasks} tasks, pool {pool_size}");
        let db = db::connect(&data.url, pool_size).await?;
        let calibrate = a_a == Some((tasks, pool_size));
        let mut paths = ReadPath::ALL.to_vec();
        if calibrate {
            paths.push(ReadPath::Raw);
        }
        let paths = &paths;
        let r = rounds::alternate(env.rounds(), paths.len(), |k, _| {
            measure(paths[k], tasks, &db, sql, &ids, env)
        })
        .await?;
        db.close().await.ok();
        let [repo, raw, plain] = [0, 1, 2].map(|k| r.of(k, Window::rate));
        let [repo_cpu, raw_cpu, plain_cpu] = [0, 1, 2].map(|k| r.of(k, Window::cpu_us_per_op));
        let label = if tasks as u32 == pool_size {
            format!("{tasks} tasks")
        } else {
            format!("{tasks} tasks, pool {pool_size}")
        };
        let pgbench = if tasks as u32 == pool_size {
            pgbench_pair(tools, &data.url, tasks, &script, env).await
        } else {
            None
        };
        let same = "raw sqlx, same SQL and pool";
        report.add(
            Figure::from_rounds(
                "reads",
                format!("entity repo find_by_id, {label}"),
                &repo,
                "reads/s",
            )
            .against_rounds(same, &raw)
            .target(Target::RatioAtLeast(1.0)),
        );
        report.add(
            Figure::from_rounds(
                "reads",
                format!("plain SeaORM find_by_id + filter, {label}"),
                &plain,
                "reads/s",
            )
            .against_rounds(same, &raw),
        );
        report.add(
            Figure::from_rounds(
                "reads",
                format!("client CPU per read, entity repo, {label}"),
                &repo_cpu,
                "us",
            )
            .against_rounds("raw sqlx", &raw_cpu),
        );
        report.add(
            Figure::from_rounds(
                "reads",
                format!("client CPU per read, plain SeaORM, {label}"),
                &plain_cpu,
                "us",
            )
            .against_rounds("raw sqlx", &raw_cpu),
        );
        if tasks as u32 != pool_size {
            continue;
        }
        if calibrate {
            report.add(
                Figure::from_rounds(
                    "reads",
                    format!("A/A: raw sqlx against itself (the noise floor), {label}"),
                    &r.of(3, Window::rate),
                    "reads/s",
                )
                .against_rounds(same, &raw)
                .note(
                    "the same path measured twice per round in two slots of the rotation: its ratio's spread \
                     is how far two identical paths drift apart in this run",
                ),
            );
            report.add(
                Figure::from_rounds(
                    "reads",
                    format!("A/A: client CPU per read, raw sqlx against itself, {label}"),
                    &r.of(3, Window::cpu_us_per_op),
                    "us",
                )
                .against_rounds("raw sqlx", &raw_cpu),
            );
        }
        match pgbench {
            Some(Ok(p)) => {
                for (name, v) in [("entity repo", &repo), ("raw sqlx", &raw)] {
                    report.add(
                        Figure::from_rounds("reads", format!("{name}, {label}"), v, "reads/s")
                            .against_unpaired(format!("pgbench -S -M prepared -c {tasks}"), &p.builtin),
                    );
                }
                report.add(
                    Figure::from_rounds("reads", format!("entity repo, {label}"), &repo, "reads/s")
                        .against_unpaired(
                            format!("pgbench -M prepared, same SELECT script, -c {tasks}"),
                            &p.same,
                        ),
                );
                report.add(
                    Figure::from_rounds(
                        "reads",
                        format!("client CPU per read, pgbench same SELECT script, {label}"),
                        &p.same_cpu,
                        "us",
                    )
                    .against_unpaired("raw sqlx", &raw_cpu)
                    .note(
                        "pgbench's own CPU (getrusage of the waited-for child), connection set-up included",
                    ),
                );
            }
            Some(Err(e)) => report.add(Figure::missing(
                "reads",
                format!("pgbench, {label}"),
                format!("{e:#}"),
            )),
            None if tasks as u32 == pool_size => report.add(Figure::missing(
                "reads",
                format!("pgbench -S, {label}"),
                "pgbench missing",
            )),
            None => {}
        }
    }
    report.note(
        "reads: pgbench runs with -j min(clients, 2) -n -T window; its same-SELECT script computes the ids \
         with md5() server-side (two md5 calls per query), as the client derives them",
    );
    list_by(env, data, &ids, report).await
}

/// The cached lookup by an indexed column: `list_by` phone number (limit 10) against its SQL in raw sqlx, at
/// 8 tasks on 8 connections, alternating within each round.
async fn list_by(
    env: &Env<'_>,
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
    let r = rounds::alternate(env.rounds(), paths.len(), |k, _| {
        measure(paths[k], 8, &db, sql, ids, env)
    })
    .await?;
    db.close().await.ok();
    let [repo, raw] = [0, 1].map(|k| r.of(k, Window::rate));
    let [repo_cpu, raw_cpu] = [0, 1].map(|k| r.of(k, Window::cpu_us_per_op));
    report.add(
        Figure::from_rounds(
            "reads",
            "entity repo list_by phone (limit 10), 8 tasks",
            &repo,
            "reads/s",
        )
        .against_rounds("raw sqlx, same SQL and pool", &raw)
        .target(Target::RatioAtLeast(0.95)),
    );
    report.add(
        Figure::from_rounds(
            "reads",
            "client CPU per read, entity repo list_by, 8 tasks",
            &repo_cpu,
            "us",
        )
        .against_rounds("raw sqlx", &raw_cpu),
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

/// pgbench's figures over the rounds: `-S` and the same-SELECT script's reads per second, and the script's
/// CPU per read.
struct Pgbench {
    builtin: Vec<f64>,
    same: Vec<f64>,
    same_cpu: Vec<f64>,
}

/// Rounds of pgbench per case, at most: a ceiling to compare with, not a target, so fewer rounds suffice.
const PGBENCH_ROUNDS: usize = 3;

async fn pgbench_pair(
    tools: &Tools,
    url: &str,
    clients: usize,
    script: &std::path::Path,
    env: &Env<'_>,
) -> Option<anyhow::Result<Pgbench>> {
    let pgbench = tools.pgbench.as_ref()?;
    let seconds = env.args.whole_seconds();
    let common = vec![
        "-n".to_owned(),
        "-M".into(),
        "prepared".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        clients.min(2).to_string(),
        "-T".into(),
        seconds.to_string(),
    ];
    let run = async {
        let mut p = Pgbench {
            builtin: Vec::new(),
            same: Vec::new(),
            same_cpu: Vec::new(),
        };
        for _ in 0..env.rounds().min(PGBENCH_ROUNDS) {
            let mut a = common.clone();
            a.push("-S".into());
            p.builtin.push(tools::pgbench(pgbench, &a, url).await?);
            let mut a = common.clone();
            a.push("-f".into());
            a.push(script.display().to_string());
            let cpu0 = rounds::children_cpu_s();
            let tps = tools::pgbench(pgbench, &a, url).await?;
            let cpu = rounds::children_cpu_s() - cpu0;
            p.same.push(tps);
            p.same_cpu.push(cpu * 1e6 / (tps * seconds as f64).max(1.0));
        }
        anyhow::Ok(p)
    };
    Some(run.await)
}
