//! `collex-bench` end to end in quick mode against the real PostgreSQL at `TEST_DATABASE_URL`: every part runs,
//! the results file parses with a median and a min–max spread per figure, and `--compare` / `compare` print the
//! difference with an earlier file. Nothing here judges a speed: a smoke run's figures mean nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_collex-bench");

/// The workspace root: `migration up` finds the committed migrations there, as under `make bench`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

fn bench(args: &[&str]) -> Output {
    Command::new(BENCH)
        .args(args)
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .env_remove("BENCH_SECONDS")
        .env_remove("BENCH_ROUNDS")
        .output()
        .expect("collex-bench starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An earlier results file in the first layout (no spreads), with one figure the quick run also makes.
const EARLIER: &str = r#"{
  "date": "2026-11-27 04:41 UTC",
  "figures": [
    {"group": "reads", "name": "entity repo find_by_id, 1 tasks", "value": 1.0, "unit": "reads/s",
     "reference": "raw sqlx, same SQL and pool", "reference_value": 2.0, "ratio": 0.5,
     "target": ">= 0.95x", "met": false, "note": null},
    {"group": "gone", "name": "a figure this run does not make", "value": 1.0, "unit": "ms"}
  ],
  "notes": [],
  "duration_s": 201.0
}"#;

#[test]
fn a_quick_run_writes_spreads_and_compares_with_an_earlier_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let earlier = dir.path().join("earlier.json");
    std::fs::write(&earlier, EARLIER).expect("write the earlier file");
    let out = dir.path().join("results.json");
    let md = dir.path().join("results.md");
    // The binaries `make build` left next to this one (debug): the runner and the service are measured too.
    let bin_dir = Path::new(BENCH).parent().expect("a bin dir");
    let run = bench(&[
        "run",
        "--quick",
        "--read-cases",
        "1:1",
        "--bin-dir",
        &bin_dir.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--markdown",
        &md.display().to_string(),
        "--compare",
        &earlier.display().to_string(),
    ]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "quick run failed:\n{stdout}\n{stderr}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results.json written")).expect("JSON");
    assert_eq!(json["format"], 2);
    assert_eq!(json["settings"]["quick"], true);
    assert_eq!(json["settings"]["rounds"], 2);
    let figures = json["figures"].as_array().expect("a figures list");
    for group in ["reads", "updates", "migrations", "service"] {
        assert!(
            figures.iter().any(|f| f["group"] == group),
            "no {group} figure in {json:#}"
        );
    }
    // Every figure measured in two or more rounds has its spread around its median, and so has its ratio.
    let mut with_spread = 0;
    for f in figures {
        let (Some(v), Some(rounds)) = (f["value"].as_f64(), f["rounds"].as_u64()) else {
            continue;
        };
        if rounds < 2 {
            continue;
        }
        let [lo, hi] = [&f["spread"][0], &f["spread"][1]].map(|x| x.as_f64().expect("a spread"));
        assert!(lo <= v && v <= hi, "median outside its spread: {f}");
        if let Some(r) = f["ratio"].as_f64()
            && f["ratio_spread"].is_array()
        {
            let [rlo, rhi] =
                [&f["ratio_spread"][0], &f["ratio_spread"][1]].map(|x| x.as_f64().expect("a ratio"));
            assert!(rlo <= r && r <= rhi, "ratio outside its spread: {f}");
        }
        with_spread += 1;
    }
    let repo = figures
        .iter()
        .find(|f| {
            f["name"] == "entity repo find_by_id, 1 tasks" && f["reference"] == "raw sqlx, same SQL and pool"
        })
        .expect("the repo's find_by_id figure");
    assert_eq!(repo["rounds"], 2, "{repo}");
    assert!(repo["ratio_spread"].is_array(), "{repo}");
    assert!(
        with_spread >= 10,
        "only {with_spread} figures with spreads: {json:#}"
    );
    // Client CPU per operation beside the reads' and updates' throughput.
    for name in [
        "client CPU per read, entity repo, 1 tasks",
        "client CPU per update, Repo::update, 16 tasks, 1 row",
    ] {
        let f = figures
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert!(f["value"].as_f64().is_some_and(|v| v > 0.0), "{f}");
    }

    // --compare: the matched figure with the earlier value and ratio, the rest listed.
    let line = stdout
        .lines()
        .skip_while(|l| !l.starts_with("compare: "))
        .find(|l| l.contains("entity repo find_by_id, 1 tasks"))
        .unwrap_or_else(|| panic!("no compare row for the repo's find_by_id:\n{stdout}"));
    assert!(line.contains("1.00 reads/s") && line.contains("0.50x"), "{line}");
    assert!(
        stdout.contains("only before: gone / a figure this run does not make"),
        "{stdout}"
    );
    let markdown = std::fs::read_to_string(&md).expect("results.md written");
    assert!(markdown.contains("| group | figure | value |"), "{markdown}");

    // `compare A A`: every figure unchanged and within noise.
    let same = bench(&["compare", &out.display().to_string(), &out.display().to_string()]);
    let same_out = text(&same.stdout);
    assert!(same.status.success(), "{same_out}{}", text(&same.stderr));
    let rows: Vec<&str> = same_out
        .lines()
        .filter(|l| l.starts_with("reads ") || l.starts_with("updates "))
        .collect();
    assert!(!rows.is_empty(), "{same_out}");
    for row in rows {
        assert!(row.contains("within noise") || row.contains(" - "), "{row}");
    }
}

#[test]
fn bad_input_fails_before_anything_runs_and_says_what_is_expected() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let missing = dir.path().join("missing.json");
    let not_results = dir.path().join("not-results.json");
    std::fs::write(&not_results, "[1, 2]").expect("write");

    let r = bench(&["compare", &missing.display().to_string()]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains(&format!("cannot read the results file {}", missing.display())),
        "{}",
        text(&r.stderr)
    );

    let out = dir.path().join("never.json");
    let r = bench(&[
        "run",
        "--quick",
        "--compare",
        &not_results.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("is not a collex-bench results.json"),
        "{}",
        text(&r.stderr)
    );
    assert!(!out.exists(), "a refused run wrote results");

    let r = bench(&[
        "run",
        "--quick",
        "--only",
        "reads,nope",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(!r.status.success());
    // The known parts are whatever `collex-bench list` prints (engineers add parts).
    let list = bench(&["list"]);
    let known: Vec<String> = text(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(known.iter().any(|p| p == "reads"), "{known:?}");
    let expected = format!(
        "unknown part \"nope\" in --only/--skip; expected one of: {}",
        known.join(", ")
    );
    assert!(text(&r.stderr).contains(&expected), "{}", text(&r.stderr));
    assert!(!out.exists(), "a refused run wrote results");

    let r = bench(&[
        "run",
        "--quick",
        "--read-cases",
        "8:8,0:1",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("--read-cases: expected TASKS:POOL with positive integers, got \"0:1\""),
        "{}",
        text(&r.stderr)
    );
    assert!(!out.exists(), "a refused run wrote results");

    let r = bench(&[
        "run",
        "--quick",
        "--seconds",
        "inf",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr)
            .contains("--seconds/BENCH_SECONDS: expected seconds per window between 0 and 3600, got inf"),
        "{}",
        text(&r.stderr)
    );
    assert!(!out.exists(), "a refused run wrote results");
}
