//! The deployment files under deploy/ agree with what the harness reads in shard
//! mode: the Kubernetes Indexed Job (shard index from JOB_COMPLETION_INDEX, shard
//! count from HARNESS_SHARDS = .spec.completions) and the Slurm array script
//! (index and count from SLURM_ARRAY_TASK_ID / _MIN / _COUNT). Neither may pass
//! `--shard`, which would override the scheduler's index with one fixed shard.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const K8S: &str = "deploy/kubernetes/indexed-job.yaml";
const SLURM: &str = "deploy/slurm/rechunk.sbatch";

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: cannot read: {e}"))
}

/// `v` at the dotted `field` (numbers index sequences), or a panic naming the
/// file, the document and the field.
fn at<'a>(v: &'a Value, doc: &str, field: &str) -> &'a Value {
    get(v, field).unwrap_or_else(|| panic!("{K8S}: {doc}: {field} is missing"))
}

fn get<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    field
        .split('.')
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
}

fn str_at<'a>(v: &'a Value, doc: &str, field: &str) -> &'a str {
    at(v, doc, field)
        .as_str()
        .unwrap_or_else(|| panic!("{K8S}: {doc}: {field} is not a string"))
}

fn u64_at(v: &Value, doc: &str, field: &str) -> u64 {
    at(v, doc, field)
        .as_u64()
        .unwrap_or_else(|| panic!("{K8S}: {doc}: {field} is not a non-negative integer"))
}

/// Every non-empty document of the file, with a name for messages.
fn k8s_documents() -> Vec<(String, Value)> {
    let text = read(K8S);
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let v = Value::deserialize(de).unwrap_or_else(|e| panic!("{K8S}: document {i}: {e}"));
        if v.is_null() {
            continue;
        }
        let name = match get(&v, "metadata.name").and_then(Value::as_str) {
            Some(n) => format!(
                "{} {n}",
                get(&v, "kind").and_then(Value::as_str).unwrap_or("?")
            ),
            None => format!("document {i}"),
        };
        docs.push((name, v));
    }
    docs
}

/// The pod template's containers, each with its name for messages.
fn containers<'a>(job: &'a Value, doc: &str) -> Vec<(String, &'a Value)> {
    let list = at(job, doc, "spec.template.spec.containers")
        .as_sequence()
        .unwrap_or_else(|| panic!("{K8S}: {doc}: spec.template.spec.containers is not a list"));
    assert!(
        !list.is_empty(),
        "{K8S}: {doc}: spec.template.spec.containers is empty"
    );
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let name = get(c, "name").and_then(Value::as_str).unwrap_or("?");
            (
                format!("{doc}: spec.template.spec.containers[{i}] ({name})"),
                c,
            )
        })
        .collect()
}

/// The container's `env` entry called `name`.
fn env_entry<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    get(container, "env")?
        .as_sequence()?
        .iter()
        .find(|e| get(e, "name").and_then(Value::as_str) == Some(name))
}

/// The literal `value` of the container's env variable `name`, or a panic.
fn env_value<'a>(container: &'a Value, where_: &str, name: &str) -> &'a str {
    let entry = env_entry(container, name)
        .unwrap_or_else(|| panic!("{K8S}: {where_}: env {name} is not set"));
    get(entry, "value")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{K8S}: {where_}: env {name} has no literal string value"))
}

/// command + args as words: an element holding a shell line (`sh -c "..."`) is
/// split on whitespace, and `$(NAME)` (Kubernetes' own expansion) is replaced by
/// the container's literal env value.
fn command_words(container: &Value) -> Vec<String> {
    let mut words = Vec::new();
    for key in ["command", "args"] {
        for item in get(container, key)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let s = item.as_str().unwrap_or_default();
            for w in s.split_whitespace() {
                let w = w.trim_matches(|c| c == '"' || c == '\'');
                let expanded = w
                    .strip_prefix("$(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|var| env_entry(container, var))
                    .and_then(|e| get(e, "value"))
                    .and_then(Value::as_str);
                words.push(expanded.unwrap_or(w).to_string());
            }
        }
    }
    words
}

/// The words after `harness SUB` (the program may be given by path), if the
/// words invoke it.
fn after_subcommand<'a>(words: &'a [String], sub: &str) -> Option<&'a [String]> {
    words
        .windows(2)
        .position(|w| (w[0] == "harness" || w[0].ends_with("/harness")) && w[1] == sub)
        .map(|i| &words[i + 2..])
}

fn is_shard_flag(word: &str) -> bool {
    word == "--shard" || word.starts_with("--shard=")
}

fn find_job<'a>(
    docs: &'a [(String, Value)],
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> &'a (String, Value) {
    let found: Vec<_> = docs.iter().filter(|(_, v)| pred(v)).collect();
    assert_eq!(
        found.len(),
        1,
        "{K8S}: expected exactly one {what} document, found {}",
        found.len()
    );
    found[0]
}

/// Whether a container of the Job runs `harness SUB`.
fn runs(job: &Value, sub: &str) -> bool {
    job.get("spec")
        .and_then(|s| get(s, "template.spec.containers"))
        .and_then(Value::as_sequence)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| after_subcommand(&command_words(c), sub).is_some())
        })
}

