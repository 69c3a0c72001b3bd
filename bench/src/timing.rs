//! The cost of query timing (issue 14): the repository's `find_by_id` on `users`, 8 tasks on a pool of 8,
//! with the timing hook on (a connection whose `entity::Executor::observer` is the service's `QueryMetrics`,
//! as the service's `Db` has) and off (the plain `DatabaseConnection`, which times nothing). Both send the
//! same statement straight to sqlx's pool and share that pool; they alternate within each round. Target: the
//! timed path at most 1.03× the time per read, i.e. at least 1/1.03 of the reads per second.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use entity::repo::RepoExt;
use entity::{Ctx, Direct, Executor, Observer, Op, users};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement};
use service::metrics::queries::QueryMetrics;
use uuid::Uuid;

use crate::db;
use crate::part::Env;
use crate::report::{Figure, Report, Target};
use crate::rounds::{self, Window};

/// Tasks, and connections in the pool.
const TASKS: usize = 8;

/// A `DatabaseConnection` whose repository statements are timed into `queries`, as on the service's `Db`.
#[derive(Clone)]
struct Timed {
    db: DatabaseConnection,
    queries: Arc<QueryMetrics>,
}

#[async_trait::async_trait]
impl ConnectionTrait for Timed {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.db.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.db.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.db.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

impl Executor for Timed {
    async fn direct(&self, op: Op) -> Result<Option<Direct<'_>>, DbErr> {
        self.db.direct(op).await
    }

    fn observer(&self) -> Option<&dyn Observer> {
        Some(&*self.queries)
    }
}

async fn read<C: Executor>(db: &C, business: Uuid, id: Uuid) -> anyhow::Result<bool> {
    Ok(users::Entity::repo(db, Ctx::new().business(business))?
        .find_by_id(id)
        .await?
        .map(std::hint::black_box)
        .is_some())
}

/// One window of reads, timed when `timed` is given.
async fn measure(
    timed: Option<Timed>,
    db: &DatabaseConnection,
    ids: &Arc<Vec<(Uuid, Uuid)>>,
    env: &Env<'_>,
) -> anyhow::Result<Window> {
    let shared = Arc::new((timed, db.clone(), ids.clone()));
    rounds::closed_loop(TASKS, env.warmup(), env.window(), move |_, x| {
        let shared = shared.clone();
        async move {
            let (timed, db, ids) = &*shared;
            let (id, business) = ids[(x % ids.len() as u64) as usize];
            let found = match timed {
                Some(t) => read(t, business, id).await?,
                None => read(db, business, id).await?,
            };
            if !found {
                bail!("no row for live user {id}");
            }
            Ok(1)
        }
    })
    .await
}

/// Runs the comparison and adds its figure.
///
/// # Errors
/// Database errors or a read that finds no row.
pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let data = env.data(report).await?;
    eprintln!("collex-bench: query timing, {TASKS} tasks, pool {TASKS}");
    let ids: Arc<Vec<(Uuid, Uuid)>> = Arc::new(
        (1..=db::USERS - db::DELETED)
            .map(|i| (db::user_id(i), db::business_id(i)))
            .collect(),
    );
    let db = db::connect(&data.url, TASKS as u32).await?;
    // The slow-query log off: on a loaded machine a read crossing 200 ms would add a log line to one side.
    let queries = Arc::new(QueryMetrics::new(Duration::ZERO));
    let timed = Timed {
        db: db.clone(),
        queries: queries.clone(),
    };
    let r = rounds::alternate(env.rounds(), 2, |k, _| {
        let timed = (k == 0).then(|| timed.clone());
        measure(timed, &db, &ids, env)
    })
    .await?;
    db.close().await.ok();
    let timed_reads: u64 = queries.counts().iter().sum();
    report.add(
        Figure::from_rounds(
            "timing",
            format!("entity repo find_by_id with query timing, {TASKS} tasks"),
            &r.of(0, Window::rate),
            "reads/s",
        )
        .against_rounds("the same reads without timing", &r.of(1, Window::rate))
        .target(Target::RatioAtLeast(0.971)) // 1/1.03: at most 1.03x the time per read
        .note(format!(
            "every timed read observed into db_client_operation_duration_seconds ({timed_reads} in all)"
        )),
    );
    Ok(())
}
