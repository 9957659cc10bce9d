//! The text of `report.md`, one function per section, from the run's [`Analysis`].

use std::fmt::Write as _;

use super::{decision, fmt_rate, fmt_us};
use crate::analysis::{Analysis, BackendFigures, LEVEL};
use crate::scenario::Recording;

/// The markdown text (without the plot links).
pub fn markdown(a: &Analysis) -> String {
    let s = Sections::of(a);
    [s.title, s.run, s.decision, s.body, s.terms].concat()
}

/// The report's text in parts, so the HTML page can order them its own way.
pub struct Sections {
    /// The `# ` line.
    pub title: String,
    /// What the run happened on (no heading of its own in `report.md`).
    pub run: String,
    /// `## Decision` and its text.
    pub decision: String,
    /// The tables and notes.
    pub body: String,
    /// `## Terms`.
    pub terms: String,
}

impl Sections {
    pub fn of(a: &Analysis) -> Sections {
        let s = &a.results.scenario;
        Sections {
            title: format!("# {}: {}\n\n", s.name, s.description),
            run: header(a),
            decision: format!("## Decision\n\n{}\n", decision(a)),
            body: [
                throughput(a),
                ceilings(a),
                time_split(a),
                not_counted(a),
                latency(a),
                requests(a),
                littles_law(a),
                recording(a),
            ]
            .concat(),
            terms: terms(a),
        }
    }
}

/// What the run happened on.
fn header(a: &Analysis) -> String {
    let r = a.results;
    let (s, m) = (&r.scenario, &r.machine);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} · {} cores, {} · kernel {} · data on {} · cache {} · {} repetitions per backend · harness {} ({}{})\n",
        // To the second: the nanoseconds of the file's RFC 3339 say nothing here.
        chrono::DateTime::parse_from_rfc3339(&r.started_at)
            .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| r.started_at.clone()),
        m.cores,
        m.cpu_model,
        m.kernel,
        m.data_filesystem,
        s.run.cache.name(),
        s.run.repetitions,
        r.harness_version,
        r.git_commit.get(..12).unwrap_or(&r.git_commit),
        if r.git_dirty { ", uncommitted changes" } else { "" },
    );
    let _ = writeln!(md, "{}\n", dataset_line(a));
    if let Some(line) = scan_line(a) {
        let _ = writeln!(md, "{line}\n");
    }
    if let Some(n) = r.network.as_ref().filter(|n| n.s3 || n.mode != "none") {
        let _ = writeln!(md, "Network to the object stores ({}): {n}\n", n.mode);
    }
    let (d, o) = (&s.dataset.params, &s.output.params);
    let shards = o
        .shard
        .map_or(String::new(), |k| format!(" in shards of {k:?} chunks"));
    let _ = writeln!(
        md,
        "Output: {} Zarr, chunks [1, 1, {}, {}, {}]{shards}, zstd level {}.\n",
        s.output.layout, d.steps, o.cy, o.cx, o.zstd_level
    );
    md
}

/// What the inputs were: kind, encoding (and decoder), shape, size on disk.
fn dataset_line(a: &Analysis) -> String {
    let r = a.results;
    let d = &r.scenario.dataset;
    let p = &d.params;
    // The version as recorded when the run was made; the name alone for older files.
    let decoder = match (&r.dataset.decoder, d.decoder) {
        (Some(recorded), _) => format!(", decoder {recorded}"),
        (None, Some(dec)) => format!(", decoder {}", dec.name()),
        (None, None) => String::new(),
    };
    format!(
        "Dataset: {} ({}{decoder}) · {} × {} × {} fields of {}×{} · {} layout · {} messages, {:.1} MB ({:.0} kB each)",
        d.kind,
        p.encoding_name(),
        p.groups,
        p.variables,
        p.steps,
        p.ny,
        p.nx,
        p.layout_name(),
        r.dataset.messages,
        r.dataset.bytes as f64 / 1e6,
        r.dataset.bytes as f64 / r.dataset.messages.max(1) as f64 / 1e3,
    )
}

