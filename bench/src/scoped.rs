//! Scoped transactions: a read in `entity::Scoped` (`BEGIN`, one `SELECT set_config(..)` for the business,
//! the actor and the all-businesses switch, the repository's `find_by_id`, `COMMIT`) against the plain
//! repository `find_by_id` on the same pool. The difference is the price of having PostgreSQL's row-level
//! security confine a request: three more round trips, paid once per transaction (the README's guidance:
//! one scoped transaction per request, not per statement). The bench connects as the database owner, a
//! superuser the policies do not hold, so the figure is the round trips alone; the policy predicate itself uses
//! the `business_id` index (issue 18 measured no difference per point lookup).

use std::sync::Arc;

use anyhow::bail;
use entity::repo::RepoExt;
use entity::{Ctx, Scoped, users};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::db;
use crate::part::Env;
use crate::report::{Figure, Report};
use crate::rounds::{self, Window};

/// 8 tasks on 8 connections, as the reads part's main case.
const TASKS: usize = 8;

async fn read_once(scoped: bool, db: &DatabaseConnection, business: Uuid, id: Uuid) -> anyhow::Result<bool> {
    let cx = Ctx::new().business(business);
    Ok(if scoped {
        let tx = Scoped::begin(db, cx).await?;
        let found = tx.repo::<users::Entity>()?.find_by_id(id).await?.is_some();
        tx.commit().await?;
        found
    } else {
        users::Entity::repo(db, cx)?.find_by_id(id).await?.is_some()
    })
}

async fn measure(
    scoped: bool,
    db: &DatabaseConnection,
    ids: &Arc<Vec<(Uuid, Uuid)>>,
    env: &Env<'_>,
) -> anyhow::Result<Window> {
    let shared = Arc::new((db.clone(), ids.clone()));
    rounds::closed_loop(TASKS, env.warmup(), env.window(), move |_, x| {
        let shared = shared.clone();
        async move {
            let (db, ids) = &*shared;
            let (id, business) = ids[(x % ids.len() as u64) as usize];
            if !read_once(scoped, db, business, id).await? {
                bail!("no row for live user {id} (scoped: {scoped})");
            }
            Ok(1)
        }
    })
    .await
}

/// Runs the scoped-transaction read against the plain repository read and adds the figures.
///
/// # Errors
/// Database errors, or a read that finds no row.
pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let data = env.data(report).await?;
    let ids: Arc<Vec<(Uuid, Uuid)>> = Arc::new(
        (1..=db::USERS - db::DELETED)
            .map(|i| (db::user_id(i), db::business_id(i)))
            .collect(),
    );
    eprintln!("collex-bench: scoped, {TASKS} tasks, pool {TASKS}");
    let db = db::connect(&data.url, TASKS as u32).await?;
    let r = rounds::alternate(env.rounds(), 2, |k, _| measure(k == 1, &db, &ids, env)).await?;
    db.close().await.ok();
    let [plain, scoped] = [0, 1].map(|k| r.of(k, Window::rate));
    let [plain_cpu, scoped_cpu] = [0, 1].map(|k| r.of(k, Window::cpu_us_per_op));
    report.add(
        Figure::from_rounds(
            "scoped",
            format!("Scoped::begin + find_by_id + commit, {TASKS} tasks"),
            &scoped,
            "reads/s",
        )
        .against_rounds("entity repo find_by_id, same pool", &plain),
    );
    report.add(
        Figure::from_rounds(
            "scoped",
            format!("client CPU per read, scoped transaction, {TASKS} tasks"),
            &scoped_cpu,
            "us",
        )
        .against_rounds("entity repo find_by_id", &plain_cpu),
    );
    Ok(())
}
