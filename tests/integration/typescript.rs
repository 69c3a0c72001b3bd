//! The TypeScript contract: `bindings/` compiles under `tsc --strict`, and the JSON the Rust code really
//! produces (rows read back from PostgreSQL through the entity API, health bodies) has exactly the shape the
//! committed bindings promise.
//!
//! The JSON is written as fixtures under `target/tmp/contract/`, then embedded in a generated `contract.ts`
//! as object literals checked with `satisfies <Type>[]`: a missing, extra or renamed field, or a value of the
//! wrong type, is a compile error. `tsc` comes from `bindings/node_modules` (`npm ci` runs when it is
//! missing).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collex_tests::PgTestDb;
use config::{AppConfig, DbConfig, DbTarget};
use entity::prelude::*;
use entity::{
    audit_logs, businesses, permissions, role_permissions, roles, user_activities, user_preferences,
    user_roles, user_sessions, users,
};
use sea_orm::{ActiveValue::Set, DatabaseConnection, IntoActiveModel};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// What to do when the JSON and the committed bindings disagree.
const RUN_MAKE_TYPES: &str = "the JSON the Rust code produces does not match the committed bindings/ (tsc errors above). \
     If you changed a Rust type, run `make types` and commit bindings/.";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bindings() -> PathBuf {
    workspace().join("bindings")
}

/// Serialises the installation of `typescript` into `bindings/node_modules`.
static NPM: Mutex<()> = Mutex::new(());

/// `bindings/node_modules/.bin/tsc`, installed from the lockfile when missing.
///
/// # Panics
/// When node or npm is missing, or `npm ci` fails, with what to do.
fn tsc() -> PathBuf {
    let _guard = NPM.lock().unwrap_or_else(|e| e.into_inner());
    for tool in ["node", "npm"] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!(
                "`{tool}` is not installed: the TypeScript checks of bindings/ need Node.js 20 or newer with npm \
                 (Debian: apt-get install nodejs npm). Install it and run `make test` again."
            );
        }
    }
    let tsc = bindings().join("node_modules").join(".bin").join("tsc");
    if !tsc.exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(bindings())
            .output()
            .expect("run npm ci");
        assert!(
            out.status.success(),
            "`npm ci` in bindings/ failed (it installs the pinned typescript from package-lock.json):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tsc
}

/// Runs `tsc --strict --noEmit -p <project>`; the error output when it fails.
fn run_tsc(project: &Path) -> Result<(), String> {
    let out = Command::new(tsc())
        .args(["--strict", "--noEmit", "--pretty", "false", "-p"])
        .arg(project)
        .current_dir(project.parent().unwrap_or(project))
        .output()
        .expect("run tsc");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn generated_bindings_compile_under_tsc_strict() {
    if let Err(errors) = run_tsc(&bindings().join("tsconfig.json")) {
        panic!("{errors}\nbindings/ does not compile under `tsc --strict`; regenerate it with `make types`.");
    }
}

/// One fixture: the JSON of a list of values and the generated type each must satisfy.
#[derive(Clone)]
struct Fixture {
    name: &'static str,
    ts_type: &'static str,
    json: Value,
}

fn fixture<T: Serialize>(name: &'static str, ts_type: &'static str, rows: &[T]) -> Fixture {
    assert!(
        !rows.is_empty(),
        "fixture {name} is empty: it would check nothing"
    );
    Fixture {
        name,
        ts_type,
        json: serde_json::to_value(rows).expect("serialise fixture"),
    }
}

/// Every type `bindings/index.ts` re-exports, with the module it comes from (`./User.js`).
fn exported_types() -> Vec<(String, String)> {
    let index = std::fs::read_to_string(bindings().join("index.ts")).expect("read bindings/index.ts");
    index
        .lines()
        .filter_map(|l| {
            let (name, from) = l.strip_prefix("export type { ")?.split_once(" } from \"")?;
            Some((name.to_owned(), from.trim_end_matches("\";").to_owned()))
        })
        .collect()
}

/// `roots` and every type their generated files import, transitively: what a check of `roots` also checks.
fn checked_through(roots: &[&str]) -> Vec<String> {
    let exported = exported_types();
    let mut seen: Vec<String> = Vec::new();
    let mut todo: Vec<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let Some((_, module)) = exported.iter().find(|(n, _)| *n == name) else {
            panic!("{name} is not exported by bindings/index.ts: run `make types`");
        };
        let file = bindings()
            .join(module.trim_start_matches("./"))
            .with_extension("ts");
        let text = std::fs::read_to_string(&file).expect("read a generated file");
        for line in text.lines() {
            if let Some(names) = line
                .strip_prefix("import type { ")
                .and_then(|l| l.split_once(" }"))
            {
                todo.extend(names.0.split(", ").map(str::to_owned));
            }
        }
        seen.push(name);
    }
    seen
}