/// For a grib2-dir dataset: where the files were, how they were scanned, and how
/// outputs were verified (against the reference backend's, not a closed form).
fn scan_line(a: &Analysis) -> Option<String> {
    let scan = a.results.dataset.scan.as_ref()?;
    let how = match &scan.pattern {
        Some(p) => format!("file names matched against `{p}`"),
        None => "the messages' keys".to_string(),
    };
    let reference = a
        .results
        .repetitions
        .iter()
        .filter_map(|r| r.verification.as_ref()?.against.clone())
        .find(|w| w != "structure only" && w != "no reference")
        .map_or(String::new(), |r| {
            format!(
                " Outputs verified against the output of {r}, value for value (no closed form)."
            )
        });
    Some(format!(
        "Source: {} ({} files; groups, variables and steps from {how}; grid {}; {} skipped; scan {:.2} s{}).{reference}",
        scan.source.display(),
        scan.files,
        scan.grid,
        scan.skipped,
        scan.scan_seconds,
        if scan.cached { ", reused from the cache" } else { "" },
    ))
}

/// The throughput table: one row per backend with counted repetitions.
fn throughput(a: &Analysis) -> String {
    let efficiency = a.ceilings().is_some();
    let mut md = String::new();
    let _ = writeln!(md, "## Throughput\n");
    let _ = writeln!(
        md,
        "Only verified repetitions count. CI: {:.0} % bootstrap interval of the median.\n",
        LEVEL * 100.0
    );
    let _ = writeln!(
        md,
        "| backend | {} (median) | 95 % CI | min – max | × sequential |{} CPU ms / 1000 (user + sys) | cores busy | IO in flight (max) | threads | peak RSS | verified |",
        a.unit,
        if efficiency { " efficiency |" } else { "" }
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|{}---:|---:|---:|---:|---:|---|",
        if efficiency { "---:|" } else { "" }
    );
    for f in a.measured() {
        let _ = writeln!(md, "{}", throughput_row(f));
    }
    md
}

fn throughput_row(f: &BackendFigures) -> String {
    let ratio = f.ratio.map_or("–".into(), |r| format!("{r:.2}"));
    let efficiency = f
        .efficiency
        .map_or(String::new(), |e| format!(" {:.0} % |", e * 100.0));
    format!(
        "| {} | {} | {} – {} | {} – {} | {ratio} |{efficiency} {:.0} + {:.0} | {:.0} % | {} | {} | {:.1} MiB | {}/{} |",
        f.label,
        fmt_rate(f.median),
        fmt_rate(f.ci.0),
        fmt_rate(f.ci.1),
        fmt_rate(f.min),
        fmt_rate(f.max),
        f.cpu_ms_per_1000.0,
        f.cpu_ms_per_1000.1,
        f.utilisation * 100.0,
        f.max_io_in_flight,
        f.threads,
        f.peak_rss as f64 / (1u64 << 20) as f64,
        f.rates.len(),
        f.runs,
    )
}

/// The ceilings the efficiencies are taken against, when measured.
fn ceilings(a: &Analysis) -> String {
    a.ceilings().map_or(String::new(), |c| {
        format!(
            "\nEfficiency: throughput / the lower of the two ceilings measured in this run.\n\n{}\n",
            crate::ceilings::table(c)
        )
    })
}

