//! An open store with its root, and the helpers the harness and the backend use on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use rechunk_contract::{NullRecorder, Recorder, StoreClass};

use crate::error::{Op, StoreError};
use crate::metered::{CountingConnector, Metered};
use crate::s3::{
    S3Config, S3_CONNECT_TIMEOUT, S3_MAX_CONNECTIONS, S3_MAX_RETRIES, S3_REQUEST_TIMEOUT,
    S3_RETRY_TIMEOUT,
};
use crate::url::StoreUrl;

/// The object that marks a prefix as written by the harness (the same name as the
/// marker file of its local directories): [`Store::empty_owned`] deletes only
/// under a prefix that holds it, or an empty one.
pub const MARKER: &str = ".harness-owned";

/// An open store with its root: the prefix every key is under.
#[derive(Clone, Debug)]
pub struct Store {
    /// The object_store store itself, for requests the helpers here do not make
    /// (the backend's reads and writes); keys go through [`Store::path`].
    pub inner: Arc<dyn ObjectStore>,
    /// The root, as `file://`, `memory://` or `s3://bucket/prefix`, for messages.
    pub url: String,
    prefix: Vec<String>,
}

impl Store {
    /// Opens `url`. `local_root` is the directory `file://` stands for; `memory` the
    /// in-memory store `memory://` stands for (the caller owns and loads it). Its
    /// requests are metered into nothing: [`Store::open_recorded`] keeps them.
    pub fn open(
        url: &StoreUrl,
        local_root: &Path,
        memory: Option<&Arc<InMemory>>,
        s3: &S3Config,
    ) -> Result<Store, StoreError> {
        Self::open_recorded(url, local_root, memory, s3, Arc::new(NullRecorder))
    }

    /// [`Store::open`], with every request of the store reported to `recorder`
    /// ([`Metered`]: kind, time to first byte, total time, bytes, success, requests
    /// in flight) and, on S3, every HTTP exchange (retries included).
    pub fn open_recorded(
        url: &StoreUrl,
        local_root: &Path,
        memory: Option<&Arc<InMemory>>,
        s3: &S3Config,
        recorder: Arc<dyn Recorder>,
    ) -> Result<Store, StoreError> {
        Self::open_layered(url, local_root, memory, s3, recorder, &|store| store)
    }

    /// [`Store::open_recorded`] with `layer` put between the store and the
    /// metering wrapper (an emulated delay such as object_store's `ThrottledStore`,
    /// say), so that what the layer adds is part of every request's measured time.
    pub fn open_layered(
        url: &StoreUrl,
        local_root: &Path,
        memory: Option<&Arc<InMemory>>,
        s3: &S3Config,
        recorder: Arc<dyn Recorder>,
        layer: &dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Result<Store, StoreError> {
        let mut store = Self::open_plain(url, local_root, memory, s3, &recorder)?;
        store.inner = layer(store.inner);
        let class = match url {
            StoreUrl::File => StoreClass::File,
            StoreUrl::Memory => StoreClass::Memory,
            StoreUrl::S3 { .. } => StoreClass::S3,
        };
        store.inner = Arc::new(Metered::new(store.inner, class, recorder));
        Ok(store)
    }

    fn open_plain(
        url: &StoreUrl,
        local_root: &Path,
        memory: Option<&Arc<InMemory>>,
        s3: &S3Config,
        recorder: &Arc<dyn Recorder>,
    ) -> Result<Store, StoreError> {
        match url {
            StoreUrl::File => {
                let root = format!("file://{}", local_root.display());
                let fs = LocalFileSystem::new_with_prefix(local_root)
                    .map_err(|e| StoreError::from_object_store(&root, Op::Open, e))?;
                Ok(Store {
                    inner: Arc::new(fs),
                    url: root,
                    prefix: Vec::new(),
                })
            }
            StoreUrl::Memory => {
                let m = memory.ok_or_else(|| StoreError::Config {
                    url: "memory://".into(),
                    why: "no in-memory store was prepared for this run".into(),
                })?;
                Ok(Store {
                    inner: m.clone(),
                    url: "memory://".into(),
                    prefix: Vec::new(),
                })
            }
            StoreUrl::S3 { bucket, prefix } => {
                // Without credentials object_store would ask a cloud's instance
                // metadata service (169.254.169.254): never from this tool.
                if !s3.has_credentials() {
                    return Err(StoreError::NoCredentials {
                        url: url.to_string(),
                    });
                }
                let endpoint = s3.endpoint();
                let http = s3.allow_http.unwrap_or(false)
                    || endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://"))
                    || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
                install_crypto_provider();
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(S3_CONNECT_TIMEOUT)
                            .with_timeout(S3_REQUEST_TIMEOUT)
                            .with_pool_max_idle_per_host(S3_MAX_CONNECTIONS),
                    )
                    .with_http_connector(CountingConnector::new(recorder.clone()))
                    .with_allow_http(http)
                    .with_retry(RetryConfig {
                        max_retries: S3_MAX_RETRIES,
                        retry_timeout: S3_RETRY_TIMEOUT,
                        ..Default::default()
                    });
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(r) = &s3.region {
                    b = b.with_region(r);
                }
                if let Some(k) = &s3.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &s3.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                let store = b
                    .build()
                    .map_err(|e| StoreError::from_object_store(url.to_string(), Op::Open, e))?;
                Ok(Store {
                    inner: Arc::new(store),
                    url: url.to_string(),
                    prefix: prefix
                        .split('/')
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect(),
                })
            }
        }
    }

