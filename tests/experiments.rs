//! Smoke tests of the experiment scripts in `scripts/experiments/`: each runs at its
//! smallest scale (`--smoke`, real nodes on loopback) into a temp dir and must produce
//! its CSV, with a header and data, and its PNG plot. The release binary is built once
//! first, under a time limit of its own; the scripts install matplotlib into a venv
//! under `target/` themselves.
//!
//! The runs take turns (one lock): they start networks of real processes, and the
//! figures they print are only meaningful, and their waits only bounded, on a quiet
//! machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One script at a time.
static TURN: Mutex<()> = Mutex::new(());

/// Longest a smoke run may take, venv included, before it is killed.
const LIMIT: Duration = Duration::from_secs(600);
/// Longest the release build the scripts use may take (cold, with fat LTO: 6 minutes on
/// 2 cores), before it fails the tests.
const BUILD_LIMIT: Duration = Duration::from_secs(1800);

/// Whether the release build succeeded (once for all the tests; its error otherwise).
static BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Builds what the scripts run, in release, outside their time limit: a cold build with
/// LTO takes most of it, and the first script to run would pay for it.
fn release_build() -> Result<(), String> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--bin", "kvchain"])
        .args(["--example", "read_speed"])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    match wait_within(&mut child, started, BUILD_LIMIT) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("cargo build --release failed ({status})")),
        Ok(None) => Err(format!("cargo build --release ran over {BUILD_LIMIT:?}")),
        Err(e) => Err(format!("waiting for cargo: {e}")),
    }
}

/// Waits for `child` until `limit` after `started`; past it, stops it with SIGTERM (so
/// that a script's EXIT trap stops its nodes), reaps it and returns `None`.
fn wait_within(
    child: &mut Child,
    started: Instant,
    limit: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/experiments/NAME.sh --smoke --out DIR` and checks that DIR holds each
/// of `files`: CSVs with a header and at least one row, PNGs that are PNG images.
fn smoke(name: &str, files: &[&str]) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = BUILT.get_or_init(release_build) {
        panic!("{e}");
    }
    let out = tempfile::tempdir().expect("temp dir");
    let script = root().join(format!("scripts/experiments/{name}.sh"));
    let log = out.path().join("run.log");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .env_remove("KVCHAIN_TESTNET_BIN")
        .env_remove("KVCHAIN_TESTNET_DIR")
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log file")))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("log file"),
        ))
        .spawn()
        .expect("start the script");
    let status = wait_within(&mut child, started, LIMIT).expect("wait for the script");
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "{name}.sh --smoke took {:.0} s:\n{output}",
        started.elapsed().as_secs_f64()
    );
    let status = status.unwrap_or_else(|| panic!("{name}.sh --smoke ran over {LIMIT:?}"));
    assert!(status.success(), "{name}.sh --smoke failed ({status})");
    for file in files {
        check_file(&out.path().join(file));
    }
    // exp_done, the script's last step, records how long the run took.
    let meta = std::fs::read_to_string(out.path().join("meta.txt")).unwrap_or_default();
    assert!(
        meta.lines().any(|l| l.starts_with("took: ")),
        "{name}.sh did not reach its end (no 'took:' in meta.txt):\n{meta}"
    );
}

fn check_file(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
            "{} is not a PNG plot",
            path.display()
        ),
        Some("csv") => {
            let text = String::from_utf8_lossy(&bytes);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            assert!(header.contains(','), "{} has no header", path.display());
            let columns = header.split(',').count();
            let rows: Vec<&str> = lines.collect();
            assert!(!rows.is_empty(), "{} has no data rows", path.display());
            for row in rows {
                assert_eq!(
                    row.split(',').count(),
                    columns,
                    "{}: a row does not match the header: {row}",
                    path.display()
                );
            }
        }
        _ => assert!(!bytes.is_empty(), "{} is empty", path.display()),
    }
}

#[test]
fn every_experiment_script_has_a_smoke_test() {
    let tested = [
        "attack51",
        "broadcast",
        "difficulty",
        "faultmodels",
        "faults",
        "speed",
    ];
    let dir = root().join("scripts/experiments");
    let mut scripts: Vec<String> = std::fs::read_dir(&dir)
        .expect("scripts/experiments")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".sh").map(str::to_string))
        .filter(|n| n != "lib" && n != "net")
        .collect();
    scripts.sort();
    let mut expected: Vec<String> = tested.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        scripts, expected,
        "a script without a smoke test, or the reverse"
    );
}

#[test]
fn difficulty_writes_its_table_and_plot() {
    smoke("difficulty", &["difficulty.csv", "difficulty.png"]);
}

#[test]
fn faults_writes_its_tables_and_plot() {
    smoke(
        "faults",
        &[
            "faults.csv",
            "faults_writes.csv",
            "faults_nodes.csv",
            "faults_events.csv",
            "faults.png",
        ],
    );
}

#[test]
fn faultmodels_writes_its_tables_and_plot() {
    smoke(
        "faultmodels",
        &[
            "faultmodels.csv",
            "faultmodels.png",
            "crash-stop/writes.csv",
            "crash-recovery/nodes.csv",
            "miner-crash/check.json",
            "byzantine/hostile.jsonl",
            "byzantine/check.json",
        ],
    );
}

#[test]
fn broadcast_writes_its_table_and_plot() {
    smoke("broadcast", &["broadcast.csv", "broadcast.png"]);
}

#[test]
fn attack51_writes_its_table_plot_and_histories() {
    smoke(
        "attack51",
        &[
            "attack51.csv",
            "attack51.png",
            "trials.csv",
            "history_before.txt",
            "history_after.txt",
        ],
    );
}

#[test]
fn speed_writes_its_tables_and_plot() {
    smoke(
        "speed",
        &[
            "speed.csv",
            "speed_writes.csv",
            "speed_startup.csv",
            "speed.png",
        ],
    );
}
