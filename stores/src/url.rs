//! Where a store is: `file://`, `memory://` or `s3://bucket/prefix`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Where a store is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreUrl {
    /// The job's local directory through `LocalFileSystem`.
    File,
    /// An `InMemory` store of the running process.
    Memory,
    /// A bucket and a key prefix.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The prefix every key is under: no leading or trailing `/`; may be empty.
        prefix: String,
    },
}

impl StoreUrl {
    /// Parses `file://`, `memory://` or `s3://bucket[/prefix]`.
    pub fn parse(s: &str) -> Result<StoreUrl, StoreError> {
        match s {
            "file://" | "file" => return Ok(StoreUrl::File),
            "memory://" | "memory" => return Ok(StoreUrl::Memory),
            _ => {}
        }
        let Some(rest) = s.strip_prefix("s3://") else {
            return Err(StoreError::InvalidUrl {
                url: s.to_string(),
                why: "is not a store URL: expected file://, memory:// or s3://bucket/prefix",
            });
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: s.to_string(),
                why: "names no bucket: expected s3://bucket/prefix",
            });
        }
        Ok(StoreUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// Whether this is an `s3://` store.
    pub fn is_s3(&self) -> bool {
        matches!(self, StoreUrl::S3 { .. })
    }

    /// The same bucket with `more` appended to the prefix (S3 only).
    pub fn join(&self, more: &str) -> StoreUrl {
        match self {
            StoreUrl::S3 { bucket, prefix } => StoreUrl::S3 {
                bucket: bucket.clone(),
                prefix: [prefix.as_str(), more.trim_matches('/')]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/"),
            },
            other => other.clone(),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File => write!(f, "file://"),
            StoreUrl::Memory => write!(f, "memory://"),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print() {
        assert_eq!(StoreUrl::parse("file://").unwrap(), StoreUrl::File);
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        let s3 = StoreUrl::parse("s3://bucket/a/b/").unwrap();
        assert_eq!(
            s3,
            StoreUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://bucket/a/b");
        assert_eq!(s3.join("/out/").to_string(), "s3://bucket/a/b/out");
        assert_eq!(
            StoreUrl::parse("s3://b").unwrap().join("x").to_string(),
            "s3://b/x"
        );
        let e = StoreUrl::parse("s3:///x").unwrap_err();
        assert!(matches!(e, StoreError::InvalidUrl { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "`s3:///x` names no bucket: expected s3://bucket/prefix"
        );
        let e = StoreUrl::parse("gs://x").unwrap_err();
        assert!(matches!(e, StoreError::InvalidUrl { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "`gs://x` is not a store URL: expected file://, memory:// or s3://bucket/prefix"
        );
    }
}