/// Writes each set of fixtures as JSON files and as `<stem>.ts`, which holds every fixture to its type, into
/// `dir`; returns the project that compiles them all.
fn write_contract(dir: &Path, sets: &[(&str, &[Fixture])]) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create contract dir");
    let mut files = Vec::new();
    for (stem, fixtures) in sets {
        let mut types: Vec<&str> = fixtures.iter().map(|f| f.ts_type).collect();
        types.sort_unstable();
        types.dedup();
        let mut ts = String::from(
            "// Generated by tests/integration/typescript.rs: real JSON held to the committed bindings.\n",
        );
        ts.push_str(&format!(
            "import type {{ {} }} from \"@collex/db-types\";\n\n",
            types.join(", ")
        ));
        for f in *fixtures {
            let text = serde_json::to_string_pretty(&f.json).expect("format fixture");
            std::fs::write(dir.join(format!("{stem}.{}.json", f.name)), &text).expect("write fixture");
            ts.push_str(&format!(
                "export const {} = {text} satisfies {}[];\n\n",
                f.name, f.ts_type
            ));
        }
        let file = format!("{stem}.ts");
        std::fs::write(dir.join(&file), ts).expect("write the contract file");
        files.push(file);
    }
    let index = bindings().join("index.ts");
    let tsconfig = json!({
        "compilerOptions": {
            "strict": true,
            "noEmit": true,
            "target": "ES2022",
            "module": "ESNext",
            "moduleResolution": "Bundler",
            "types": [],
            "paths": { "@collex/db-types": [index.to_string_lossy()] }
        },
        "files": files
    });
    let project = dir.join("tsconfig.json");
    let text = serde_json::to_string_pretty(&tsconfig).expect("format tsconfig");
    std::fs::write(&project, text).expect("write tsconfig");
    project
}

