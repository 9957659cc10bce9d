//! The metering wrapper against a real S3 server (Garage, `scripts/s3-server
//! start && eval "$(scripts/s3-server env)"`, as `.ci/run` does): every request is
//! counted by kind, with its bytes, errors and times; 1024 GETs at once are 1024
//! requests in flight and open on the order of 1024 connections (no hidden cap in
//! the client). Without an S3 endpoint the tests say so and pass, unless
//! `HARNESS_REQUIRE_S3` is set, when they fail. The in-memory store, and retries
//! against a closed port, need no server and are checked always.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::ObjectStoreExt;
use rechunk_contract::{Counters, Io, Recorder, RequestDone, RequestKind, Stage};
use stores::{block_on, S3Config, Store, StoreUrl};

/// Counters plus every finished request as it was reported, to check the times.
#[derive(Default)]
struct Seen {
    counters: Counters,
    done: Mutex<Vec<(RequestKind, RequestDone)>>,
}

impl Recorder for Seen {
    fn stage_done(&self, stage: Stage, started: Instant, bytes: u64) {
        self.counters.stage_done(stage, started, bytes)
    }
    fn io_begin(&self, io: Io) {
        self.counters.io_begin(io)
    }
    fn io_end(&self, io: Io) {
        self.counters.io_end(io)
    }
    fn bytes_reserved(&self, n: u64) {
        self.counters.bytes_reserved(n)
    }
    fn bytes_released(&self, n: u64) {
        self.counters.bytes_released(n)
    }
    fn request_begin(&self, kind: RequestKind) {
        self.counters.request_begin(kind)
    }
    fn request_end(&self, kind: RequestKind, done: &RequestDone) {
        self.done.lock().unwrap().push((kind, *done));
        self.counters.request_end(kind, done)
    }
    fn http_attempt(&self, failed: bool) {
        self.counters.http_attempt(failed)
    }
}

/// The configured S3 test bucket, or `None` (said on stderr) when there is none.
fn s3_bucket() -> Option<String> {
    if !S3Config::default().configured() {
        assert!(
            std::env::var_os("HARNESS_REQUIRE_S3").is_none(),
            "HARNESS_REQUIRE_S3 is set but no S3 endpoint is configured \
             (eval \"$(scripts/s3-server env)\")"
        );
        eprintln!("SKIPPED: no S3 endpoint configured (eval \"$(scripts/s3-server env)\")");
        return None;
    }
    Some(std::env::var("HARNESS_S3_BUCKET").unwrap_or_else(|_| "harness".into()))
}