    /// The object path of `key` (relative, `/`-separated).
    pub fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(key.split('/').filter(|p| !p.is_empty())),
        )
    }

    /// The root's path (for listing).
    pub fn root(&self) -> Option<ObjectPath> {
        (!self.prefix.is_empty())
            .then(|| ObjectPath::from_iter(self.prefix.iter().map(String::as_str)))
    }

    /// `store-url/key`, as errors name an object.
    pub fn name(&self, key: &str) -> PathBuf {
        PathBuf::from(self.object_url(key))
    }

    /// `store-url/key`, as [`StoreError`]s name an object.
    fn object_url(&self, key: &str) -> String {
        format!("{}/{key}", self.url.trim_end_matches('/'))
    }

    /// The error for `e`, met doing `op` on the object at `key`.
    fn error(&self, key: &str, op: Op, e: object_store::Error) -> StoreError {
        StoreError::from_object_store(self.object_url(key), op, e)
    }

    /// `store-url/key` of an object path under the root (built only when an error
    /// needs it).
    pub fn named(&self, path: &ObjectPath) -> PathBuf {
        self.name(&self.key_of(path))
    }

    /// The key of `path` relative to the root.
    pub fn key_of(&self, path: &ObjectPath) -> String {
        path.parts()
            .skip(self.prefix.len())
            .map(|p| p.as_ref().to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Every key under the root, sorted.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let root = self.root();
        let mut keys: Vec<String> = self
            .inner
            .list(root.as_ref())
            .map_ok(|meta| self.key_of(&meta.location))
            .try_collect()
            .await
            .map_err(|e| StoreError::from_object_store(&self.url, Op::List, e))?;
        keys.sort();
        Ok(keys)
    }

    /// The object at `key`; the error names the store and key
    /// ([`StoreError::NotFound`] if there is none; [`StoreError::detail`] leaves the
    /// name out, for a caller that names the key itself).
    pub async fn fetch(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let r = async { self.inner.get(&self.path(key)).await?.bytes().await };
        r.await
            .map(Vec::from)
            .map_err(|e| self.error(key, Op::Get, e))
    }

    /// The object at `key`, or `None` if there is none (any other failure is an error).
    pub async fn get_if_exists(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.fetch(key).await {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` as the object at `key` with [`put_object`]: one PUT, or a
    /// multipart upload above [`MULTIPART_THRESHOLD`]; atomic on every store.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        put_object(
            self.inner.as_ref(),
            &self.path(key),
            bytes,
            MULTIPART_THRESHOLD,
        )
        .await
        .map(|_| ())
        .map_err(|e| self.error(key, Op::Put, e))
    }

    /// Empties the root for the harness: deletes every object under it (at most
    /// `concurrency` requests at once) and leaves the [`MARKER`] object, but only
    /// if the root is empty or already holds that marker. A prefix holding objects
    /// the harness did not write is refused, never deleted. Returns how many
    /// objects were deleted (the marker aside).
    pub async fn empty_owned(&self, concurrency: usize) -> Result<u64, StoreError> {
        let keys = self.list().await?;
        if !keys.is_empty() && !keys.iter().any(|k| k == MARKER) {
            return Err(StoreError::refused(&self.url, &keys));
        }
        let n = keys.iter().filter(|k| *k != MARKER).count() as u64;
        futures::stream::iter(keys.iter().filter(|k| *k != MARKER))
            .map(|k| async move {
                self.inner
                    .delete(&self.path(k))
                    .await
                    .map_err(|e| self.error(k, Op::Delete, e))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
        self.put(MARKER, b"{\"made_by\":\"harness\"}".to_vec())
            .await?;
        Ok(n)
    }

    /// Deletes `keys` (those that exist; a missing one is no error) and nothing
    /// else, at most `concurrency` requests at once: the own objects of one shard
    /// of a split job, whose prefix the other shards write too. Like
    /// [`Store::empty_owned`], only under a prefix that is empty or holds the
    /// [`MARKER`] (which it writes if missing). Returns how many it deleted.
    pub async fn delete_owned(
        &self,
        keys: &[String],
        concurrency: usize,
    ) -> Result<u64, StoreError> {
        let there = self.list().await?;
        if !there.is_empty() && !there.iter().any(|k| k == MARKER) {
            return Err(StoreError::refused(&self.url, &there));
        }
        if there.is_empty() {
            self.put(MARKER, b"{\"made_by\":\"harness\"}".to_vec())
                .await?;
        }
        let there: std::collections::HashSet<&String> = there.iter().collect();
        let doomed: Vec<&String> = keys.iter().filter(|k| there.contains(k)).collect();
        futures::stream::iter(doomed.iter())
            .map(|k| async move {
                match self.inner.delete(&self.path(k)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.error(k, Op::Delete, e)),
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(doomed.len() as u64)
    }

    /// Uploads every file under `dir` (keys relative to it), `last` after all the
    /// others (a manifest, so that an interrupted upload never looks complete), at most
    /// `concurrency` requests at once; `progress(files, bytes)` after each file.
    ///
    /// Each file is read with [`rechunk_contract::input::read_input`]: a FIFO, a
    /// device or a socket under `dir` is an error naming it (never waited on or read
    /// without end), and a file larger than [`MAX_UPLOAD_FILE`] too, since nothing
    /// here knows the largest valid input.
    pub async fn upload_dir(
        &self,
        dir: &Path,
        last: Option<&str>,
        concurrency: usize,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(u64, u64), StoreError> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files).map_err(|error| StoreError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        self.upload_files(dir, files, last, concurrency, progress)
            .await
    }

    /// Uploads the files `keys` (relative to `dir`, which are also their keys), as
    /// [`Store::upload_dir`] does: `last` after the others, each read with
    /// [`rechunk_contract::input::read_input`].
    pub async fn upload_files(
        &self,
        dir: &Path,
        keys: Vec<String>,
        last: Option<&str>,
        concurrency: usize,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(u64, u64), StoreError> {
        let (mut tail, body): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|k| Some(k.as_str()) == last);
        let upload = |key: String| async move {
            let path = dir.join(&key);
            let read = path.clone();
            let bytes = tokio::task::spawn_blocking(move || {
                rechunk_contract::input::read_input(&read, MAX_UPLOAD_FILE)
            })
            .await
            .map_err(|error| StoreError::Task {
                path: path.clone(),
                error,
            })?
            .map_err(|e| local_error(path, e))?;
            let n = bytes.len() as u64;
            self.put(&key, bytes).await?;
            progress(1, n);
            Ok::<_, StoreError>(n)
        };
        let sizes: Vec<u64> = futures::stream::iter(body)
            .map(upload)
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        let mut total = (sizes.len() as u64, sizes.iter().sum::<u64>());
        if let Some(key) = tail.pop() {
            total.0 += 1;
            total.1 += upload(key).await?;
        }
        Ok(total)
    }

    /// Writes every object under the root into `dir` (keys as relative paths).
    pub async fn download_to(&self, dir: &Path) -> Result<u64, StoreError> {
        let mut keys = self.list().await?;
        // The prefix's own marker stays with the prefix.
        keys.retain(|k| k != MARKER);
        for key in &keys {
            let bytes = self.fetch(key).await?;
            let path = dir.join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|error| StoreError::Io {
                    path: parent.to_path_buf(),
                    error,
                })?;
            }
            std::fs::write(&path, bytes).map_err(|error| StoreError::Io { path, error })?;
        }
        Ok(keys.len() as u64)
    }
}

/// The largest file [`Store::upload_dir`] reads, 4 GiB. Nothing there knows the
/// workload's largest valid input, and the files are datasets' whole files and
/// containers: one container of an icon-like group (146,000 messages of 64×64
/// fields, up to 16 KiB each uncompressed) is about 2.4 GB, so the bound is set
/// above that rather than at 1 GiB. What it stops is a file so large that holding
/// it in memory is a mistake, or one that keeps growing while it is read (a
/// regular file is otherwise read to the length `fstat` gives; a FIFO or device is
/// refused whatever the bound).
pub const MAX_UPLOAD_FILE: u64 = 4 << 30;

/// The error of [`rechunk_contract::input::read_input`] for the file at `path`:
/// [`StoreError::NotRegular`] if that is what it is (one `stat`, on this error path
/// only), else [`StoreError::LocalRead`] in the read's words.
fn local_error(path: PathBuf, e: rechunk_contract::RunError) -> StoreError {
    if let Some(kind) = rechunk_contract::input::not_regular(&path) {
        return StoreError::NotRegular { path, kind };
    }
    let detail = match e {
        rechunk_contract::RunError::Input { detail, .. } => detail,
        other => other.to_string(),
    };
    StoreError::LocalRead { path, detail }
}

/// Every file under `dir` (recursively; anything that is not a directory counts as a
/// file, so that the read refuses it by name), as a path relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Objects larger than this (16 MiB) are written by [`put_object`] as a multipart
/// upload rather than one PUT.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// The size of every part of a multipart upload but the last (8 MiB; S3 wants at
/// least 5 MiB).
pub const MULTIPART_PART: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;

/// How [`put_object`] wrote an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// One PUT request.
    Single,
    /// A multipart upload: a request to start it, one per part, one to complete it.
    Multipart {
        /// Parts uploaded.
        parts: u64,
    },
}

/// Writes `bytes` as the object at `path`: one PUT when it is at most `threshold`
/// bytes, else a multipart upload of [`MULTIPART_PART`]-byte parts (a few in flight
/// at once, all slices of `bytes`, never copied), completed once every part is in,
/// and aborted if any part fails. Either way the object appears whole or not at all:
/// S3 shows a multipart object only when it is completed, and a local filesystem
/// store renames its temporary file then.
pub async fn put_object(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: Vec<u8>,
    threshold: usize,
) -> Result<Put, object_store::Error> {
    if bytes.len() <= threshold {
        store.put(path, PutPayload::from(bytes)).await?;
        return Ok(Put::Single);
    }
    let bytes = bytes::Bytes::from(bytes);
    let mut upload = store.put_multipart(path).await?;
    let parts: Vec<_> = (0..bytes.len())
        .step_by(MULTIPART_PART)
        .map(|at| {
            let end = (at + MULTIPART_PART).min(bytes.len());
            upload.put_part(PutPayload::from(bytes.slice(at..end)))
        })
        .collect();
    let n = parts.len() as u64;
    let sent: Result<Vec<()>, _> = futures::stream::iter(parts)
        .buffer_unordered(MULTIPART_CONCURRENCY)
        .try_collect()
        .await;
    let done = match sent {
        Ok(_) => upload.complete().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        // The first error is the one to report; a failed abort leaves only parts
        // that S3 never shows as an object.
        let _ = upload.abort().await;
        return Err(e);
    }
    Ok(Put::Multipart { parts: n })
}

/// Runs `f` to completion on a small runtime of its own: the harness's blocking
/// entry to the async helpers above.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, StoreError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(StoreError::Runtime)?;
    Ok(rt.block_on(f))
}

/// Makes ring rustls's process-wide crypto provider (once; a provider already
/// installed is kept). The build leaves out aws-lc-rs, rustls's default, so an
/// HTTPS client needs this before it is built (see the workspace Cargo.toml).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from part to part, so a part out of place shows.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    #[test]
    fn a_large_object_is_a_multipart_upload_that_appears_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let bytes = pattern(2 * MULTIPART_PART + 12345);
        block_on(async {
            let path = ObjectPath::from("c/0/0/0/0/0");
            let put = put_object(&store, &path, bytes.clone(), MULTIPART_PART).await;
            assert_eq!(put.unwrap(), Put::Multipart { parts: 3 });
            let got = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert!(got[..] == bytes[..], "the parts were reassembled wrong");
            // At the threshold, one PUT.
            let small = ObjectPath::from("small");
            let put = put_object(
                &store,
                &small,
                bytes[..MULTIPART_PART].to_vec(),
                MULTIPART_PART,
            );
            assert_eq!(put.await.unwrap(), Put::Single);
        })
        .unwrap();
        // Nothing but the two objects: no staged parts left.
        let mut names: Vec<_> = walk_names(dir.path());
        names.sort();
        assert_eq!(names, ["c/0/0/0/0/0", "small"]);
    }

    fn walk_names(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    dirs.push(e.path());
                } else {
                    let p = e.path();
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out
    }

    #[test]
    fn no_credentials_is_an_error_before_any_request() {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
            return; // configured for the S3 tests: nothing to check here
        }
        let e = Store::open(
            &StoreUrl::parse("s3://b/p").unwrap(),
            Path::new("/"),
            None,
            &S3Config::default(),
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::NoCredentials { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("s3://b/p: no S3 credentials"),
            "{e}"
        );
    }

    fn memory_store() -> Store {
        let memory = Arc::new(InMemory::new());
        Store::open(
            &StoreUrl::Memory,
            Path::new("/"),
            Some(&memory),
            &S3Config::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_memory_url_without_its_store_is_a_config_error() {
        let e = Store::open(
            &StoreUrl::Memory,
            Path::new("/"),
            None,
            &S3Config::default(),
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::Config { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "memory://: no in-memory store was prepared for this run"
        );
    }

    /// A missing object is `NotFound`, named with its store and key (and without
    /// them by `detail`, for callers that name the key themselves);
    /// `get_if_exists` makes it `None`.
    #[test]
    fn a_missing_object_is_not_found_and_named() {
        let store = memory_store();
        block_on(async {
            let e = store.fetch("a/b").await.unwrap_err();
            assert!(
                matches!(&e, StoreError::NotFound { url, op: Op::Get, .. } if url == "memory:/a/b"),
                "{e:?}"
            );
            assert!(
                e.to_string().starts_with("memory:/a/b: no such object"),
                "{e}"
            );
            assert!(e.detail().starts_with("no such object"), "{}", e.detail());
            assert_eq!(store.get_if_exists("a/b").await.unwrap(), None);
            store.put("a/b", b"x".to_vec()).await.unwrap();
            assert_eq!(
                store.get_if_exists("a/b").await.unwrap(),
                Some(b"x".to_vec())
            );
            assert_eq!(store.fetch("a/b").await.unwrap(), b"x");
        })
        .unwrap();
    }

    /// The `.harness-owned` rule on a store that needs no server: a root holding
    /// objects and no marker is refused and kept; a marked one is emptied and stays
    /// marked; an empty one is taken and marked. (The same against a real S3 server
    /// in `empty_owned_on_s3`.)
    #[test]
    fn a_shard_deletes_its_own_keys_only_and_only_under_a_marked_prefix() {
        let store = memory_store();
        block_on(async {
            store.put("theirs/data", b"keep".to_vec()).await.unwrap();
            let e = store
                .delete_owned(&["theirs/data".to_string()], 4)
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::Refused { .. }), "{e:?}");
            assert_eq!(store.fetch("theirs/data").await.unwrap(), b"keep");
            store.put(MARKER, b"{}".to_vec()).await.unwrap();
            store.put("c/0/0/0/0/0", b"mine".to_vec()).await.unwrap();
            store
                .put("c/0/1/0/0/0", b"other shard".to_vec())
                .await
                .unwrap();
            let n = store
                .delete_owned(&["c/0/0/0/0/0".to_string(), "c/0/0/0/0/1".to_string()], 4)
                .await
                .unwrap();
            assert_eq!(n, 1);
            assert_eq!(store.fetch("c/0/1/0/0/0").await.unwrap(), b"other shard");
            assert_eq!(store.fetch("theirs/data").await.unwrap(), b"keep");
            assert!(store.get_if_exists("c/0/0/0/0/0").await.unwrap().is_none());
        })
        .unwrap();
    }

    #[test]
    fn only_an_empty_or_marked_root_is_emptied() {
        let store = memory_store();
        block_on(async {
            store.put("theirs/data", b"keep".to_vec()).await.unwrap();
            store.put("theirs/more", b"keep".to_vec()).await.unwrap();
            let e = store.empty_owned(4).await.unwrap_err();
            assert!(matches!(e, StoreError::Refused { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                "refusing to empty memory://: it holds 2 objects (e.g. theirs/data) and no \
                 .harness-owned object, so the harness did not write them; use an empty \
                 prefix, or delete them yourself"
            );
            assert_eq!(store.fetch("theirs/data").await.unwrap(), b"keep");
            store.put(MARKER, b"{}".to_vec()).await.unwrap();
            assert_eq!(store.empty_owned(4).await.unwrap(), 2);
            assert_eq!(store.list().await.unwrap(), vec![MARKER.to_string()]);
            let fresh = memory_store();
            assert_eq!(fresh.empty_owned(4).await.unwrap(), 0);
            assert_eq!(fresh.list().await.unwrap(), vec![MARKER.to_string()]);
            assert_eq!(
                fresh.fetch(MARKER).await.unwrap(),
                b"{\"made_by\":\"harness\"}"
            );
        })
        .unwrap();
    }

    /// An upload puts the `last` key after every other; a download writes every
    /// object but the marker; a download into a path that cannot be a directory is
    /// an `Io` error naming it.
    #[test]
    fn uploads_and_downloads_round_trip() {
        let store = memory_store();
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("g/v")).unwrap();
        std::fs::write(src.path().join("g/v/s0"), b"one").unwrap();
        std::fs::write(src.path().join("manifest.json"), b"{}").unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let (files, bytes) = block_on(store.upload_dir(
            src.path(),
            Some("manifest.json"),
            4,
            &|n, b| seen.lock().unwrap().push((n, b)),
        ))
        .unwrap()
        .unwrap();
        assert_eq!((files, bytes), (2, 5));
        assert_eq!(seen.into_inner().unwrap(), vec![(1, 3), (1, 2)]);
        block_on(store.put(MARKER, b"{}".to_vec()))
            .unwrap()
            .unwrap();

        let dst = tempfile::tempdir().unwrap();
        assert_eq!(block_on(store.download_to(dst.path())).unwrap().unwrap(), 2);
        assert_eq!(std::fs::read(dst.path().join("g/v/s0")).unwrap(), b"one");
        assert!(!dst.path().join(MARKER).exists());

        let file = dst.path().join("manifest.json");
        let e = block_on(store.download_to(&file)).unwrap().unwrap_err();
        assert!(
            matches!(&e, StoreError::Io { path, .. } if *path == file.join("g/v")),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", file.join("g/v").display())),
            "{e}"
        );

        let missing = src.path().join("nothing-here");
        let e = block_on(store.upload_dir(&missing, None, 4, &|_, _| {}))
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }

    /// Port 9 (discard) on loopback: nothing listens, so a request fails to
    /// connect, within the connect timeout and the retries, as `Unreachable`.
    #[test]
    fn a_server_that_is_not_there_is_unreachable() {
        let s = Store::open(
            &StoreUrl::parse("s3://nowhere/in").unwrap(),
            Path::new("/"),
            None,
            &S3Config {
                endpoint: Some("http://127.0.0.1:9".into()),
                region: Some("garage".into()),
                access_key_id: Some("GKdoesnotmatter".into()),
                secret_access_key: Some("notasecret".into()),
                allow_http: Some(true),
            },
        )
        .unwrap();
        let started = std::time::Instant::now();
        let e = block_on(s.list()).unwrap().unwrap_err();
        assert!(
            matches!(&e, StoreError::Unreachable { url, op: Op::List, .. } if url == "s3://nowhere/in"),
            "{e:?}"
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with("s3://nowhere/in: cannot list: "),
            "{shown}"
        );
        assert!(shown.contains("Connection refused"), "{shown}");
        assert!(!shown.contains("notasecret"), "{shown}");
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    /// HTTPS works without aws-lc-rs: the client is built with ring as rustls's
    /// provider, and a request to a closed port is an error, not a panic about a
    /// missing crypto provider.
    #[test]
    fn an_https_store_builds_its_client_with_ring() {
        let s = Store::open(
            &StoreUrl::parse("s3://nowhere/tls").unwrap(),
            Path::new("/"),
            None,
            &S3Config {
                endpoint: Some("https://127.0.0.1:9".into()),
                region: Some("garage".into()),
                access_key_id: Some("GKdoesnotmatter".into()),
                secret_access_key: Some("notasecret".into()),
                allow_http: Some(false),
            },
        )
        .unwrap();
        let e = block_on(s.list()).unwrap().unwrap_err();
        assert!(matches!(&e, StoreError::Unreachable { .. }), "{e:?}");
    }

    /// A FIFO or a symlink to /dev/zero in a directory being uploaded is an error
    /// naming it, at once (never waited on, never read without end).
    #[test]
    fn uploads_refuse_what_is_not_a_regular_file() {
        use std::os::unix::ffi::OsStrExt;
        let store = memory_store();
        let upload = |dir: &Path| block_on(store.upload_dir(dir, None, 4, &|_, _| {})).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok"), b"bytes").unwrap();
        assert_eq!(upload(dir.path()).unwrap(), (1, 5));

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = upload(dir.path()).unwrap_err();
        assert!(
            matches!(&e, StoreError::NotRegular { path, kind: "a FIFO" } if *path == fifo),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("{}: not a regular file (a FIFO)", fifo.display())
        );
        std::fs::remove_file(&fifo).unwrap();

        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = upload(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::NotRegular { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not a regular file (a character device)",
                zero.display()
            )
        );
    }

    #[test]
    fn keys_map_under_the_prefix_and_back() {
        let s = Store::open(
            &StoreUrl::parse("s3://b/p/q").unwrap(),
            Path::new("/"),
            None,
            &S3Config {
                endpoint: Some("http://127.0.0.1:9".into()),
                region: Some("garage".into()),
                access_key_id: Some("GKid".into()),
                secret_access_key: Some("secret".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let p = s.path("c/0/1/zarr.json");
        assert_eq!(p.as_ref(), "p/q/c/0/1/zarr.json");
        assert_eq!(s.key_of(&p), "c/0/1/zarr.json");
        assert_eq!(s.name("k").display().to_string(), "s3://b/p/q/k");
    }
}