/// Whether `path` lies under one of the container's `volumeMounts`.
fn mounted(container: &Value, path: &str) -> bool {
    get(container, "volumeMounts")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|m| get(m, "mountPath").and_then(Value::as_str))
        .any(|m| {
            let m = m.trim_end_matches('/');
            path == m || path.starts_with(&format!("{m}/"))
        })
}

#[test]
fn kubernetes_indexed_job_gives_the_harness_its_shard_from_the_job() {
    let docs = k8s_documents();
    let (doc, job) = find_job(&docs, "Indexed Job (the shards)", |v| {
        get(v, "spec.completionMode").is_some()
    });
    let doc = doc.as_str();

    assert_eq!(
        str_at(job, doc, "apiVersion"),
        "batch/v1",
        "{K8S}: {doc}: apiVersion"
    );
    assert_eq!(str_at(job, doc, "kind"), "Job", "{K8S}: {doc}: kind");
    assert_eq!(
        str_at(job, doc, "spec.completionMode"),
        "Indexed",
        "{K8S}: {doc}: spec.completionMode must be Indexed, or pods get no JOB_COMPLETION_INDEX"
    );
    let completions = u64_at(job, doc, "spec.completions");
    assert!(
        completions >= 1,
        "{K8S}: {doc}: spec.completions must be at least 1"
    );
    if get(job, "spec.parallelism").is_some() {
        let parallelism = u64_at(job, doc, "spec.parallelism");
        assert!(
            parallelism <= completions,
            "{K8S}: {doc}: spec.parallelism ({parallelism}) exceeds spec.completions ({completions})"
        );
    }
    assert_eq!(
        str_at(job, doc, "spec.template.spec.restartPolicy"),
        "Never",
        "{K8S}: {doc}: spec.template.spec.restartPolicy (backoffLimitPerIndex needs Never)"
    );

    let runners: Vec<_> = containers(job, doc)
        .into_iter()
        .filter(|(_, c)| after_subcommand(&command_words(c), "run").is_some())
        .collect();
    assert_eq!(
        runners.len(),
        1,
        "{K8S}: {doc}: expected one container whose command/args run `harness run`, found {}",
        runners.len()
    );
    let (where_, c) = &runners[0];
    let words = command_words(c);
    assert!(
        !words.iter().any(|w| is_shard_flag(w)),
        "{K8S}: {where_}: command/args pass --shard ({words:?}); the index must come from JOB_COMPLETION_INDEX"
    );
    let scenario = after_subcommand(&words, "run")
        .and_then(|rest| rest.iter().find(|w| !w.starts_with('-')))
        .unwrap_or_else(|| panic!("{K8S}: {where_}: `harness run` is given no scenario file"));
    assert!(
        mounted(c, scenario),
        "{K8S}: {where_}: the scenario {scenario} is not under any volumeMounts[].mountPath"
    );
    assert!(
        env_entry(c, "JOB_COMPLETION_INDEX").is_none(),
        "{K8S}: {where_}: env JOB_COMPLETION_INDEX is set by hand; Kubernetes sets it per pod"
    );

    let shards = env_value(c, where_, "HARNESS_SHARDS");
    assert_eq!(
        shards.trim().parse::<u64>().ok(),
        Some(completions),
        "{K8S}: {where_}: env HARNESS_SHARDS ({shards:?}) must equal spec.completions ({completions})"
    );
    for var in ["HARNESS_DATA_DIR", "HARNESS_RESULTS_DIR"] {
        let dir = env_value(c, where_, var);
        assert!(
            mounted(c, dir),
            "{K8S}: {where_}: env {var} ({dir}) is not under any volumeMounts[].mountPath"
        );
    }
    let url = env_value(c, where_, "HARNESS_RESULTS_URL");
    assert!(
        url.starts_with("s3://") && url.len() > "s3://".len(),
        "{K8S}: {where_}: env HARNESS_RESULTS_URL ({url:?}) must be an s3://bucket/prefix URL"
    );

    let (merge_doc, merge) = find_job(&docs, "merge Job (`harness merge`)", |v| runs(v, "merge"));
    assert_eq!(
        str_at(merge, merge_doc, "apiVersion"),
        "batch/v1",
        "{K8S}: {merge_doc}: apiVersion"
    );
    assert_eq!(
        str_at(merge, merge_doc, "kind"),
        "Job",
        "{K8S}: {merge_doc}: kind"
    );
    let merged: Vec<String> = containers(merge, merge_doc)
        .iter()
        .filter_map(|(_, c)| {
            let words = command_words(c);
            after_subcommand(&words, "merge")
                .and_then(|rest| rest.iter().find(|w| !w.starts_with('-')).cloned())
        })
        .collect();
    assert_eq!(
        merged
            .iter()
            .map(|l| l.trim_end_matches('/'))
            .collect::<Vec<_>>(),
        [url.trim_end_matches('/')],
        "{K8S}: {merge_doc}: `harness merge` must read the shards' HARNESS_RESULTS_URL ({url})"
    );

    find_job(&docs, "staging Job (`harness gen --store s3://...`)", |v| {
        v.get("spec")
            .and_then(|s| get(s, "template.spec.containers"))
            .and_then(Value::as_sequence)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    after_subcommand(&command_words(c), "gen").is_some_and(|rest| {
                        rest.windows(2)
                            .any(|w| w[0] == "--store" && w[1].starts_with("s3://"))
                    })
                })
            })
    });
}