/// Rows of every entity, written through the entity API into a migrated PostgreSQL database and read back:
/// each optional column appears both set and `null`, rows are updated and soft-deleted, JSON columns hold
/// nested values.
async fn entity_fixtures(db: &DatabaseConnection) -> Vec<Fixture> {
    let actor = Uuid::now_v7();
    let sys = Ctx::new().actor(actor);
    let biz = Businesses::repo(db, sys)
        .expect("businesses are not scoped")
        .insert(businesses::ActiveModel {
            name: Set("Contract Shop".into()),
            slug: Set("contract-shop".into()),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("insert business");
    let cx = sys.business(biz.id);
    let anon = Ctx::new().business(biz.id);

    let user_repo = Users::repo(db, cx).expect("scoped");
    let full = user_repo
        .insert(users::ActiveModel {
            phone_number: Set("+15550000001".into()),
            email: Set(Some("ada@example.com".into())),
            display_name: Set(Some("Ada".into())),
            status: Set("active".into()),
            ..Default::default()
        })
        .await
        .expect("insert user");
    let mut am = full.clone().into_active_model();
    am.display_name = Set(Some("Ada L.".into()));
    user_repo.update(am).await.expect("update user");
    let bare = Users::repo(db, anon)
        .expect("scoped")
        .insert(users::ActiveModel {
            phone_number: Set("+15550000002".into()),
            email: Set(None),
            display_name: Set(None),
            status: Set("inactive".into()),
            ..Default::default()
        })
        .await
        .expect("insert user without optional fields");
    user_repo.soft_delete(bare.id).await.expect("soft-delete user");

    UserSessions::repo(db, cx)
        .expect("scoped")
        .insert_many([
            user_sessions::ActiveModel {
                user_id: Set(full.id),
                token_hash: Set("a".repeat(64)),
                is_active: Set(true),
                expires_at: Set(entity::repo::now() + chrono::Duration::hours(1)),
                ip_address: Set(Some("203.0.113.7".into())),
                user_agent: Set(Some("Mozilla/5.0".into())),
                ..Default::default()
            },
            user_sessions::ActiveModel {
                user_id: Set(full.id),
                token_hash: Set("b".repeat(64)),
                is_active: Set(false),
                expires_at: Set(entity::repo::now()),
                ip_address: Set(None),
                user_agent: Set(None),
                ..Default::default()
            },
        ])
        .await
        .expect("insert sessions");
    UserActivities::repo(db, cx)
        .expect("scoped")
        .insert_many([
            user_activities::ActiveModel {
                user_id: Set(full.id),
                activity_type: Set("login".into()),
                description: Set(Some("signed in".into())),
                metadata: Set(
                    json!({"ip": "203.0.113.7", "mfa": true, "attempts": 2, "tags": ["web", null],
                                     "geo": {"lat": 51.5, "lon": -0.12}}),
                ),
                ..Default::default()
            },
            user_activities::ActiveModel {
                user_id: Set(full.id),
                activity_type: Set("logout".into()),
                description: Set(None),
                metadata: Set(json!({})),
                ..Default::default()
            },
        ])
        .await
        .expect("insert activities");
    let role = Roles::repo(db, cx)
        .expect("scoped")
        .insert(roles::ActiveModel {
            name: Set("Manager".into()),
            category: Set("staff".into()),
            description: Set(Some("runs the shop".into())),
            is_active: Set(true),
            ..Default::default()
        })
        .await
        .expect("insert role");
    Roles::repo(db, cx)
        .expect("scoped")
        .insert(roles::ActiveModel {
            name: Set("Guest".into()),
            category: Set("customer".into()),
            description: Set(None),
            is_active: Set(false),
            ..Default::default()
        })
        .await
        .expect("insert role without description");
    let perm_repo = Permissions::repo(db, sys).expect("permissions are global");
    let perm = perm_repo
        .insert(permissions::ActiveModel {
            module: Set("inventory".into()),
            resource: Set("items".into()),
            action: Set("read".into()),
            description: Set(Some("see items".into())),
            ..Default::default()
        })
        .await
        .expect("insert permission");
    let gone = perm_repo
        .insert(permissions::ActiveModel {
            module: Set("inventory".into()),
            resource: Set("items".into()),
            action: Set("write".into()),
            description: Set(None),
            ..Default::default()
        })
        .await
        .expect("insert permission without description");
    perm_repo
        .soft_delete(gone.id)
        .await
        .expect("soft-delete permission");
    RolePermissions::repo(db, cx)
        .expect("scoped")
        .insert(role_permissions::ActiveModel {
            role_id: Set(role.id),
            permission_id: Set(perm.id),
            ..Default::default()
        })
        .await
        .expect("grant permission");
    UserRoles::repo(db, anon)
        .expect("scoped")
        .insert(user_roles::ActiveModel {
            user_id: Set(full.id),
            role_id: Set(role.id),
            ..Default::default()
        })
        .await
        .expect("grant role");
    UserPreferences::repo(db, cx)
        .expect("scoped")
        .insert(user_preferences::ActiveModel {
            user_id: Set(full.id),
            preferences: Set(json!({"theme": "dark", "pageSize": 50, "beta": false, "pinned": [1, 2]})),
            ..Default::default()
        })
        .await
        .expect("insert preferences");
    AuditLogs::repo(db, cx)
        .expect("scoped")
        .insert_many([
            audit_logs::ActiveModel {
                actor_id: Set(Some(actor)),
                action: Set("update".into()),
                table_name: Set("users".into()),
                record_id: Set(full.id),
                changes: Set(json!({"displayName": {"old": "Ada", "new": "Ada L."}})),
                ..Default::default()
            },
            audit_logs::ActiveModel {
                actor_id: Set(None),
                action: Set("delete".into()),
                table_name: Set("users".into()),
                record_id: Set(bare.id),
                changes: Set(json!([])),
                ..Default::default()
            },
        ])
        .await
        .expect("insert audit logs");

    // Soft-deletable entities are read `with_deleted`, so `deletedAt` is seen both null and set.
    macro_rules! read_back {
        ($entity:ty, $ctx:expr) => {
            <$entity>::repo(db, $ctx)
                .expect("repo")
                .list()
                .await
                .expect("read back")
        };
        ($entity:ty, $ctx:expr, with_deleted) => {
            <$entity>::repo(db, $ctx)
                .expect("repo")
                .with_deleted()
                .list()
                .await
                .expect("read back")
        };
    }
    vec![
        fixture(
            "businesses",
            "Business",
            &read_back!(Businesses, sys, with_deleted),
        ),
        fixture("users", "User", &read_back!(Users, cx, with_deleted)),
        fixture(
            "userSessions",
            "UserSession",
            &read_back!(UserSessions, cx, with_deleted),
        ),
        fixture(
            "userActivities",
            "UserActivity",
            &read_back!(UserActivities, cx, with_deleted),
        ),
        fixture("roles", "Role", &read_back!(Roles, cx, with_deleted)),
        fixture(
            "permissions",
            "Permission",
            &read_back!(Permissions, sys, with_deleted),
        ),
        fixture(
            "rolePermissions",
            "RolePermission",
            &read_back!(RolePermissions, cx),
        ),
        fixture("userRoles", "UserRole", &read_back!(UserRoles, cx)),
        fixture(
            "userPreferences",
            "UserPreferences",
            &read_back!(UserPreferences, cx),
        ),
        fixture("auditLogs", "AuditLog", &read_back!(AuditLogs, cx)),
    ]
}

/// `GET path` over a fresh connection, within 30 s: status and JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let reply = collex_tests::http::get(addr, path).await;
    (reply.status, reply.json())
}

/// The JSON endpoints, the fixture name and the TypeScript type of each body.
const ENDPOINTS: [(&str, &str, &str); 5] = [
    ("/live", "liveResponses", "LiveResponse"),
    ("/ready", "readyResponses", "ReadyResponse"),
    ("/health", "healthResponses", "HealthResponse"),
    (
        "/health/detailed",
        "detailedHealthResponses",
        "DetailedHealthResponse",
    ),
    (
        "/health/database",
        "databaseHealthResponses",
        "DatabaseHealthResponse",
    ),
];

fn app(db: DbConfig) -> AppConfig {
    let mut cfg = AppConfig::new(db, "127.0.0.1:0".parse().expect("address"));
    // The verdicts on memory and disk are the host's (a CI machine's disk may be nearly full), not the
    // service's: off here, and tested with thresholds the host cannot meet in service::endpoints.
    cfg.health.min_free_memory_percent = 0.0;
    cfg.health.min_free_disk_percent = 0.0;
    cfg
}

/// Real bodies of every health endpoint, from a service that is healthy (migrated by the real runner) and
/// from one whose database does not answer (the bodies then carry `error` and lose `latency_ms`).
async fn health_fixtures(db: &PgTestDb) -> Vec<Fixture> {
    let mut healthy_cfg = DbConfig::try_from_url(db.url()).expect("test URL parses");
    healthy_cfg.auto_migrate = true;
    healthy_cfg.migrate_path = workspace().join("migrations");
    let runner = Arc::new(service::Runner::new(healthy_cfg.migrate_path.clone()));
    let healthy = service::start(app(healthy_cfg), runner)
        .await
        .expect("service starts");
    let started = Instant::now();
    while get(healthy.addr(), "/ready").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/ready not 200 within 60s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A port nobody listens on: the pool connects lazily, so the service starts and reports the failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut broken_cfg = DbConfig::try_from_url(db.url()).expect("test URL parses");
    broken_cfg.auto_migrate = false;
    broken_cfg.pool.acquire_timeout = Duration::from_secs(1);
    if let DbTarget::Postgres(pg) = &mut broken_cfg.target {
        pg.host = "127.0.0.1".into();
        pg.port = closed;
    }
    let broken = service::start(app(broken_cfg), Arc::new(service::NotWired))
        .await
        .expect("service starts");

    // All at once: the unhealthy answers each wait out a timeout.
    let (oks, bads) = tokio::join!(
        futures::future::join_all(ENDPOINTS.map(|(path, ..)| get(healthy.addr(), path))),
        futures::future::join_all(ENDPOINTS.map(|(path, ..)| get(broken.addr(), path))),
    );
    let mut out = Vec::new();
    for (((path, name, ts_type), (ok_status, ok)), (bad_status, bad)) in
        ENDPOINTS.into_iter().zip(oks).zip(bads)
    {
        assert_eq!(ok_status, 200, "{path}: {ok}");
        let expected = if path == "/live" { 200 } else { 503 };
        assert_eq!(bad_status, expected, "{path} without a database: {bad}");
        out.push(fixture(name, ts_type, &[ok, bad]));
    }
    healthy.shutdown().await.expect("shutdown");
    broken.shutdown().await.expect("shutdown");
    out
}

#[tokio::test]
async fn json_of_real_rows_and_health_bodies_has_the_shape_of_the_bindings() {
    // The schema the migrations build (triggers included), not the entities' own CREATE TABLE.
    let rows_db = PgTestDb::migrated().await;
    let db = rows_db.connect().await;
    let mut fixtures = entity_fixtures(&db).await;
    let health_db = PgTestDb::new().await;
    fixtures.extend(health_fixtures(&health_db).await);

    // Every exported type is held to real JSON, directly or inside another.
    let roots: Vec<&str> = fixtures.iter().map(|f| f.ts_type).collect();
    let checked = checked_through(&roots);
    let unchecked: Vec<String> = exported_types()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !checked.contains(n))
        .collect();
    assert!(
        unchecked.is_empty(),
        "no fixture checks {unchecked:?}: add one to this test"
    );

    // Optional columns are seen both set and null.
    let users = &fixtures[1].json;
    assert!(users.as_array().is_some_and(|u| u.len() == 2), "{users}");
    assert!(users.to_string().contains("\"deletedAt\":null"), "{users}");

    // The check must bite: the same rows with one key renamed, as a Rust rename would, must not compile.
    // Checked in the same tsc run (one compiler start): its errors must all be in renamed.ts.
    let mut renamed = vec![fixtures[1].clone()];
    let row = renamed[0]
        .json
        .get_mut(0)
        .and_then(Value::as_object_mut)
        .expect("a user row");
    let key = row
        .keys()
        .find(|k| *k != "id")
        .cloned()
        .expect("a field besides id");
    let value = row.remove(&key).expect("present");
    row.insert(format!("{key}Renamed"), value);

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("contract");
    let project = write_contract(&dir, &[("contract", &fixtures), ("renamed", &renamed)]);
    let errors = run_tsc(&project).expect_err("renamed.ts holds a renamed field: it must not compile");
    // tsc runs in `dir`, so its messages start with the file name; indented lines continue a message.
    let elsewhere = errors
        .lines()
        .any(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("renamed.ts("));
    if elsewhere {
        panic!("{errors}\n{RUN_MAKE_TYPES}\n(fixtures: {})", dir.display());
    }
    assert!(errors.contains(&format!("{key}Renamed")), "{errors}");
}