/// Where each backend's core time went per item, beside the CPU ceiling's: the
/// work itself, the design's CPU overhead, idle cores (and how much of that the
/// kernel saw waiting for IO), CPU not charged to it, and the hand-overs per item.
fn time_split(a: &Analysis) -> String {
    let figs = a.measured();
    if figs.is_empty() {
        return String::new();
    }
    let cores = a.results.machine.cores.max(1) as f64;
    let work = a.ceilings().and_then(|c| c.cpu_ms_per_item);
    let ms = |x: f64| {
        if !x.is_finite() {
            "–".to_string()
        } else if x.abs() >= 10.0 {
            format!("{x:.1}")
        } else if x.abs() >= 0.1 {
            format!("{x:.3}")
        } else {
            format!("{x:.4}")
        }
    };
    let opt = |x: Option<f64>| x.map_or("–".to_string(), ms);
    let mut md = String::new();
    let _ = writeln!(md, "\n## Where the time went\n");
    let _ = writeln!(
        md,
        "Per item, in core milliseconds: all {} cores' time during the run divided by the items \
         (so 1000 / ({} per core)), split into this process's CPU (user + system), other \
         CPU (not charged to it: other processes, kernel threads, interrupts) and idle. **iowait** is the part of idle the kernel counted as waiting \
         for block IO. Medians over the verified repetitions, so the parts add up to the total \
         only roughly.",
        cores, a.unit
    );
    match (a.ceilings(), work) {
        (Some(c), Some(w)) => {
            let _ = writeln!(
                md,
                "\nThe CPU ceiling spent {} ms of CPU per item on the work itself (decode + \
                 reduce + encode from memory, {} threads): a backend's CPU beyond that is its \
                 **overhead** (system calls, copies from the page cache, hand-overs, spinning). \
                 A backend at the {} bound would take {} core ms per item.\n",
                ms(w),
                c.cpu_threads,
                c.bound_name(),
                ms(cores * 1e3 / c.bound())
            );
            // The baseline's overhead is the CPU its IO took done the plainest way
            // (one thread, no hand-overs): every design spends at least about that.
            if let Some(base) = a.baseline().filter(|b| b.time.cpu_ms.is_finite()) {
                let io = base.time.overhead_ms(w).max(0.0);
                let best = cores * 1e3 / (w + io);
                let _ = writeln!(
                    md,
                    "`{}` spent {} ms per item beyond the work: the CPU of its reads and writes \
                     done one at a time on one thread, with no hand-over. A design that spent \
                     only that could reach about {} {} ({:.0} % of the CPU ceiling), if its \
                     cores never idled; that, not the ceiling, is what the overheads below are \
                     measured against.\n",
                    base.label,
                    ms(io),
                    fmt_rate(best.min(c.io_per_second)),
                    a.unit,
                    best.min(c.io_per_second) / c.cpu_per_second * 100.0
                );
            }
        }
        (Some(_), None) => {
            let _ = writeln!(
                md,
                "\nThese ceilings were measured before their CPU per item was recorded, so the \
                 work and the overhead are not told apart.\n"
            );
        }
        (None, _) => {
            let _ = writeln!(
                md,
                "\nRun with `--ceilings` to split CPU into the work itself and each design's \
                 overhead.\n"
            );
        }
    }
    let _ = writeln!(
        md,
        "| backend | core ms / item | CPU | of which work | of which overhead | idle | of which iowait | other CPU | switches / item (vol + invol) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    if let (Some(c), Some(w)) = (a.ceilings(), work) {
        let core = cores * 1e3 / c.cpu_per_second;
        let _ = writeln!(
            md,
            "| *CPU ceiling* | {} | {} | {} | – | {} | – | – | – |",
            ms(core),
            ms(w),
            ms(w),
            ms((core - w).max(0.0))
        );
    }
    for f in figs {
        let t = &f.time;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} + {:.2} |",
            f.label,
            ms(t.core_ms),
            ms(t.cpu_ms),
            opt(work),
            opt(work.map(|w| t.overhead_ms(w))),
            ms(t.idle_ms),
            opt(t.iowait_ms),
            opt(t.other_ms),
            t.voluntary_switches,
            t.involuntary_switches,
        );
    }
    md
}

/// Backends skipped, and repetitions that did not count, with why.
fn not_counted(a: &Analysis) -> String {
    let r = a.results;
    let mut md = String::new();
    for k in &r.skipped {
        let _ = writeln!(md, "\n`{}` was skipped: {}", k.label, k.reason);
    }
    for rep in r.repetitions.iter().filter(|r| !r.counts && !r.warmup) {
        let _ = writeln!(
            md,
            "\n`{}` repetition {} did not count: {}",
            rep.label,
            rep.index + 1,
            rep.error.as_deref().unwrap_or("its output did not verify")
        );
    }
    md
}

