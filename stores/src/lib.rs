//! Stores by URL, and the helpers the harness and the `object-store` backend use on
//! them (upload a dataset, list, fetch, empty and download objects), so that
//! datasets and outputs can live on any store the backend reads or writes. The
//! harness uploads datasets ([`Store::upload_dir`]) and verifies outputs
//! ([`Store::list`], [`Store::fetch`]) through this crate, and the backend opens its
//! input and output stores and stages their contents with it.
//!
//! | URL | store | root |
//! |---|---|---|
//! | `file://` | `LocalFileSystem` | the local directory given to [`Store::open`] (the job's input or output) |
//! | `memory://` | `InMemory` | a store of this process the caller made and loads |
//! | `s3://bucket/prefix` | `AmazonS3` | `prefix` in `bucket`, at the [`S3Config`] endpoint |
//!
//! Credentials come from the scenario's `[s3]` table or the standard `AWS_*`
//! environment variables; they are never printed: [`S3Config`]'s `Debug` redacts them
//! and its serialized form leaves them out. Requests time out and are retried within
//! bounds ([`S3_CONNECT_TIMEOUT`], [`S3_REQUEST_TIMEOUT`], [`S3_MAX_RETRIES`],
//! [`S3_RETRY_TIMEOUT`]), so a dead server is an error in seconds.
//!
//! The harness empties only what it wrote: [`Store::empty_owned`] deletes under a
//! root that is empty or holds the [`MARKER`] object, and refuses any other. Local
//! files are read as the harness reads inputs: regular files only, at most
//! [`MAX_UPLOAD_FILE`] bytes.
//!
//! Every request of every store is metered ([`metered`]): [`Store::open_recorded`]
//! reports its kind, time to first byte, total time, bytes and outcome, the
//! requests in flight and, on S3, every HTTP attempt to a
//! [`rechunk_contract::Recorder`]. The S3 client keeps up to [`S3_MAX_CONNECTIONS`]
//! connections, one per request in flight (HTTP/1).
//!
//! Every failure is a [`StoreError`] naming the store, object or path at fault, in
//! the words [`describe`] gives object_store's errors.

mod error;
pub mod metered;
mod s3;
mod store;
mod url;

pub use error::{describe, Op, StoreError};
pub use s3::{
    S3Config, S3_CONNECT_TIMEOUT, S3_MAX_CONNECTIONS, S3_MAX_RETRIES, S3_REQUEST_TIMEOUT,
    S3_RETRY_TIMEOUT,
};
pub use store::{
    block_on, put_object, Put, Store, MARKER, MAX_UPLOAD_FILE, MULTIPART_PART, MULTIPART_THRESHOLD,
};
pub use url::StoreUrl;
