//! The stores against a real S3 server: the `.harness-owned` rule, and the errors a
//! user meets (a missing object, refused credentials) as their variants and words.
//!
//! They run when an S3 endpoint is configured (`eval "$(scripts/s3-server env)"`, as
//! `.ci/run` does); without one they say so and pass, unless `HARNESS_REQUIRE_S3` is
//! set, when they fail.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use stores::{block_on, Op, S3Config, Store, StoreError, StoreUrl, MARKER};

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
fn fresh_prefix(bucket: &str, what: &str) -> StoreUrl {
    static N: AtomicU64 = AtomicU64::new(0);
    StoreUrl::parse(&format!(
        "s3://{bucket}/tests/stores-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

fn open(url: &StoreUrl, s3: &S3Config) -> Store {
    Store::open(url, Path::new("."), None, s3).unwrap()
}

#[test]
fn an_s3_prefix_the_harness_did_not_write_is_never_emptied() {
    let Some(bucket) = s3_bucket() else { return };
    let url = fresh_prefix(&bucket, "foreign");
    let store = open(&url, &S3Config::default());
    block_on(async {
        // Someone else's object: refused, kept.
        store.put("theirs/data", b"keep".to_vec()).await.unwrap();
        let e = store.empty_owned(4).await.unwrap_err();
        assert!(matches!(e, StoreError::Refused { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("refusing to empty {url}: ")) && shown.contains(MARKER),
            "{shown}"
        );
        assert_eq!(store.fetch("theirs/data").await.unwrap(), b"keep");
        // Once marked as the harness's, it is emptied and stays marked.
        store.put(MARKER, b"{}".to_vec()).await.unwrap();
        assert_eq!(store.empty_owned(4).await.unwrap(), 1);
        assert_eq!(store.list().await.unwrap(), vec![MARKER.to_string()]);
    })
    .unwrap();
    // An empty prefix is taken and marked.
    let fresh = open(&fresh_prefix(&bucket, "empty"), &S3Config::default());
    block_on(async {
        assert_eq!(fresh.empty_owned(4).await.unwrap(), 0);
        assert_eq!(fresh.list().await.unwrap(), vec![MARKER.to_string()]);
    })
    .unwrap();
}

/// A dataset's way through S3: uploaded with its manifest, found again, downloaded
/// without the prefix's marker; a key that is not there is `NotFound`, named.
#[test]
fn s3_uploads_downloads_and_names_a_missing_object() {
    let Some(bucket) = s3_bucket() else { return };
    let url = fresh_prefix(&bucket, "round-trip");
    let store = open(&url, &S3Config::default());
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("g00000")).unwrap();
    std::fs::write(src.path().join("g00000/s0.msg"), b"message").unwrap();
    std::fs::write(src.path().join("manifest.json"), b"{}").unwrap();
    let dst = tempfile::tempdir().unwrap();
    block_on(async {
        store.empty_owned(4).await.unwrap();
        let up = store
            .upload_dir(src.path(), Some("manifest.json"), 4, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(up, (2, 9));
        assert_eq!(
            store.get_if_exists("manifest.json").await.unwrap(),
            Some(b"{}".to_vec())
        );
        assert_eq!(store.get_if_exists("nothing").await.unwrap(), None);
        let e = store.fetch("g00000/s1.msg").await.unwrap_err();
        assert!(
            matches!(&e, StoreError::NotFound { op: Op::Get, .. }),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{url}/g00000/s1.msg: no such object")),
            "{e}"
        );
        assert_eq!(store.download_to(dst.path()).await.unwrap(), 2);
    })
    .unwrap();
    assert_eq!(
        std::fs::read(dst.path().join("g00000/s0.msg")).unwrap(),
        b"message"
    );
    assert!(!dst.path().join(MARKER).exists());
}

/// Keys the server does not know: `AccessDenied`, saying what to check, never
/// showing the secret.
#[test]
fn wrong_s3_credentials_are_access_denied() {
    let Some(bucket) = s3_bucket() else { return };
    let url = fresh_prefix(&bucket, "creds");
    let store = open(
        &url,
        &S3Config {
            access_key_id: Some("GK0123456789abcdef01234567".into()),
            secret_access_key: Some("wrong-secret-0123456789".into()),
            ..Default::default()
        },
    );
    let e = block_on(store.list()).unwrap().unwrap_err();
    assert!(
        matches!(&e, StoreError::AccessDenied { op: Op::List, .. }),
        "{e:?}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "{url}: cannot list: access denied: check the credentials"
        )),
        "{shown}"
    );
    assert!(!shown.contains("wrong-secret"), "{shown}");
}

/// A shard above the multipart threshold goes up in parts and reads back whole;
/// one at the threshold is one PUT.
#[test]
fn a_large_object_is_uploaded_in_parts_to_s3() {
    let Some(bucket) = s3_bucket() else { return };
    let url = fresh_prefix(&bucket, "multipart");
    let store = open(&url, &S3Config::default());
    let bytes: Vec<u8> = (0..stores::MULTIPART_THRESHOLD + 3 * 1000 * 1000 + 7)
        .map(|i| (i * 7 + i / 4099) as u8)
        .collect();
    block_on(async {
        let path = store.path("c/0/0/0/0/0");
        let put = stores::put_object(
            store.inner.as_ref(),
            &path,
            bytes.clone(),
            stores::MULTIPART_THRESHOLD,
        )
        .await
        .unwrap();
        assert_eq!(put, stores::Put::Multipart { parts: 3 });
        let got = store.fetch("c/0/0/0/0/0").await.unwrap();
        assert!(
            got == bytes,
            "{} bytes read back, {} written",
            got.len(),
            bytes.len()
        );
        let small = store.path("small");
        let put = stores::put_object(
            store.inner.as_ref(),
            &small,
            bytes[..1000].to_vec(),
            stores::MULTIPART_THRESHOLD,
        );
        assert_eq!(put.await.unwrap(), stores::Put::Single);
        assert_eq!(store.list().await.unwrap(), ["c/0/0/0/0/0", "small"]);
    })
    .unwrap();
}
