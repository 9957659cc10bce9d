//! What can go wrong with a store, typed, in the words a user acts on.

use std::io;
use std::path::PathBuf;

use crate::store::MARKER;

/// What a store was asked to do when it failed. Opening, listing and deleting lead
/// the message with their words (`cannot list: …`); a read or a write does not, as
/// the object's name says what it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Opening the store ([`crate::Store::open`]): `cannot open: …`.
    Open,
    /// Listing the keys under the root: `cannot list: …`.
    List,
    /// Reading an object.
    Get,
    /// Writing an object.
    Put,
    /// Deleting an object: `cannot delete: …`.
    Delete,
}

impl Op {
    /// The words that lead an error of this operation, with their `: `.
    fn words(self) -> &'static str {
        match self {
            Op::Open => "cannot open: ",
            Op::List => "cannot list: ",
            Op::Delete => "cannot delete: ",
            Op::Get | Op::Put => "",
        }
    }
}

/// What [`StoreError::NoCredentials`] tells the user to do.
const NO_CREDENTIALS: &str = "no S3 credentials: set AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY (or [s3] access_key_id and secret_access_key); for the local \
     server, eval \"$(scripts/s3-server env)\"";

/// The words of an error that means the credentials were refused.
const ACCESS_DENIED: &str =
    "access denied: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";

/// Why a store, or a local file it was given, failed.
///
/// Every message names the store, object or local path at fault first (`s3://b/p/k:
/// no such object: …`), except [`StoreError::Refused`], [`StoreError::InvalidUrl`] and
/// [`StoreError::Runtime`], whose words lead. [`StoreError::detail`] gives the words
/// without that name, for callers that name the object themselves. The message
/// carries the whole chain of causes (a refused connection, a timeout) and never a
/// credential, so no variant also reports it as [`std::error::Error::source`]:
/// printed with anyhow's `{:#}`, each cause would appear twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a store URL: `` `gs://x` is not a store URL: expected file://, memory:// or
    /// s3://bucket/prefix ``, or `` `s3:///x` names no bucket: expected
    /// s3://bucket/prefix ``.
    #[error("`{url}` {why}")]
    InvalidUrl {
        /// The string as given.
        url: String,
        /// What is wrong with it and what was expected.
        why: &'static str,
    },
    /// An `s3://` store without both keys, refused before any request (object_store
    /// would otherwise ask a cloud's instance metadata service): `s3://b/p: no S3
    /// credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (…)`.
    #[error("{url}: {}", NO_CREDENTIALS)]
    NoCredentials {
        /// The store.
        url: String,
    },
    /// A store this process was not set up for: `memory://: no in-memory store was
    /// prepared for this run`.
    #[error("{url}: {why}")]
    Config {
        /// The store.
        url: String,
        /// What is missing.
        why: String,
    },
    /// No object there: `s3://b/p/k: no such object: …`.
    #[error("{url}: {}{}", op.words(), describe(error))]
    NotFound {
        /// The object (or the store, when opening it).
        url: String,
        /// What was being done.
        op: Op,
        /// object_store's error, worded by [`describe`].
        error: object_store::Error,
    },
    /// The server refused the credentials: `s3://b/p: cannot list: access denied:
    /// check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): …`.
    #[error("{url}: {}{}", op.words(), describe(error))]
    AccessDenied {
        /// The object or the store.
        url: String,
        /// What was being done.
        op: Op,
        /// object_store's error, worded by [`describe`].
        error: object_store::Error,
    },
    /// The server could not be reached, or did not answer in time, within the retries
    /// (`… Connection refused`, a timeout).
    #[error("{url}: {}{}", op.words(), describe(error))]
    Unreachable {
        /// The object or the store.
        url: String,
        /// What was being done.
        op: Op,
        /// object_store's error, worded by [`describe`].
        error: object_store::Error,
    },
    /// Any other failure of the store, in object_store's words and its causes'.
    #[error("{url}: {}{}", op.words(), describe(error))]
    Other {
        /// The object or the store.
        url: String,
        /// What was being done.
        op: Op,
        /// object_store's error, worded by [`describe`].
        error: object_store::Error,
    },
    /// A local file or directory could not be listed, created or written:
    /// `path: No such file or directory (os error 2)`.
    #[error("{}: {error}", path.display())]
    Io {
        /// The local path.
        path: PathBuf,
        /// The system's error.
        error: io::Error,
    },
    /// A local file to upload that is not a regular file: `path: not a regular file
    /// (a FIFO)`; never opened for long or read.
    #[error("{}: not a regular file ({kind})", path.display())]
    NotRegular {
        /// The local path.
        path: PathBuf,
        /// What it is instead, as [`rechunk_contract::input::file_kind`] words it.
        kind: &'static str,
    },
    /// A local file to upload that could not be read, in
    /// [`rechunk_contract::input::read_input`]'s words: `path: cannot open: …`,
    /// `path: larger than any valid input (… bytes at most)`.
    #[error("{}: {detail}", path.display())]
    LocalRead {
        /// The local path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A task that read a local file to upload panicked or was cancelled: `path: the
    /// read task failed: …`.
    #[error("{}: the read task failed: {error}", path.display())]
    Task {
        /// The local path.
        path: PathBuf,
        /// Tokio's error.
        error: tokio::task::JoinError,
    },
    /// [`crate::Store::empty_owned`] refused a prefix it may not empty: `refusing to
    /// empty s3://b/p: it holds 3 objects (e.g. k) and no .harness-owned object, so
    /// the harness did not write them; use an empty prefix, or delete them yourself`.
    #[error("refusing to empty {url}: {why}")]
    Refused {
        /// The store's root.
        url: String,
        /// Why, and what to do.
        why: String,
    },
    /// [`crate::block_on`] could not build its runtime: `building a Tokio runtime: …`.
    #[error("building a Tokio runtime: {0}")]
    Runtime(io::Error),
}

