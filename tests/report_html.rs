//! `report.html` opened in a real browser (headless Chromium): a run of the
//! `mock` backend with every plot (a sweep over `io_in_flight` with scripted S3
//! requests draws all six), and a merged split job's page. Each page must show its
//! decision (or verdict) before its tables, every plot as inline SVG, no script
//! error, refused load or console message, and must load nothing from anywhere.
//! Screenshots land in the test's temporary folder and are copied to
//! `target/report-html-screenshot.png` (and `…-cluster.png`) for a person to look at.
//!
//! Chromium: the one on PATH; with HARNESS_REQUIRE_CHROMIUM set (CI),
//! `scripts/chromium` installs Debian's if it is missing, and the test fails
//! without it; otherwise the test says SKIPPED and passes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::text;

use harness::analysis::Analysis;
use harness::report;
use harness::results::Results;

const SCENARIO: &str = r#"
name = "mocked"
description = "scripted latencies and requests <b>not bold</b>"
[dataset]
groups = 1
variables = 4
steps = 6
ny = 8
nx = 8
codec = "lz4"
[run]
repetitions = 2
[[backend]]
name = "sequential"
[[backend]]
name = "mock"
read_us = 100
decode_us = 250
reduce_us = 5
encode_us = 400
write_us = 1000
input_us = 2000
request_us = 2000
[sweep]
parameter = "io_in_flight"
values = [1, 4]
backends = ["mock"]
"#;

/// The browser, or None (after saying SKIPPED) when it is absent and not required.
fn chromium() -> Option<PathBuf> {
    if std::env::var_os("HARNESS_REQUIRE_CHROMIUM").is_some() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chromium");
        let out = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "HARNESS_REQUIRE_CHROMIUM is set, but {} could not install chromium",
            script.display()
        );
        return Some(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ));
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        println!(
            "SKIPPED: report.html in a browser: no chromium on PATH (scripts/chromium installs \
             it; HARNESS_REQUIRE_CHROMIUM=1 makes this test install it and fail without it)"
        );
    }
    found
}

/// What a headless Chromium made of `page`: its DOM after the scripts ran, and
/// the screenshot `shot` (1280 × 4000). Fails on any console message.
fn open(browser: &Path, page: &Path, shot: &Path, scratch: &Path) -> String {
    let url = format!("file://{}", page.display());
    let run = |args: &[String]| -> (String, String) {
        let mut child = Command::new(browser)
            .args([
                "--headless=new",
                "--disable-gpu",
                // Root (CI, containers) has no sandbox.
                "--no-sandbox",
                "--no-first-run",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!(
                "--user-data-dir={}",
                scratch.join("profile").display()
            ))
            .args(args)
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // Read both pipes while it runs (a full pipe would stall it).
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).ok();
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut s).ok();
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("chromium did not finish with {page:?} in 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        assert!(status.success(), "chromium failed: {err}");
        // Every console message is logged as ":CONSOLE"; the page writes none.
        let console: Vec<&str> = err.lines().filter(|l| l.contains(":CONSOLE")).collect();
        assert!(console.is_empty(), "console messages: {console:#?}");
        (out, err)
    };
    let (dom, _) = run(&["--dump-dom".into()]);
    run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,4000".into(),
    ]);
    assert_eq!(png_size(shot), (1280, 4000), "the screenshot");
    dom
}

/// (width, height) from a PNG's IHDR.
fn png_size(path: &Path) -> (u32, u32) {
    let b = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// A copy of `shot` in the target folder, where a person can find it.
fn keep(shot: &Path, name: &str) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder");
    let to = target.join(name);
    fs::copy(shot, &to).unwrap();
    println!("screenshot: {}", to.display());
}

/// The page's source loads nothing: no external script, style, image or font,
/// and every link is an anchor in the page.
fn self_contained(html: &str) {
    for bad in ["<link", " src=", "url(", "@import", "<img", "<iframe"] {
        assert!(!html.contains(bad), "report.html has {bad:?}");
    }
    for (k, _) in html.match_indices("href=\"") {
        let target = &html[k + 6..];
        assert!(
            target.starts_with('#'),
            "a link out of the page: {}",
            &target[..target.len().min(80)]
        );
    }
}

/// The rendered body: no error recorded, the sorting script ran.
fn rendered_cleanly(dom: &str) {
    let body = &dom[dom.find("<body").expect("a body")..];
    let tag = &body[..body.find('>').unwrap()];
    assert!(!tag.contains("data-errors"), "errors on the page: {tag}");
    assert!(
        tag.contains("data-ready=\"sortable\""),
        "the page's script did not run: {tag}"
    );
}

