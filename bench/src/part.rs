//! What a bench part is and what it is handed: [`Part`] (a name, one line of what it measures, its `run`),
//! [`Env`] (the options, the reference tools, the PostgreSQL cluster, the shared `users` data set) and the
//! [`part!`](crate::part) macro that turns a module's `run` into a registry line.
//!
//! Adding a part takes a module with
//!
//! ```ignore
//! pub async fn run(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()>
//! ```
//!
//! and one line in `PARTS` in `main.rs`. The part measures its paths with [`crate::rounds`] (alternating
//! rounds, min–max spreads, CPU per operation) and adds [`crate::report::Figure`]s; the report, the table,
//! the JSON and `--compare` need nothing more from it.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::RunArgs;
use crate::db::{self, Data, Databases};
use crate::report::Report;
use crate::tools::Tools;

/// The future a part's `run` returns (boxed, so every part fits one function-pointer type).
pub type PartFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// One part of the bench.
#[derive(Clone, Copy)]
pub struct Part {
    /// What `--only`/`--skip` and the report's `group` call it.
    pub name: &'static str,
    /// One line: what it measures against what (printed by `collex-bench list`).
    pub about: &'static str,
    /// Runs it, adding its figures to the report.
    pub run: for<'a> fn(&'a Env<'a>, &'a mut Report) -> PartFuture<'a>,
}

/// `part!("name", module::run, "what it measures against what")`: one registry line.
#[macro_export]
macro_rules! part {
    ($name:literal, $run:path, $about:literal) => {
        $crate::part::Part {
            name: $name,
            about: $about,
            run: |env, report| Box::pin($run(env, report)),
        }
    };
}

/// Everything a part is handed.
pub struct Env<'a> {
    /// The command line (resolved: `--quick` already applied).
    pub args: &'a RunArgs,
    /// The reference tools found on `PATH`.
    pub tools: &'a Tools,
    /// The PostgreSQL cluster; `dbs.fresh(suffix)` makes a database dropped at the end of the run.
    pub dbs: &'a Databases,
    data: OnceCell<Data>,
}

impl<'a> Env<'a> {
    /// An environment whose data set is made on first use.
    pub fn new(args: &'a RunArgs, tools: &'a Tools, dbs: &'a Databases) -> Self {
        Self {
            args,
            tools,
            dbs,
            data: OnceCell::new(),
        }
    }

    /// The measured window of every timed path.
    pub fn window(&self) -> Duration {
        self.args.window()
    }

    /// The warm-up before each window (connections opened, statements prepared, caches filled).
    pub fn warmup(&self) -> Duration {
        self.args.warmup()
    }

    /// Alternating rounds of every comparison.
    pub fn rounds(&self) -> usize {
        self.args.rounds()
    }

    /// Whether this is a smoke run (`--quick`): parts shrink their fixed counts too.
    pub fn quick(&self) -> bool {
        self.args.quick
    }

    /// Where the release `migration` and `service` binaries are.
    pub fn bin_dir(&self) -> &Path {
        &self.args.bin_dir
    }

    /// The `users` data set (100,000 rows, 3 businesses, `pgbench_accounts`), made on first use and shared by
    /// every part that asks; its database is dropped with the others at the end.
    ///
    /// # Errors
    /// Database errors while making it.
    pub async fn data(&self, report: &mut Report) -> anyhow::Result<&Data> {
        self.data
            .get_or_try_init(|| db::prepare_data(self.dbs, &self.args.bin_dir, report))
            .await
    }

    /// Closes the data set's connection, if one was made.
    pub async fn close(self) {
        if let Some(data) = self.data.into_inner() {
            data.db.close().await.ok();
        }
    }
}
