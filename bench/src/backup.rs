//! Backup: `migration backup` (pg_dump -Fc streamed through the CLI, hashed on the way, plus its manifest)
//! against plain `pg_dump -Fc -f FILE` of the same database, in alternating rounds. Issue 15's target: at
//! most 1.05× the plain dump.

use std::path::Path;

use anyhow::{Context, bail};

use crate::db;
use crate::part::Env;
use crate::report::{Figure, Report, Target};
use crate::rounds;
use crate::tools;

/// Rows in the dumped table (a few MB of custom-format output); `--quick` takes a tenth.
const ROWS: u32 = 300_000;

fn on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn clear(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Runs the backup benchmark and adds its figure.
///
/// # Errors
/// Database errors, or a side that fails.
pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let bin = env.bin_dir().join("migration");
    let Some(pg_dump) = on_path("pg_dump") else {
        report.add(Figure::missing(
            "backup",
            "migration backup",
            "pg_dump missing on PATH",
        ));
        return Ok(());
    };
    let rows = if env.quick() { ROWS / 10 } else { ROWS };
    let url = env.dbs.fresh("backup").await?;
    let conn = db::connect(&url, 1).await?;
    sea_orm::ConnectionTrait::execute_unprepared(
        &conn,
        &format!(
            "CREATE TABLE bench_backup AS SELECT g AS id, md5(g::text) AS label, now() - g * interval '1 s' AS at \
             FROM generate_series(1, {rows}) g; ALTER TABLE bench_backup ADD PRIMARY KEY (id)"
        ),
    )
    .await
    .context("filling the backup database")?;
    conn.close().await.ok();

    let work = crate::work_dir().join("backup");
    let (runner_dir, reference_file) = (work.join("runner"), work.join("reference.dump"));
    // Same TLS setting on both sides: the CLI's default for a URL without sslmode is `disable`, libpq's is
    // `prefer` (TLS costs about 85 ms a connection here).
    let sslmode = if url.contains("sslmode=") {
        None
    } else {
        Some("disable")
    };
    let (mut runner_ms, mut reference_ms) = (Vec::new(), Vec::new());
    let runs = env.rounds();
    eprintln!("collex-bench: backup, {rows} rows, {runs} runs per side");
    for run in 0..runs {
        for side in [run % 2, 1 - run % 2] {
            clear(&work)?;
            let mut cmd = if side == 0 {
                let mut cmd = tokio::process::Command::new(&bin);
                cmd.arg("backup")
                    .env("DATABASE_URL", &url)
                    .env("DB_BACKUP_DIR", &runner_dir)
                    .env_remove("DB_BACKUP_KEEP")
                    .env_remove("RUST_LOG");
                cmd
            } else {
                let mut cmd = tokio::process::Command::new(&pg_dump);
                cmd.args(["--format=custom", "--file"])
                    .arg(&reference_file)
                    .arg(&url);
                if let Some(mode) = sslmode {
                    cmd.env("PGSSLMODE", mode);
                }
                cmd
            };
            let took = tools::timed(&mut cmd, ["migration backup", "pg_dump -Fc"][side]).await?;
            let wrote = if side == 0 {
                std::fs::read_dir(&runner_dir)?
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".dump"))
            } else {
                reference_file.is_file()
            };
            if !wrote {
                bail!("{} wrote no dump", ["migration backup", "pg_dump -Fc"][side]);
            }
            [&mut runner_ms, &mut reference_ms][side].push(took.as_secs_f64() * 1e3);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    report.add(
        Figure::from_rounds(
            "backup",
            format!("migration backup, {rows} rows"),
            &runner_ms,
            "ms",
        )
        .against_rounds("pg_dump -Fc -f FILE, same database", &reference_ms)
        .target(Target::RatioAtMost(1.05))
        .note(format!(
            "process start to exit, {runs} runs per side, the first side alternating; the CLI adds its \
                 start, the server version check, the migration lock, the history read, hashing the stream \
                 and the manifest (median of rounds {:.0} ms vs {:.0} ms)",
            rounds::median(&runner_ms),
            rounds::median(&reference_ms)
        )),
    );
    Ok(())
}
