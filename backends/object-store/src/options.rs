//! The options of `object-store`, declared once (see
//! [`rechunk_contract::options`]): scenarios, `harness list` and the backend's
//! defaults all come from this declaration.

use std::fmt;
use std::time::Duration;

use backend_tokio::options::BridgeChoice;
use rechunk_contract::backend_options;
use rechunk_contract::options::{Configured, OptionValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use stores::StoreUrl;

use crate::ObjectStoreBackend;

/// A store URL as an option's value: `file://`, `memory://` or
/// `s3://bucket/prefix`, checked when the scenario is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOption(pub StoreUrl);

impl fmt::Display for StoreOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for StoreOption {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StoreOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        StoreUrl::parse(&text)
            .map(StoreOption)
            .map_err(serde::de::Error::custom)
    }
}

impl OptionValue for StoreOption {
    fn kind(_: Option<(i64, i64)>) -> String {
        "a store URL: \"file://\", \"memory://\" or \"s3://bucket/prefix\"".into()
    }
    fn show(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

backend_options! {
    /// The options of `object-store`.
    pub struct ObjectStoreOptions {
        /// Where inputs are read: file:// (the local dataset through LocalFileSystem),
        /// memory:// (loaded before the timed region) or s3://bucket/prefix (the
        /// dataset is uploaded there if missing).
        input: StoreOption = StoreOption(StoreUrl::File);
        /// Where the Zarr output is written: file://, memory:// (copied to the output
        /// directory after the timed region, for verification) or s3://bucket/prefix
        /// (emptied before, verified there).
        output: StoreOption = StoreOption(StoreUrl::File);
        /// Container layout: consecutive messages fetched by one get_ranges (1: one
        /// get_range per message).
        ranges_per_request: usize = 1, range 1..=65536;
        /// How CPU work is handed to Rayon, as for tokio-rayon.
        bridge: BridgeChoice = BridgeChoice::Oneshot;
        /// Tokio worker threads, which only drive IO and hand-overs.
        tokio_workers: usize = 1, range 1..=64;
        /// In-process network emulation (object_store's ThrottledStore, no proxy):
        /// milliseconds every get, get_range and get_ranges waits before it is sent;
        /// 0: none. Needs an s3:// or memory:// input (ThrottledStore cannot wrap
        /// file:// reads).
        throttle_get_ms: u64 = 0, range 0..=60000;
        /// In-process network emulation: milliseconds every put waits before it is
        /// sent; 0: none.
        throttle_put_ms: u64 = 0, range 0..=60000;
        /// In-process network emulation: nanoseconds every byte read waits (1000 ns:
        /// 1 MB/s, i.e. 8 Mbit/s per request); 0: none. Reads only: ThrottledStore
        /// has no per-byte cost for puts.
        throttle_byte_ns: u64 = 0, range 0..=1000000;
    }
}

impl Configured for ObjectStoreBackend {
    type Options = ObjectStoreOptions;
    const NAME: &'static str = "object-store";
    const SUMMARY: &'static str = "tokio-rayon's pipeline with every read and write an \
        object_store request (get / get_range / get_ranges / put); input and output stores \
        by URL";

    fn from_options(o: ObjectStoreOptions) -> ObjectStoreBackend {
        let mut b = ObjectStoreBackend::new(o.input.0, o.output.0);
        b.ranges_per_request = o.ranges_per_request;
        b.bridge = o.bridge.into();
        b.tokio_workers = o.tokio_workers;
        b.throttle = crate::Throttle {
            get_per_call: Duration::from_millis(o.throttle_get_ms),
            put_per_call: Duration::from_millis(o.throttle_put_ms),
            get_per_byte: Duration::from_nanos(o.throttle_byte_ns),
        }
        .active();
        b
    }
}
