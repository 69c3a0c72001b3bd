//! up → down to zero → up gives the same catalog as one up; down to zero leaves only the history table.

use collex_tests::PgTestDb;

use super::support::{MigDir, catalog, run, tables};

fn realistic(dir: &MigDir) {
    dir.pair(
        1,
        "initial_schema",
        "CREATE TYPE user_status AS ENUM ('active', 'blocked');\n\
         CREATE TABLE users (\n\
             id uuid PRIMARY KEY DEFAULT gen_random_uuid(),\n\
             email varchar(100),\n\
             phone_number varchar(20) NOT NULL,\n\
             status user_status NOT NULL DEFAULT 'active',\n\
             created_at timestamptz NOT NULL DEFAULT now(),\n\
             deleted_at timestamptz,\n\
             CONSTRAINT users_phone_not_blank CHECK (phone_number <> '')\n\
         );\n\
         CREATE UNIQUE INDEX idx_users_phone ON users (phone_number) WHERE deleted_at IS NULL;\n\
         CREATE INDEX idx_users_email_status ON users (email, status) WHERE deleted_at IS NULL AND email IS NOT NULL;",
        "DROP TABLE IF EXISTS users;\nDROP TYPE IF EXISTS user_status;",
    );
    dir.pair(
        2,
        "add_user_preferences",
        "CREATE TABLE user_preferences (\n\
             id bigserial PRIMARY KEY,\n\
             user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,\n\
             preferences jsonb NOT NULL DEFAULT '{}',\n\
             version integer NOT NULL DEFAULT 1,\n\
             UNIQUE (user_id)\n\
         );\n\
         CREATE INDEX idx_user_preferences_user_id ON user_preferences (user_id);",
        "DROP INDEX IF EXISTS idx_user_preferences_user_id;\nDROP TABLE IF EXISTS user_preferences;",
    );
    dir.pair(
        3,
        "audit",
        "CREATE SEQUENCE audit_seq;\n\
         CREATE TABLE audit_logs (id bigint PRIMARY KEY DEFAULT nextval('audit_seq'), action text NOT NULL);\n\
         CREATE FUNCTION audit_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM audit_logs; $$;",
        "DROP FUNCTION audit_count();\nDROP TABLE audit_logs;\nDROP SEQUENCE audit_seq;",
    );
}

#[tokio::test]
async fn up_down_to_zero_up_gives_the_same_catalog_and_zero_leaves_only_the_history() {
    let pg = PgTestDb::new().await;
    let db = pg.connect().await;
    let dir = MigDir::new();
    realistic(&dir);

    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    let once = catalog(&db).await;
    assert!(
        once.contains("WHERE (deleted_at IS NULL)"),
        "partial index predicates are compared:\n{once}"
    );

    let out = run(pg.url(), dir.path(), &["down", "--to", "0"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(tables(&db).await, vec!["collex_migrations"]);
    let empty = catalog(&db).await;
    assert!(
        empty.lines().all(|l| l.contains("collex_migrations")),
        "only the history table remains:\n{empty}"
    );

    assert_eq!(run(pg.url(), dir.path(), &["up"]).await.code, 0);
    assert_eq!(catalog(&db).await, once);
}