/// p50 / p99 / max per stage and backend, when any backend recorded histograms.
fn latency(a: &Analysis) -> String {
    let figs = a.measured();
    let mut md = String::new();
    if !figs.iter().any(|f| !f.stages.is_empty()) {
        return md;
    }
    let _ = writeln!(md, "\n## Latency per stage\n");
    let _ = writeln!(
        md,
        "Per item, merged over the verified repetitions: p50 / p99 / max.\n"
    );
    let stages = crate::record::stage_names();
    let present: Vec<&str> = stages
        .iter()
        .copied()
        .filter(|s| figs.iter().any(|f| f.stages.contains_key(*s)))
        .collect();
    let _ = writeln!(md, "| backend | {} |", present.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(present.len()));
    for f in figs {
        let cells: Vec<String> = present
            .iter()
            .map(|s| match f.stages.get(*s) {
                Some(h) => format!(
                    "{} / {} / {}",
                    fmt_us(h.value_at_quantile(0.5) as f64 / 1e3),
                    fmt_us(h.value_at_quantile(0.99) as f64 / 1e3),
                    fmt_us(h.max() as f64 / 1e3)
                ),
                None => "–".into(),
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", f.label, cells.join(" | "));
    }
    md
}

/// The object-store requests of each backend that made any: rates, in flight,
/// retries and cost per repetition, then per kind of request its count, bytes,
/// errors, time to first byte and total time (p50 / p90 / p99 / p99.9) and cost.
fn requests(a: &Analysis) -> String {
    let figs: Vec<&BackendFigures> = a
        .measured()
        .into_iter()
        .filter(|f| f.requests.is_some())
        .collect();
    let mut md = String::new();
    if figs.is_empty() {
        return md;
    }
    let _ = writeln!(
        md,
        "
## Object-store requests
"
    );
    let _ = writeln!(
        md,
        "Per repetition (one pass over the dataset: a model run when the scenario holds one), \
         medians over the verified repetitions. In flight: the most requests outstanding at \
         once (sent, response not yet read to its end) against `io_in_flight`. Retries: HTTP \
         attempts beyond the S3 requests (object_store retries inside its client). \
         Estimated cost: S3 requests only, at {}.\n",
        crate::cost::PRICES.name
    );
    let _ = writeln!(
        md,
        "| backend | requests/s | objects/s | in flight (max / io_in_flight) | HTTP attempts | retries | failed attempts | est. cost per run |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for f in &figs {
        let Some(r) = &f.requests else { continue };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {}{} | {} | {} | {} | {} |",
            f.label,
            fmt_rate(r.per_second),
            fmt_rate(r.objects_per_second),
            r.max_in_flight,
            r.io_in_flight,
            if r.budget_bound {
                " (budget bound)"
            } else {
                ""
            },
            fmt_rate(r.http_attempts),
            fmt_rate(r.retries),
            r.failed_attempts,
            fmt_usd(r.cost_usd),
        );
    }
    let _ = writeln!(
        md,
        "\nPer kind: requests and MB per run, errors (all repetitions), time to first byte \
         (the call's return: a GET's status and headers) and total time (to the body's last \
         byte), p50 / p90 / p99 / p99.9.\n"
    );
    let _ = writeln!(
        md,
        "| backend | request | per run | MB per run | errors | TTFB p50 / p90 / p99 / p99.9 | total p50 / p90 / p99 / p99.9 | est. cost per run |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    for f in &figs {
        let Some(r) = &f.requests else { continue };
        for k in &r.kinds {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {} | {} | {} | {} |",
                f.label,
                k.name,
                fmt_rate(k.count),
                k.bytes / 1e6,
                k.errors,
                percentiles(k.ttfb.as_ref()),
                percentiles(k.total.as_ref()),
                k.cost_usd.map_or("–".into(), fmt_usd),
            );
        }
    }
    md
}

