//! A seeded random walk of 1,200 operations over 3 businesses, checked against a model after every step:
//! no scope ever reads, changes or deletes another business's rows; once on the repository alone, once through
//! scoped transactions of the application role, where row-level security holds too.

use std::collections::BTreeMap;

use entity::prelude::*;
use entity::{Executor, users};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel};
use uuid::Uuid;

use super::fixtures::{business, user};

#[derive(Clone, Debug, PartialEq)]
struct Expect {
    business: Uuid,
    deleted: bool,
    status: String,
}

async fn actual(db: &DatabaseConnection) -> BTreeMap<Uuid, Expect> {
    Users::find()
        .all(db)
        .await
        .expect("raw read")
        .into_iter()
        .map(|u| {
            (
                u.id,
                Expect {
                    business: u.business_id,
                    deleted: u.deleted_at.is_some(),
                    status: u.status,
                },
            )
        })
        .collect()
}

fn visible(model: &BTreeMap<Uuid, Expect>, id: Uuid, scope: Uuid) -> bool {
    model.get(&id).is_some_and(|e| e.business == scope && !e.deleted)
}

#[tokio::test]
async fn random_operations_never_cross_business_scopes_on_postgres() {
    let (_guard, db) = collex_tests::pg_with_entities().await;
    walk(&db, None).await;
}

/// The same walk through scoped transactions ([`Scoped`]) of the application role on the migrated schema:
/// every step is a transaction whose business the row-level security policies enforce too.
#[tokio::test]
async fn random_operations_through_scoped_transactions_never_cross_business_scopes() {
    let test_db = collex_tests::PgTestDb::migrated().await;
    let owner = test_db.connect().await;
    let app = test_db.connect_as_app(4).await;
    walk(&owner, Some(&app)).await;
}

/// 1,200 seeded steps over 3 businesses; each step runs on `db` directly, or, with `app`, in a scoped
/// transaction of `app`. `db` also reads the whole table to compare with the model.
async fn walk(db: &DatabaseConnection, app: Option<&DatabaseConnection>) {
    let mut businesses = Vec::new();
    for slug in ["a", "b", "c"] {
        businesses.push(business(db, slug).await.id);
    }
    let seed = std::env::var("SCOPE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_127);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<Uuid, Expect> = BTreeMap::new();
    let mut next_phone = 0u32;

    for step in 0..1200 {
        let scope = businesses[rng.random_range(0..3)];
        let ids: Vec<Uuid> = model.keys().copied().collect();
        let target = if ids.is_empty() {
            Uuid::now_v7()
        } else {
            ids[rng.random_range(0..ids.len())]
        };
        let op = if model.len() < 6 {
            0
        } else {
            rng.random_range(0..8)
        };
        let chosen: Vec<Uuid> = if op == 7 {
            ids.iter().copied().filter(|_| rng.random_bool(0.5)).collect()
        } else {
            Vec::new()
        };
        let ctx = format!("seed {seed} step {step} op {op} scope {scope} target {target}");
        let cx = Ctx::new().business(scope);
        let mut s = Step {
            db,
            model: &mut model,
            next_phone: &mut next_phone,
            scope,
            target,
            step,
            ctx: &ctx,
        };
        match app {
            None => s.run(&Users::repo(db, cx).expect("repo"), op, chosen).await,
            Some(app) => {
                let tx = Scoped::begin(app, cx).await.expect(&ctx);
                s.run(&tx.repo::<Users>().expect("repo"), op, chosen).await;
                tx.commit().await.expect(&ctx);
            }
        }
        if step % 50 == 49 {
            assert_eq!(actual(db).await, model, "state diverged by {ctx}");
        }
    }
    assert_eq!(actual(db).await, model);
}

/// One step of the walk.
struct Step<'a> {
    db: &'a DatabaseConnection,
    model: &'a mut BTreeMap<Uuid, Expect>,
    next_phone: &'a mut u32,
    scope: Uuid,
    target: Uuid,
    step: usize,
    ctx: &'a str,
}

impl Step<'_> {
    async fn run<C: Executor>(&mut self, repo: &Repo<'_, Users, C>, op: u32, chosen: Vec<Uuid>) {
        let (scope, target, step, ctx) = (self.scope, self.target, self.step, self.ctx);
        let model = &mut *self.model;
        match op {
            0 => {
                *self.next_phone += 1;
                let u = repo.insert(user(*self.next_phone)).await.expect(ctx);
                assert_eq!(u.business_id, scope, "{ctx}");
                model.insert(
                    u.id,
                    Expect {
                        business: scope,
                        deleted: false,
                        status: u.status,
                    },
                );
            }
            1 => {
                let found = repo.find_by_id(target).await.expect(ctx);
                assert_eq!(found.is_some(), visible(model, target, scope), "{ctx}");
            }
            2 => {
                let mut listed: Vec<Uuid> = repo.list().await.expect(ctx).into_iter().map(|u| u.id).collect();
                listed.sort();
                let expected: Vec<Uuid> = model
                    .iter()
                    .filter(|(id, _)| visible(model, **id, scope))
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(listed, expected, "{ctx}");
            }
            3 => {
                // The caller holds a row it read somewhere (possibly another business) and writes it back.
                let all = Users::repo(self.db, Ctx::new().all_businesses())
                    .expect("repo")
                    .with_deleted();
                let Some(row) = all.find_by_id(target).await.expect(ctx) else {
                    return;
                };
                let status = format!("s{step}");
                let mut am = row.into_active_model();
                am.status = Set(status.clone());
                let res = repo.update(am).await;
                if visible(model, target, scope) {
                    res.expect(ctx);
                    if let Some(e) = model.get_mut(&target) {
                        e.status = status;
                    }
                } else {
                    assert!(matches!(res, Err(EntityError::NotFound { .. })), "{ctx}: {res:?}");
                }
            }
            4 => {
                let res = repo.soft_delete(target).await;
                if visible(model, target, scope) {
                    res.expect(ctx);
                    if let Some(e) = model.get_mut(&target) {
                        e.deleted = true;
                    }
                } else {
                    assert!(matches!(res, Err(EntityError::NotFound { .. })), "{ctx}: {res:?}");
                }
            }
            5 => {
                let res = repo.restore(target).await;
                let deleted_here = model
                    .get(&target)
                    .is_some_and(|e| e.business == scope && e.deleted);
                if deleted_here {
                    res.expect(ctx);
                    if let Some(e) = model.get_mut(&target) {
                        e.deleted = false;
                    }
                } else {
                    assert!(matches!(res, Err(EntityError::NotFound { .. })), "{ctx}: {res:?}");
                }
            }
            6 => {
                let res = repo.force_delete(target).await;
                if model.get(&target).is_some_and(|e| e.business == scope) {
                    res.expect(ctx);
                    model.remove(&target);
                } else {
                    assert!(matches!(res, Err(EntityError::NotFound { .. })), "{ctx}: {res:?}");
                }
            }
            _ => {
                let status = format!("bulk{step}");
                // Filter on ids from every business: only the scope's live ones may change.
                let n = repo
                    .update_many()
                    .col_expr(
                        users::Column::Status,
                        sea_orm::sea_query::Expr::val(status.clone()),
                    )
                    .filter(users::Column::Id.is_in(chosen.clone()))
                    .exec()
                    .await
                    .expect(ctx);
                let mut expected = 0;
                for id in chosen {
                    if visible(model, id, scope) {
                        expected += 1;
                        if let Some(e) = model.get_mut(&id) {
                            e.status = status.clone();
                        }
                    }
                }
                assert_eq!(n, expected, "{ctx}");
            }
        }
    }
}