#[test]
fn kubernetes_s3_credentials_come_from_secrets() {
    for (doc, v) in k8s_documents() {
        if get(&v, "kind").and_then(Value::as_str) != Some("Job") {
            continue;
        }
        for (where_, c) in containers(&v, &doc) {
            for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                let entry = env_entry(c, name)
                    .unwrap_or_else(|| panic!("{K8S}: {where_}: env {name} is not set"));
                assert!(
                    get(entry, "valueFrom.secretKeyRef.name").is_some()
                        && get(entry, "valueFrom.secretKeyRef.key").is_some(),
                    "{K8S}: {where_}: env {name} must come from valueFrom.secretKeyRef (name and key)"
                );
            }
            for entry in get(c, "env")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let name = get(entry, "name").and_then(Value::as_str).unwrap_or("?");
                let secret = [
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN",
                ]
                .contains(&name);
                assert!(
                    !(secret && get(entry, "value").is_some()),
                    "{K8S}: {where_}: env {name} has a literal value; credentials belong in a Secret"
                );
            }
        }
    }
}

/// The script's lines that are neither blank nor comments.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn slurm_array_size_is_the_shard_count() {
    let text = read(SLURM);
    let arrays: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#SBATCH"))
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("--array=")
                .or_else(|| l.strip_prefix("-a "))
                .or_else(|| l.strip_prefix("--array "))
        })
        .map(str::trim)
        .collect();
    assert_eq!(
        arrays.len(),
        1,
        "{SLURM}: expected one `#SBATCH --array=A-B` line, found {arrays:?}"
    );
    // A `%k` throttle limits how many tasks run at once; the count stays B-A+1.
    let range = arrays[0].split('%').next().unwrap();
    let (a, b) = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .unwrap_or_else(|| {
            panic!(
                "{SLURM}: #SBATCH --array={} must be one contiguous range A-B (no step, no list): \
                 the harness's shard is SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of \
                 SLURM_ARRAY_TASK_COUNT",
                arrays[0]
            )
        });
    assert!(a <= b, "{SLURM}: #SBATCH --array={range}: A > B");
    // What the harness derives in each task: shard = ID - MIN of COUNT.
    let count = b - a + 1;
    let shards: Vec<u64> = (a..=b).map(|id| id - a).collect();
    assert_eq!(
        shards,
        (0..count).collect::<Vec<_>>(),
        "{SLURM}: #SBATCH --array={range}: task IDs minus the minimum must be 0..{count}"
    );
    // Nothing in the script may name another shard count than the array's.
    for line in code_lines(&text) {
        if let Some(rest) = line.split("HARNESS_SHARDS=").nth(1) {
            let n: String = rest
                .trim_matches(|c| c == '"' || c == '\'')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert_eq!(
                n.parse::<u64>().ok(),
                Some(count),
                "{SLURM}: sets HARNESS_SHARDS ({line}) unlike the array's size {count} (--array={range})"
            );
        }
    }
}

#[test]
fn slurm_script_runs_the_harness_without_a_fixed_shard() {
    let text = read(SLURM);
    let code = code_lines(&text);
    let runs: Vec<&&str> = code
        .iter()
        .filter(|l| {
            let words: Vec<String> = l.split_whitespace().map(String::from).collect();
            after_subcommand(&words, "run").is_some()
        })
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "{SLURM}: expected one line running `harness run`, found {runs:?}"
    );
    assert!(
        !runs[0].split_whitespace().any(is_shard_flag),
        "{SLURM}: `{}` passes --shard; the index must come from SLURM_ARRAY_TASK_ID",
        runs[0]
    );
    for var in ["HARNESS_DATA_DIR", "HARNESS_RESULTS_DIR"] {
        assert!(
            code.iter().any(|l| l
                .strip_prefix("export ")
                .unwrap_or(l)
                .starts_with(&format!("{var}="))),
            "{SLURM}: does not set {var} (as `export {var}=...`) before `harness run`"
        );
        let set = code.iter().position(|l| {
            l.strip_prefix("export ")
                .unwrap_or(l)
                .starts_with(&format!("{var}="))
        });
        let run = code.iter().position(|l| l == runs[0]);
        assert!(set < run, "{SLURM}: {var} is set after `harness run`");
    }
    assert!(
        code.iter().any(|l| l.starts_with("set -euo pipefail")),
        "{SLURM}: no `set -euo pipefail`"
    );
}

#[test]
fn slurm_script_parses_as_bash() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(path(SLURM))
        .output()
        .unwrap_or_else(|e| panic!("{SLURM}: cannot run bash -n: {e}"));
    assert!(
        out.status.success(),
        "{SLURM}: bash -n rejects it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