/// p50 / p90 / p99 / p99.9 of a histogram of nanoseconds ("–" without one).
fn percentiles(h: Option<&hdrhistogram::Histogram<u64>>) -> String {
    let Some(h) = h else { return "–".into() };
    [0.5, 0.9, 0.99, 0.999]
        .iter()
        .map(|q| fmt_us(h.value_at_quantile(*q) as f64 / 1e3))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// US dollars: four significant decimals below a cent.
fn fmt_usd(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 0.01 || x == 0.0 {
        format!("${x:.2}")
    } else {
        format!("${x:.6}")
    }
}

/// For a sweep over `io_in_flight` with requests: measured requests/s beside
/// Little's law, `io_in_flight / latency`.
fn littles_law(a: &Analysis) -> String {
    let (points, source) = crate::analysis::littles_law(a);
    let mut md = String::new();
    let Some(source) = source else { return md };
    let _ = writeln!(md, "\n## Requests in flight against Little's law\n");
    let _ = writeln!(
        md,
        "Expected requests/s = io_in_flight / latency, with the latency {source}: what \
         concurrency alone gives until bandwidth, CPU or the server binds (plot `requests`).\n"
    );
    let _ = writeln!(
        md,
        "| backend | io_in_flight | in flight (max) | requests/s measured | expected (Little) | measured / expected |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for p in &points {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} |",
            p.label,
            p.in_flight,
            p.achieved_in_flight,
            fmt_rate(p.measured),
            fmt_rate(p.expected),
            p.measured / p.expected
        );
    }
    md
}

/// Which backends kept counters only (no histograms, no timeline).
/// What every term of the report's tables means, once.
fn terms(a: &Analysis) -> String {
    let unit = &a.unit;
    format!(
        "\n## Terms\n\n\
- **{unit} (median)**: inputs (fields) per second of the timed region, the median over the \
backend's verified repetitions (warm-ups never count).\n\
- **95 % CI**: a seeded bootstrap interval of that median; with five repetitions or fewer it \
is min – max (a resampled median of so few values is the lowest, or the highest, more than \
2.5 % of the time), so it says more than the spread only from six repetitions on.\n\
- **× sequential**: the backend's median divided by `sequential`'s median in the same run (a \
ratio of medians; `harness compare` uses the median of per-round ratios instead, so its \
figure can differ).\n\
- **efficiency**: the median divided by the lower of the IO and CPU ceilings measured in this \
run.\n\
- **CPU ms / 1000 (user + sys)**: the process's user and system CPU time per 1000 inputs, \
medians.\n\
- **cores busy**: (user + system) / (wall × cores), median.\n\
- **IO in flight (max)**, **threads**: the most IO operations outstanding at once and the most \
threads the backend used, over its counted repetitions.\n\
- **peak RSS**: the child process's peak resident memory (`VmHWM`).\n\
- **core ms / item** (*Where the time went*): cores × wall time / items, the core time one \
item took; **CPU** is the process's user + system time per item, **of which work** the CPU \
ceiling's CPU per item (decode + reduce + encode from memory), **of which overhead** the rest; \
**idle** is core time nobody used, **iowait** the part of it the kernel counted as waiting for \
block IO, **other CPU** CPU time during the run not charged to this process (from \
`/proc/stat`: other processes, kernel threads, interrupts, its own reads' interrupts included); \
**switches / item** the process's voluntary (waits) and involuntary (preemptions) context \
switches per item.\n\
- **verified**: repetitions that finished and whose output verified, of those run.\n\
- **read, decode, reduce, encode, write**: an item's wall time in that stage: a read or a \
write from its submission to its completion (time queued for IO included), a decode, reduce \
or encode from its start on a thread to its end (time waiting for a core included). **input**: \
one input from its read being submitted to its push into the reducer, waiting included (a \
backend that keeps many inputs in flight shows a long input time even when it is fast). \
**group**: one group from its first read to its last write.\n\
- **Little's law**: the items in a stage = items per second × the time each spends in it. So a \
backend that keeps more items in flight can show longer stage times although it is faster, and \
requests/s = requests in flight / latency per request.\n\
- **median repetition** (timeline): the backend's verified repetition whose throughput is \
nearest its median.\n\
- **latency CDF**: for each time x, the fraction of items done within x.\n"
    )
}

fn recording(a: &Analysis) -> String {
    let counters_only: Vec<&str> = a
        .measured()
        .into_iter()
        .filter(|f| f.recording == Recording::Counters)
        .map(|f| f.label.as_str())
        .collect();
    if counters_only.is_empty() {
        return String::new();
    }
    format!(
        "\nRecorded with counters only (no histograms or timeline): {}.\n",
        counters_only.join(", ")
    )
}
