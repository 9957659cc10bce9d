//! An open store with its root, and the helpers the harness and the backend use on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::error::describe;
use crate::s3::{
    S3Config, S3_CONNECT_TIMEOUT, S3_MAX_RETRIES, S3_REQUEST_TIMEOUT, S3_RETRY_TIMEOUT,
};
use crate::url::StoreUrl;

/// The object that marks a prefix as written by the harness (the same name as the
/// marker file of its local directories): [`Store::empty_owned`] deletes only
/// under a prefix that holds it, or an empty one.
pub const MARKER: &str = ".harness-owned";

/// An open store with its root: the prefix every key is under.
#[derive(Clone, Debug)]
pub struct Store {
    pub inner: Arc<dyn ObjectStore>,
    /// The root, as `file://`, `memory://` or `s3://bucket/prefix`, for messages.
    pub url: String,
    prefix: Vec<String>,
}

impl Store {
    /// Opens `url`. `local_root` is the directory `file://` stands for; `memory` the
    /// in-memory store `memory://` stands for (the caller owns and loads it).
    pub fn open(
        url: &StoreUrl,
        local_root: &Path,
        memory: Option<&Arc<InMemory>>,
        s3: &S3Config,
    ) -> Result<Store, String> {
        match url {
            StoreUrl::File => {
                let fs = LocalFileSystem::new_with_prefix(local_root).map_err(|e| {
                    format!(
                        "file://{}: cannot open: {}",
                        local_root.display(),
                        describe(&e)
                    )
                })?;
                Ok(Store {
                    inner: Arc::new(fs),
                    url: format!("file://{}", local_root.display()),
                    prefix: Vec::new(),
                })
            }
            StoreUrl::Memory => {
                let m = memory.ok_or("memory://: no in-memory store was prepared for this run")?;
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
                    return Err(format!(
                        "{url}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                         (or [s3] access_key_id and secret_access_key); for the local server, \
                         eval \"$(scripts/s3-server env)\""
                    ));
                }
                let endpoint = s3.endpoint();
                let http = s3.allow_http.unwrap_or(false)
                    || endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://"))
                    || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(S3_CONNECT_TIMEOUT)
                            .with_timeout(S3_REQUEST_TIMEOUT),
                    )
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
                    .map_err(|e| format!("{url}: cannot open: {}", describe(&e)))?;
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
        PathBuf::from(format!("{}/{key}", self.url.trim_end_matches('/')))
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
    pub async fn list(&self) -> Result<Vec<String>, String> {
        let root = self.root();
        let mut keys: Vec<String> = self
            .inner
            .list(root.as_ref())
            .map_ok(|meta| self.key_of(&meta.location))
            .try_collect()
            .await
            .map_err(|e| format!("{}: cannot list: {}", self.url, describe(&e)))?;
        keys.sort();
        Ok(keys)
    }

    /// The object at `key`; the error names the store and key.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        self.fetch(key)
            .await
            .map_err(|e| format!("{}: {e}", self.name(key).display()))
    }

    /// The object at `key`; the error is the store's words only (the caller names
    /// the key).
    pub async fn fetch(&self, key: &str) -> Result<Vec<u8>, String> {
        let r = async { self.inner.get(&self.path(key)).await?.bytes().await };
        r.await.map(Vec::from).map_err(|e| describe(&e))
    }

    /// The object at `key`, or `None` if there is none (any other failure is an error).
    pub async fn get_if_exists(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let r = async { self.inner.get(&self.path(key)).await?.bytes().await };
        match r.await {
            Ok(b) => Ok(Some(Vec::from(b))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(format!("{}: {}", self.name(key).display(), describe(&e))),
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.inner
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {}", self.name(key).display(), describe(&e)))
    }

    /// Empties the root for the harness: deletes every object under it (at most
    /// `concurrency` requests at once) and leaves the [`MARKER`] object, but only
    /// if the root is empty or already holds that marker. A prefix holding objects
    /// the harness did not write is refused, never deleted. Returns how many
    /// objects were deleted (the marker aside).
    pub async fn empty_owned(&self, concurrency: usize) -> Result<u64, String> {
        let keys = self.list().await?;
        if !keys.is_empty() && !keys.iter().any(|k| k == MARKER) {
            return Err(format!(
                "refusing to empty {}: it holds {} objects (e.g. {}) and no {MARKER} object, \
                 so the harness did not write them; use an empty prefix, or delete them \
                 yourself",
                self.url,
                keys.len(),
                keys[0]
            ));
        }
        let n = keys.iter().filter(|k| *k != MARKER).count() as u64;
        futures::stream::iter(keys.iter().filter(|k| *k != MARKER))
            .map(|k| async move {
                self.inner.delete(&self.path(k)).await.map_err(|e| {
                    format!(
                        "{}: cannot delete: {}",
                        self.name(k).display(),
                        describe(&e)
                    )
                })
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
        self.put(MARKER, b"{\"made_by\":\"harness\"}".to_vec())
            .await?;
        Ok(n)
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
    ) -> Result<(u64, u64), String> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (mut tail, body): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|k| Some(k.as_str()) == last);
        let upload = |key: String| async move {
            let path = dir.join(&key);
            let bytes = tokio::task::spawn_blocking(move || {
                rechunk_contract::input::read_input(&path, MAX_UPLOAD_FILE)
            })
            .await
            .map_err(|e| format!("{}: the read task failed: {e}", dir.join(&key).display()))?
            .map_err(|e| local_error(&e))?;
            let n = bytes.len() as u64;
            self.put(&key, bytes).await?;
            progress(1, n);
            Ok::<_, String>(n)
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
    pub async fn download_to(&self, dir: &Path) -> Result<u64, String> {
        let mut keys = self.list().await?;
        // The prefix's own marker stays with the prefix.
        keys.retain(|k| k != MARKER);
        for key in &keys {
            let bytes = self.get(key).await?;
            let path = dir.join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
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

/// A local read's error as these helpers word them: `path: what`.
fn local_error(e: &rechunk_contract::RunError) -> String {
    match e {
        rechunk_contract::RunError::Input { path, detail } => {
            format!("{}: {detail}", path.display())
        }
        other => other.to_string(),
    }
}

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

/// Runs `f` to completion on a small runtime of its own: the harness's blocking
/// entry to the async helpers above.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("building a Tokio runtime: {e}"))?;
    Ok(rt.block_on(f))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(e.contains("s3://b/p: no S3 credentials"), "{e}");
    }

    /// A FIFO or a symlink to /dev/zero in a directory being uploaded is an error
    /// naming it, at once (never waited on, never read without end).
    #[test]
    fn uploads_refuse_what_is_not_a_regular_file() {
        use std::os::unix::ffi::OsStrExt;
        let memory = Arc::new(InMemory::new());
        let store = Store::open(
            &StoreUrl::Memory,
            Path::new("/"),
            Some(&memory),
            &S3Config::default(),
        )
        .unwrap();
        let upload = |dir: &Path| block_on(store.upload_dir(dir, None, 4, &|_, _| {})).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok"), b"bytes").unwrap();
        assert_eq!(upload(dir.path()).unwrap(), (1, 5));

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = upload(dir.path()).unwrap_err();
        assert_eq!(
            e,
            format!("{}: not a regular file (a FIFO)", fifo.display())
        );
        std::fs::remove_file(&fifo).unwrap();

        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = upload(dir.path()).unwrap_err();
        assert_eq!(
            e,
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