impl StoreError {
    /// The error for object_store's `error`, met doing `op` on `url` (an object's or
    /// a store's URL, as messages name it), as the variant its kind calls for.
    pub fn from_object_store(url: impl Into<String>, op: Op, error: object_store::Error) -> Self {
        let url = url.into();
        if access_denied(&error) {
            StoreError::AccessDenied { url, op, error }
        } else if matches!(error, object_store::Error::NotFound { .. }) {
            StoreError::NotFound { url, op, error }
        } else if unreachable(&error) {
            StoreError::Unreachable { url, op, error }
        } else {
            StoreError::Other { url, op, error }
        }
    }

    /// The refusal of [`crate::Store::empty_owned`] for a root holding `keys` (not
    /// empty) and no [`MARKER`].
    pub(crate) fn refused(url: &str, keys: &[String]) -> Self {
        StoreError::Refused {
            url: url.to_string(),
            why: format!(
                "it holds {} objects (e.g. {}) and no {MARKER} object, so the harness did not \
                 write them; use an empty prefix, or delete them yourself",
                keys.len(),
                keys[0]
            ),
        }
    }

    /// The message without the store, object or path it names first (the whole
    /// message where none leads): for callers that name the object themselves, as
    /// verification does (`zarr.json: no such object: …`).
    pub fn detail(&self) -> String {
        match self {
            StoreError::NoCredentials { .. } => NO_CREDENTIALS.to_string(),
            StoreError::Config { why, .. } => why.clone(),
            StoreError::NotFound { op, error, .. }
            | StoreError::AccessDenied { op, error, .. }
            | StoreError::Unreachable { op, error, .. }
            | StoreError::Other { op, error, .. } => format!("{}{}", op.words(), describe(error)),
            StoreError::Io { error, .. } => error.to_string(),
            StoreError::NotRegular { kind, .. } => format!("not a regular file ({kind})"),
            StoreError::LocalRead { detail, .. } => detail.clone(),
            StoreError::Task { error, .. } => format!("the read task failed: {error}"),
            StoreError::InvalidUrl { .. } | StoreError::Refused { .. } | StoreError::Runtime(_) => {
                self.to_string()
            }
        }
    }
}

/// What S3 servers say in the generic error object_store makes of a 403 for a bad
/// key or signature.
const DENIED: [&str; 4] = [
    "403 Forbidden",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
];

/// Whether `e` means the credentials were refused (what [`describe`] words as
/// `access denied: …`).
fn access_denied(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. }
    ) || {
        let text = e.to_string();
        DENIED.iter().any(|d| text.contains(d))
    }
}

