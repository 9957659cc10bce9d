//! How to reach S3: endpoint, region, credentials (never shown), timeouts and retries.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to reach S3: each field overrides the `AWS_*` environment variable of the
/// same meaning (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct S3Config {
    /// The server's URL (`http://127.0.0.1:3900`); else `AWS_ENDPOINT` or
    /// `AWS_ENDPOINT_URL`; else AWS itself.
    pub endpoint: Option<String>,
    /// The region the requests are signed for; else `AWS_REGION`.
    pub region: Option<String>,
    /// Secret: never serialized (the harness hands it to its child processes in the
    /// environment instead) and redacted by `Debug`; else `AWS_ACCESS_KEY_ID`.
    #[serde(skip)]
    pub access_key_id: Option<String>,
    /// Secret, like [`S3Config::access_key_id`]; else `AWS_SECRET_ACCESS_KEY`.
    #[serde(skip)]
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` (also implied by an `http://` endpoint or
    /// `AWS_ALLOW_HTTP=true`).
    pub allow_http: Option<bool>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Config {
    /// The endpoint in effect (the scenario's, else `AWS_ENDPOINT` /
    /// `AWS_ENDPOINT_URL`), for messages; `None`: AWS itself.
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT")
                .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                .ok()
        })
    }

    /// Whether both keys are given (here or in the environment).
    pub fn has_credentials(&self) -> bool {
        self.has_credentials_in(|var| std::env::var(var).ok())
    }

    /// [`S3Config::has_credentials`] with `env` standing for the environment.
    fn has_credentials_in(&self, env: impl Fn(&str) -> Option<String>) -> bool {
        let has = |field: &Option<String>, var: &str| {
            field.is_some() || env(var).is_some_and(|v| !v.is_empty())
        };
        has(&self.access_key_id, "AWS_ACCESS_KEY_ID")
            && has(&self.secret_access_key, "AWS_SECRET_ACCESS_KEY")
    }

    /// Whether an S3 endpoint is configured at all (scenario or environment).
    pub fn configured(&self) -> bool {
        self.endpoint().is_some()
    }
}

// Retries and timeouts for S3: a stopped server must end a run with an error within
// seconds, not after object_store's default three minutes of retrying.

/// How long connecting to the S3 server may take.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one S3 request may take.
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections the S3 client keeps per host: as many as requests can be in
/// flight (the harness allows `io_in_flight` up to 65,536), so that no connection
/// made for a burst is closed and made again. object_store's client speaks HTTP/1
/// only (its default; S3 has no HTTP/2), one request per connection at a time,
/// and neither it nor reqwest caps the connections, so `n` requests outstanding
/// are `n` connections; this is the only pool setting, made explicit. Idle ones
/// close after reqwest's 90 s.
pub const S3_MAX_CONNECTIONS: usize = 65_536;
/// How often a failed S3 request is retried.
pub const S3_MAX_RETRIES: usize = 2;
/// How long the retries of one S3 request may take together.
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_need_both_keys_from_the_table_or_the_environment() {
        let none = |_: &str| None;
        assert!(!S3Config::default().has_credentials_in(none));
        let id_only = S3Config {
            access_key_id: Some("GKid".into()),
            ..Default::default()
        };
        assert!(!id_only.has_credentials_in(none));
        assert!(id_only.has_credentials_in(|v| (v == "AWS_SECRET_ACCESS_KEY").then(|| "s".into())));
        let both_env = |v: &str| Some(if v.is_empty() { "" } else { "x" }.to_string());
        assert!(S3Config::default().has_credentials_in(both_env));
        assert!(!S3Config::default().has_credentials_in(|_| Some(String::new())));
    }

    #[test]
    fn credentials_never_show() {
        let c = S3Config {
            access_key_id: Some("GKsecretid".into()),
            secret_access_key: Some("verysecret".into()),
            ..Default::default()
        };
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(
            !shown.contains("secretid") && !shown.contains("verysecret"),
            "{shown}"
        );
    }
}
