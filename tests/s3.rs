//! The object-store backend against a real S3 server whose process is killed in the
//! middle of a run: the run must end with an error that names the store, promptly,
//! not hang. Starts its own Garage (scripts/s3-server, another port and directory),
//! so it needs the `garage` binary: without it the test says so and passes, unless
//! HARNESS_REQUIRE_S3 is set (as in CI), when it fails. Also: a run through the
//! delay proxy (`start --latency`) records the proxy's profile and every one of its
//! reads takes at least the round trip; a run on the configured S3 server records
//! its requests (kinds, latencies, in flight) and reports them with their cost.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::text;

fn garage_installed() -> bool {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    Command::new("sh")
        .args(["-c", "command -v garage"])
        .output()
        .is_ok_and(|o| o.status.success())
        || home.join(".cargo/bin/garage").exists()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-server")
}

/// A Garage of this test's own; stopped (and its directory deleted) when dropped.
struct Server {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Server {
    fn start(dir: &Path, port: u16) -> Server {
        Self::start_with(dir, port, &[])
    }

    /// With `args` after `start` (`--latency 20ms`); the proxy is this test build's
    /// own binary.
    fn start_with(dir: &Path, port: u16, args: &[&str]) -> Server {
        let out = Command::new(script())
            .arg("start")
            .args(args)
            .env("HARNESS_BIN", env!("CARGO_BIN_EXE_harness"))
            .env("HARNESS_S3_DIR", dir)
            .env("HARNESS_S3_PORT", port.to_string())
            // Keep the loopback's delayed ACKs: a slow run is easier to cut short, and
            // the routes are the shared server's business.
            .env("HARNESS_S3_QUICKACK", "0")
            .output()
            .expect("scripts/s3-server runs");
        assert!(out.status.success(), "s3-server start: {}", text(&out));
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Server {
            dir: dir.to_path_buf(),
            env,
        }
    }

    fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).expect("a pid file");
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .env("HARNESS_S3_DIR", &self.dir)
            .output();
    }
}

const SCENARIO: &str = r#"
name = "s3-kill"
[dataset]
groups = 1
variables = 40
steps = 146
ny = 32
nx = 32
[output]
cy = 16
cx = 16
[run]
repetitions = 1
[[backend]]
name = "object-store"
input = "s3://harness/datasets/s3-kill"
io_in_flight = 16
bytes_in_flight = "64 MiB"
"#;