/// A prefix no other test or run uses.
fn fresh(bucket: &str, what: &str) -> StoreUrl {
    static N: AtomicU64 = AtomicU64::new(0);
    StoreUrl::parse(&format!(
        "s3://{bucket}/tests/metered-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

fn open(url: &StoreUrl, memory: Option<&Arc<InMemory>>) -> (Store, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let store = Store::open_recorded(
        url,
        Path::new("/"),
        memory,
        &S3Config::default(),
        seen.clone(),
    )
    .unwrap();
    (store, seen)
}

/// Puts, GETs (whole, ranged, missing), a HEAD, a list and a delete: each counted
/// under its kind with its bytes, the missing one as an error, every request's
/// first byte between its start and its end, nothing left in flight.
fn requests_are_counted_and_timed(store: &Store, seen: &Seen, class: &str) {
    block_on(async {
        for i in 0..5u8 {
            store.put(&format!("k{i}"), vec![i; 1000]).await.unwrap();
        }
        assert_eq!(store.fetch("k1").await.unwrap(), vec![1; 1000]);
        let got = store
            .inner
            .get_range(&store.path("k2"), 10..110)
            .await
            .unwrap();
        assert_eq!(got.len(), 100);
        assert_eq!(
            store.inner.head(&store.path("k3")).await.unwrap().size,
            1000
        );
        assert!(store.get_if_exists("nothing").await.unwrap().is_none());
        assert_eq!(store.list().await.unwrap().len(), 5);
        store.inner.delete(&store.path("k4")).await.unwrap();
    })
    .unwrap();
    let snap = seen.counters.snapshot();
    let count = |op: &str| {
        let r = snap.requests.get(&format!("{class} {op}"));
        r.map(|r| (r.count, r.bytes, r.errors)).unwrap_or_default()
    };
    assert_eq!(count("put"), (5, 5000, 0), "{snap:?}");
    assert_eq!(count("get"), (2, 1000, 1), "{snap:?}");
    assert_eq!(count("get_range"), (1, 100, 0), "{snap:?}");
    assert_eq!(count("head"), (1, 0, 0), "{snap:?}");
    assert_eq!(count("list"), (1, 0, 0), "{snap:?}");
    assert_eq!(count("delete"), (1, 0, 0), "{snap:?}");
    assert_eq!(seen.counters.requests_in_flight(), 0);
    assert_eq!(snap.max_requests_in_flight, 1);
    let done = seen.done.lock().unwrap();
    assert_eq!(done.len(), 11);
    for (kind, d) in done.iter() {
        assert!(
            d.started <= d.first_byte && d.first_byte <= d.ended,
            "{kind:?}: {d:?}"
        );
    }
    if class == "s3" {
        // One HTTP exchange per request here (a single page of list, a single
        // key deleted), so retries would show as attempts beyond 11.
        assert!(snap.http_attempts >= 11, "{snap:?}");
        assert_eq!(snap.http_failed_attempts, 0, "{snap:?}");
    } else {
        assert_eq!(snap.http_attempts, 0, "{snap:?}");
    }
}

#[test]
fn memory_requests_are_counted_and_timed() {
    let memory = Arc::new(InMemory::new());
    let (store, seen) = open(&StoreUrl::Memory, Some(&memory));
    requests_are_counted_and_timed(&store, &seen, "memory");
}

#[test]
fn s3_requests_are_counted_and_timed() {
    let Some(bucket) = s3_bucket() else { return };
    let (store, seen) = open(&fresh(&bucket, "counted"), None);
    requests_are_counted_and_timed(&store, &seen, "s3");
}

/// A GET's total time ends when its body is read, not when the call returns: a
/// body held unread for 200 ms keeps the request in flight that long.
#[test]
fn a_get_lasts_until_its_body_is_read() {
    let Some(bucket) = s3_bucket() else { return };
    let (store, seen) = open(&fresh(&bucket, "body"), None);
    block_on(async {
        store.put("big", vec![7; 1 << 20]).await.unwrap();
        let got = store.inner.get(&store.path("big")).await.unwrap();
        assert_eq!(seen.counters.requests_in_flight(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(got.bytes().await.unwrap().len(), 1 << 20);
    })
    .unwrap();
    assert_eq!(seen.counters.requests_in_flight(), 0);
    let done = seen.done.lock().unwrap();
    let (_, get) = done.iter().find(|(k, _)| k.name() == "s3 get").unwrap();
    assert!(
        get.ended - get.first_byte >= Duration::from_millis(200),
        "{get:?}"
    );
    assert_eq!(get.bytes, 1 << 20);
}

/// TCP connections from this process to `port` in state ESTABLISHED
/// (`/proc/net/tcp`, loopback IPv4). Each end of a loopback connection is a line;
/// only the client's side has the server's port as its remote port.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// 1024 GETs at once, each holding its response's body unread until all have
/// answered: all 1024 are in flight together by the gauge, on most of 1024 HTTP/1
/// connections open at that moment. A cap anywhere in the client (object_store,
/// reqwest, hyper's pool) would hold the connections at its size, or leave
/// requests waiting for a connection, and the test would fail or time out.
#[test]
fn a_thousand_gets_at_once_are_all_in_flight() {
    let Some(bucket) = s3_bucket() else { return };
    const N: usize = 1024;
    let url = fresh(&bucket, "inflight");
    let (store, seen) = open(&url, None);
    let port = S3Config::default()
        .endpoint()
        .and_then(|e| {
            e.rsplit_once(':')?
                .1
                .trim_end_matches('/')
                .parse::<u16>()
                .ok()
        })
        .unwrap_or(80);
    block_on(async {
        let (up, _) = open(&url, None);
        futures::stream::iter(0..N)
            .map(|i| {
                let up = &up;
                async move {
                    up.put(&format!("o{i:04}"), vec![(i % 251) as u8; 512])
                        .await
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    })
    .unwrap();
    let (bodies, held, connections, took) = block_on(async {
        let started = Instant::now();
        let answered = tokio::time::timeout(
            Duration::from_secs(120),
            futures::future::try_join_all((0..N).map(|i| {
                let store = &store;
                async move { store.inner.get(&store.path(&format!("o{i:04}"))).await }
            })),
        )
        .await
        .expect("1024 GETs answered within 2 minutes: something caps the requests in flight")
        .unwrap();
        let took = started.elapsed();
        let held = seen.counters.requests_in_flight();
        let connections = connections_to(port);
        let bodies = futures::future::try_join_all(answered.into_iter().map(|g| g.bytes()))
            .await
            .unwrap();
        (bodies, held, connections, took)
    })
    .unwrap();
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(&b[..], &vec![(i % 251) as u8; 512][..], "object o{i:04}");
    }
    let snap = seen.counters.snapshot();
    eprintln!(
        "{N} GETs answered in {:.0} ms: {held} in flight, {connections} connections to port \
         {port}; HTTP attempts {}",
        took.as_secs_f64() * 1e3,
        snap.http_attempts,
    );
    assert_eq!(held, N as u64, "{snap:?}");
    assert_eq!(snap.max_requests_in_flight, N as u64, "{snap:?}");
    // hyper hands a connection back to the pool once a small body has arrived
    // whole, read or not, so a request made after that may reuse it: most of the
    // 1024, not all (749 to 1024 seen on loopback). A cap would hold them at its
    // size.
    assert!(
        connections >= N / 2,
        "{connections} connections for {N} GETs held at once"
    );
    assert_eq!(snap.requests["s3 get"].count, N as u64);
    assert_eq!(snap.requests["s3 get"].errors, 0);
    assert_eq!(seen.counters.requests_in_flight(), 0);
    // One HTTP exchange per GET: no retry.
    assert_eq!(snap.http_attempts, N as u64, "{snap:?}");
}

/// Retries are seen as HTTP attempts: a request to a port where nothing listens
/// (9, discard, on loopback) is refused, retried `S3_MAX_RETRIES` times by
/// object_store, and ends in one failed request: 1 + retries attempts, all
/// failed. Needs no server.
#[test]
fn retries_show_as_failed_http_attempts() {
    let seen = Arc::new(Seen::default());
    let store = Store::open_recorded(
        &StoreUrl::parse("s3://nowhere/retries").unwrap(),
        Path::new("/"),
        None,
        &S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("garage".into()),
            access_key_id: Some("GKdoesnotmatter".into()),
            secret_access_key: Some("notasecret".into()),
            allow_http: Some(true),
        },
        seen.clone(),
    )
    .unwrap();
    assert!(block_on(store.fetch("k")).unwrap().is_err());
    let snap = seen.counters.snapshot();
    let attempts = 1 + stores::S3_MAX_RETRIES as u64;
    assert_eq!(
        (snap.http_attempts, snap.http_failed_attempts),
        (attempts, attempts),
        "{snap:?}"
    );
    let get = &snap.requests["s3 get"];
    assert_eq!((get.count, get.errors), (1, 1));
    assert_eq!(seen.counters.requests_in_flight(), 0);
}
