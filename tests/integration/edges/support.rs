//! Running the two binaries with nothing but the given variables, in a directory of their own.

use std::path::Path;
use std::time::{Duration, Instant};

use collex_tests::{TempDir, clean_command, workspace_bin};

use crate::service::support::{Settled, command, every_endpoint, spawn};

/// Exit code and everything printed of one `migration` run (stdin closed).
pub fn migration(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let out = clean_command(&workspace_bin("migration"))
        .current_dir(cwd)
        .envs(env.iter().copied())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run migration");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory with an empty `migrations/`, as both binaries' working directory.
pub fn workdir() -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("migrations")).expect("migrations dir");
    dir
}

/// Runs the service with `env` (and `args`) until it exits by itself. When it starts serving instead, what
/// an operator would see is gathered (every endpoint, and the log until start-up has reported on the
/// database) before it is stopped: the exit code is then `None`.
pub async fn service(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = command(cwd, env);
    cmd.args(args);
    match spawn(cmd).settle() {
        Settled::Exited(status, output) => (status.code(), output),
        Settled::Listening(proc, addr) => {
            let started = Instant::now();
            while !proc.output().contains("database") && started.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let seen = every_endpoint(addr).await;
            let (_, output) = proc.terminate();
            (None, seen + &output)
        }
    }
}