#[test]
fn killing_the_s3_server_mid_run_ends_the_run_with_an_error() {
    if !garage_installed() {
        assert!(
            std::env::var_os("HARNESS_REQUIRE_S3").is_none(),
            "HARNESS_REQUIRE_S3 is set but garage is not installed (scripts/s3-server start installs it)"
        );
        eprintln!("SKIPPED: garage is not installed (scripts/s3-server start installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"), 3950);
    let scenario = dir.path().join("s3-kill.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let harness = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
        c.args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--results-dir")
            .arg(dir.path().join("results"))
            .envs(server.env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path());
        c
    };

    // The dataset goes up first, so that the kill lands in the run itself.
    let s = scenario.to_str().unwrap();
    let up = harness(&["gen", s, "--store", "s3://harness/datasets/s3-kill"])
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", text(&up));

    // 5,840 GETs at 16 in flight: 1.5 s at ~3,800 requests/s, 15 s with delayed
    // ACKs. The kill lands 300 ms after the repetition starts.
    let mut run = harness(&["run", s])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = run.stderr.take().unwrap();
    let (started, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("repetition 1") {
                let _ = started.send(());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the repetition starts");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before the server was killed"
    );
    server.kill();
    let killed = Instant::now();
    let deadline = Duration::from_secs(90);
    while run.try_wait().unwrap().is_none() {
        if killed.elapsed() > deadline {
            let _ = run.kill();
            panic!("the run did not end within {deadline:?} of the server's death");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    let shown = format!("{}{}", text(&out), reader.join().unwrap());
    assert!(!out.status.success(), "the run succeeded: {shown}");
    assert!(
        shown.contains("s3://harness/datasets/s3-kill/"),
        "the error does not name the store and key: {shown}"
    );
    eprintln!(
        "the run ended {:.1} s after the kill: {}",
        killed.elapsed().as_secs_f64(),
        shown.lines().find(|l| l.contains("FAILED")).unwrap_or("")
    );
}

const PROXIED: &str = r#"
name = "s3-proxied"
[dataset]
groups = 1
variables = 2
steps = 10
ny = 16
nx = 16
[output]
cy = 8
cx = 8
[run]
repetitions = 1
[[backend]]
name = "object-store"
input = "s3://harness/datasets/s3-proxied"
output = "s3://harness/outputs/s3-proxied"
io_in_flight = 4
"#;

/// `start --latency 20ms`: the env points at the proxy and carries the profile, a
/// run through it verifies, records `network.mode = "proxy"` with the round trip,
/// and none of its reads is quicker than the round trip; `stop` ends the proxy.
#[test]
fn a_run_through_the_delay_proxy_records_its_profile() {
    if !garage_installed() {
        assert!(
            std::env::var_os("HARNESS_REQUIRE_S3").is_none(),
            "HARNESS_REQUIRE_S3 is set but garage is not installed (scripts/s3-server start installs it)"
        );
        eprintln!("SKIPPED: garage is not installed (scripts/s3-server start installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s3 = dir.path().join("s3");
    let server = Server::start_with(&s3, 3940, &["--latency", "20ms"]);
    let env: std::collections::HashMap<_, _> = server.env.iter().cloned().collect();
    assert_eq!(env["AWS_ENDPOINT"], "http://127.0.0.1:3943");
    assert_eq!(
        env["HARNESS_S3_NET"],
        "proxy=127.0.0.1:3943,upstream=127.0.0.1:3940,rtt=20ms,jitter=0ms,rate=none"
    );
    let proxy_pid = std::fs::read_to_string(s3.join("proxy.pid")).unwrap();
    let scenario = dir.path().join("s3-proxied.toml");
    std::fs::write(&scenario, PROXIED).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", scenario.to_str().unwrap()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--results-dir")
        .arg(dir.path().join("results"))
        .envs(server.env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let r = harness::results::Results::load(&run.join("results.json")).unwrap();
    let n = r.network.as_ref().unwrap();
    assert_eq!(n.mode, "proxy", "{n:?}");
    let p = n.proxy.as_ref().unwrap();
    assert_eq!((p.listen.as_str(), p.rtt_ms), ("127.0.0.1:3943", 20.0));
    let rep = &r.repetitions[0];
    assert!(rep.counts, "{rep:?}");
    let read = &rep.measurement.as_ref().unwrap().stages["read"];
    eprintln!(
        "read latency through the proxy at 20 ms: min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
        read.min_us / 1e3,
        read.p50_us / 1e3,
        read.p99_us / 1e3
    );
    // Every GET crosses the proxy both ways: never sooner than the round trip.
    assert!(
        read.min_us >= 20e3,
        "a read took {} µs at a 20 ms round trip",
        read.min_us
    );
    // The per-request metrics see the same: no GET's first byte before the round
    // trip, and Little's law takes the configured round trip.
    let ttfb = &rep.measurement.as_ref().unwrap().requests["s3 get"].ttfb;
    eprintln!(
        "GET time to first byte through the proxy at 20 ms: min {:.1} ms, p50 {:.1} ms",
        ttfb.min_us / 1e3,
        ttfb.p50_us / 1e3
    );
    assert!(
        ttfb.min_us >= 20e3,
        "a GET's first byte after {} µs",
        ttfb.min_us
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("Network to the object stores (proxy): TCP delay proxy"),
        "{md}"
    );

    drop(server);
    let gone = !Path::new(&format!("/proc/{}", proxy_pid.trim())).exists();
    assert!(gone, "the proxy (pid {}) outlived stop", proxy_pid.trim());
    assert!(!s3.exists(), "stop left {}", s3.display());
}

/// A run of the object-store backend on the configured S3 server (`eval
/// "$(scripts/s3-server env)"`, as CI does; skipped without one unless
/// HARNESS_REQUIRE_S3 is set): its results count every GET and PUT by kind, with
/// latency histograms, requests in flight reach far past one and show in the
/// timeline's samples, and the report has the request table and its cost.
#[test]
fn an_s3_run_records_its_requests_in_flight_and_their_cost() {
    let Some(bucket) = common::s3_bucket_or_skip() else {
        return;
    };
    let prefix = format!("s3://{bucket}/tests/requests-{}", std::process::id());
    let scenario = format!(
        r#"
name = "s3-requests"
[dataset]
groups = 1
variables = 40
steps = 146
ny = 32
nx = 32
[output]
cy = 16
cx = 16
[run]
repetitions = 1
[[backend]]
name = "object-store"
input = "{prefix}/in"
output = "{prefix}/out"
io_in_flight = 256
bytes_in_flight = "64 MiB"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s3-requests.toml");
    std::fs::write(&s, scenario).unwrap();
    let out = common::harness_with(dir.path(), "results", &["run", s.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let run = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let results = harness::results::Results::load(&run.join("results.json")).unwrap();
    let m = results
        .repetitions
        .iter()
        .find(|r| !r.warmup)
        .and_then(|r| r.measurement.as_ref())
        .unwrap();
    let c = &m.counters;
    assert_eq!(c.requests["s3 get"].count, 40 * 146, "{c:?}");
    assert_eq!(c.requests["s3 put"].count, m.outcome.outputs, "{c:?}");
    assert_eq!(c.requests["s3 get"].errors + c.requests["s3 put"].errors, 0);
    assert!(c.http_attempts >= 40 * 146 + m.outcome.outputs, "{c:?}");
    assert!(c.max_requests_in_flight > 16, "{c:?}");
    assert!(c.max_requests_in_flight <= 256, "{c:?}");
    assert_eq!(m.requests["s3 get"].ttfb.count, 40 * 146);
    let samples = &m.timeline.as_ref().unwrap().samples;
    assert!(
        samples.iter().any(|s| s.requests_in_flight > 0),
        "no sample saw a request in flight: {samples:?}"
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## Object-store requests"), "{md}");
    assert!(
        md.lines()
            .any(|l| l.contains("| s3 get | 5,840 |") && l.contains("$0.00")),
        "{md}"
    );
}
