//! Stores by URL, and the helpers the harness and the `object-store` backend use on
//! them (upload a dataset, list, fetch and delete objects), so that datasets and
//! outputs can live on any store the backend reads or writes.
//!
//! | URL | store | root |
//! |---|---|---|
//! | `file://` | `LocalFileSystem` | the job's local input or output directory |
//! | `memory://` | `InMemory` | a store of this process, loaded before the timed region |
//! | `s3://bucket/prefix` | `AmazonS3` | `prefix` in `bucket`, at the [`S3Config`] endpoint |
//!
//! Credentials come from the scenario's `[s3]` table or the standard `AWS_*`
//! environment variables; they are never printed: [`S3Config`]'s `Debug` redacts them
//! and its serialized form leaves them out.

#![warn(missing_docs)]

mod error;
mod s3;
mod store;
mod url;

pub use error::{describe, Op, StoreError};
pub use s3::{S3Config, S3_CONNECT_TIMEOUT, S3_MAX_RETRIES, S3_REQUEST_TIMEOUT, S3_RETRY_TIMEOUT};
pub use store::{block_on, Store, MARKER, MAX_UPLOAD_FILE};
pub use url::StoreUrl;