/// Whether a cause of `e` is a connection that failed or a request that timed out.
fn unreachable(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            if matches!(h.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout) {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut
            ) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// An object_store error in words a user acts on, with its causes (a refused
/// connection, a timeout) and without credentials (object_store never puts them in
/// its errors; requests are signed in headers, not URLs).
pub fn describe(e: &object_store::Error) -> String {
    use std::error::Error as _;
    let head = match e {
        object_store::Error::NotFound { .. } => "no such object".to_string(),
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => ACCESS_DENIED.to_string(),
        other => other.to_string(),
    };
    // S3 servers answer a bad key or signature with a 403 that object_store reports
    // as a generic error: say what to check.
    let text = e.to_string();
    let head = if !head.starts_with("access denied") && DENIED.iter().any(|d| text.contains(d)) {
        format!("{ACCESS_DENIED}: {head}")
    } else {
        head
    };
    let mut words = vec![head];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !words.iter().any(|w| w.contains(&text)) {
            words.push(text);
        }
        source = s.source();
    }
    words.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words users have seen from these errors since they were strings.
    #[test]
    fn messages_keep_their_words() {
        let e = StoreError::NoCredentials {
            url: "s3://b/p".into(),
        };
        assert_eq!(
            e.to_string(),
            "s3://b/p: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             (or [s3] access_key_id and secret_access_key); for the local server, eval \
             \"$(scripts/s3-server env)\""
        );
        assert!(e.detail().starts_with("no S3 credentials: set"));

        let denied = |op| {
            StoreError::from_object_store(
                "s3://b/p/k",
                op,
                object_store::Error::PermissionDenied {
                    path: "p/k".into(),
                    source: "403".into(),
                },
            )
        };
        let e = denied(Op::Get);
        assert!(matches!(e, StoreError::AccessDenied { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "s3://b/p/k: access denied: check the credentials (AWS_ACCESS_KEY_ID, \
             AWS_SECRET_ACCESS_KEY): 403"
        );
        assert_eq!(
            denied(Op::Delete).to_string(),
            "s3://b/p/k: cannot delete: access denied: check the credentials \
             (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): 403"
        );

        // A 403 that object_store reports as a generic error is access denied too.
        let e = StoreError::from_object_store(
            "s3://b/p",
            Op::List,
            object_store::Error::Generic {
                store: "S3",
                source: "Server returned non-2xx status code: 403 Forbidden: \
                         <Code>SignatureDoesNotMatch</Code>"
                    .into(),
            },
        );
        assert!(matches!(e, StoreError::AccessDenied { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("s3://b/p: cannot list: access denied: check the credentials"),
            "{e}"
        );

        let e = StoreError::from_object_store(
            "file:///x",
            Op::Open,
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: "Unable to canonicalize".into(),
            },
        );
        assert!(matches!(e, StoreError::Other { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "file:///x: cannot open: Generic LocalFileSystem error: Unable to canonicalize"
        );
        assert_eq!(
            e.detail(),
            "cannot open: Generic LocalFileSystem error: Unable to canonicalize"
        );
    }

    /// A refused connection anywhere among the causes makes the error `Unreachable`.
    #[test]
    fn a_refused_connection_is_unreachable() {
        let e = StoreError::from_object_store(
            "s3://b/p/k",
            Op::Get,
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
            },
        );
        assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
    }

    /// The message already holds every cause: none is reported again as a source,
    /// so anyhow's `{:#}` prints each once.
    #[test]
    fn causes_are_in_the_message_not_repeated_as_sources() {
        use std::error::Error as _;
        let io = StoreError::Io {
            path: "/x".into(),
            error: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(io.source().is_none());
        let e = StoreError::from_object_store(
            "memory:/k",
            Op::Get,
            object_store::Error::NotFound {
                path: "k".into(),
                source: "gone".into(),
            },
        );
        assert!(e.source().is_none());
        assert_eq!(e.to_string(), "memory:/k: no such object: gone");
        assert_eq!(anyhow_like(&e), "memory:/k: no such object: gone");
    }

    /// What anyhow's `{:#}` prints: the message, then each source's.
    fn anyhow_like(e: &dyn std::error::Error) -> String {
        let mut words = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            words.push_str(&format!(": {s}"));
            source = s.source();
        }
        words
    }
}