/// `**x**` and `` `y` `` as HTML, as the page shows the decision's words.
fn as_html(md: &str) -> String {
    let mut out = String::new();
    for (k, part) in md.split("**").enumerate() {
        if k % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            for (j, p) in part.split('`').enumerate() {
                if j % 2 == 1 {
                    out.push_str(&format!("<code>{p}</code>"));
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

#[test]
fn report_html_renders_its_decision_and_every_plot_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("mocked.toml");
    fs::write(&s, SCENARIO).unwrap();
    let out = common::harness_with(dir.path(), "results", &["run", s.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let run = fs::read_dir(dir.path().join("results"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let page = run.join("report.html");
    let html = fs::read_to_string(&page).unwrap();
    self_contained(&html);

    // Every plot the run drew, by its SVG file.
    let mut plots: Vec<String> = fs::read_dir(&run)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".svg").map(str::to_string)
        })
        .collect();
    plots.sort();
    assert_eq!(
        plots,
        [
            "breakdown",
            "latency",
            "requests",
            "scaling",
            "throughput",
            "timeline"
        ]
    );
    // The SVGs in the page are the files, byte for byte.
    for name in &plots {
        let svg = fs::read_to_string(run.join(format!("{name}.svg"))).unwrap();
        assert!(html.contains(svg.trim()), "{name}.svg is not inline");
    }
    // The description's markup is text, not markup.
    assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"), "{html}");

    let results = Results::load(&run.join("results.json")).unwrap();
    let decision = report::decision(&Analysis::of(&results));
    let first = decision.split(" (").next().unwrap();
    let expected = as_html(first);
    assert!(
        expected.contains("was fastest on <code>mocked</code>"),
        "{expected}"
    );

    let Some(browser) = chromium() else { return };
    let shot = dir.path().join("report-html.png");
    let dom = open(&browser, &page, &shot, dir.path());
    rendered_cleanly(&dom);
    // The decision, first: before the run's details, every table and every plot.
    let lead = dom.find("id=\"lead\"").expect("the decision's section");
    let said = dom
        .find(&expected)
        .unwrap_or_else(|| panic!("no {expected:?} in {dom}"));
    assert!(lead < said, "the decision is not in its section");
    for later in ["id=\"run\"", "<table", "<svg", "id=\"terms\""] {
        let at = dom
            .find(later)
            .unwrap_or_else(|| panic!("no {later} in the page"));
        assert!(said < at, "{later} comes before the decision");
    }
    // Every plot, as SVG in its figure, with its text.
    assert_eq!(dom.matches("<svg").count(), plots.len());
    for name in &plots {
        let fig = dom
            .find(&format!("<figure id=\"plot-{name}\""))
            .unwrap_or_else(|| panic!("no figure for {name}"));
        let rest = &dom[fig..];
        let figure = &rest[..rest.find("</figure>").unwrap()];
        assert!(figure.contains("<svg"), "{name}: no svg");
        assert!(figure.contains("<text"), "{name}: an svg without text");
    }
    // Tables anchored by section, headings anchored.
    for id in [
        "throughput-table",
        "latency-per-stage-table",
        "object-store-requests-table",
        "requests-in-flight-against-little-s-law-table",
    ] {
        assert!(
            dom.contains(&format!("<table id=\"{id}\" class=\"sortable\"")),
            "no table {id}"
        );
    }
    for id in ["decision", "run", "throughput", "plots", "terms"] {
        assert!(dom.contains(&format!("<h2 id=\"{id}\"")), "no heading {id}");
    }
    keep(&shot, "report-html-screenshot.png");
}

#[test]
fn a_merged_split_jobs_page_shows_its_verdict_first_and_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let md = "# mocked: 2 shards (merged)\n\nMerged 2026-01-01T00:00:00Z from `x`. Scenario `s`.\n\n\
**Not complete: a shard is missing or failed, or the output did not verify (below).**\n\n\
## Shards\n\n| shard | status | host | inputs | why / rerun |\n|---|---|---|---:|---|\n\
| 0 of 2 | ok | a | 12 | |\n| 1 of 2 | missing | – | 0 | no results; rerun: `harness run --shard 1/2` |\n\n\
## Terms\n\n- **straggler ratio**: the slowest shard's wall time / the median shard's.\n";
    let bar = |shard, start, end, backend: usize, warmup| harness::merge::Bar {
        shard,
        start,
        end,
        backend,
        label: ["sequential", "tokio-rayon-crate"][backend].to_string(),
        warmup,
    };
    let bars = [
        bar(0, 0.0, 1.0, 0, true),
        bar(0, 1.0, 3.0, 0, false),
        bar(1, 0.2, 2.5, 1, false),
    ];
    report::write_cluster(md, &bars, dir.path()).unwrap();
    let page = dir.path().join("report.html");
    let html = fs::read_to_string(&page).unwrap();
    self_contained(&html);
    let svg = fs::read_to_string(dir.path().join("cluster-timeline.svg")).unwrap();
    assert!(html.contains(svg.trim()));
    let Some(browser) = chromium() else { return };
    let shot = dir.path().join("cluster.png");
    let dom = open(&browser, &page, &shot, dir.path());
    rendered_cleanly(&dom);
    let verdict = dom
        .find("<strong>Not complete")
        .expect("the verdict in the page");
    let lead = dom.find("id=\"lead\"").unwrap();
    let table = dom
        .find("<table id=\"shards-table\"")
        .expect("the shards' table");
    assert!(lead < verdict && verdict < table);
    let figure = dom
        .find("<figure id=\"plot-cluster-timeline\"")
        .expect("the timeline");
    assert!(dom[figure..].contains("<svg"));
    assert!(dom.find("<h2 id=\"terms\"").unwrap() > figure, "terms last");
    keep(&shot, "report-html-screenshot-cluster.png");
}
