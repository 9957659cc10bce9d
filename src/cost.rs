//! What a run's requests would cost on a cloud object store: the one price table
//! ([`PRICES`]) and the estimate from a run's request counts.
//!
//! Only requests are priced (not storage, not data transfer, which inside one
//! region is free on S3), and only requests to an S3 store (`s3 …` kinds): local
//! and in-memory stores cost nothing per request. Retries are priced as the
//! requests they repeat would be, when the results show them (HTTP attempts beyond
//! the requests).

use rechunk_contract::RequestOp;

/// The price list the estimates use: Amazon S3 Standard, US East (N. Virginia),
/// request prices in USD per 1,000 requests, as published on
/// <https://aws.amazon.com/s3/pricing/> ("Requests & data retrievals") and quoted
/// in this project's issue 15; entered 2026-11-27, not re-read from the page on
/// that day (this machine has no web access): check the page before quoting a
/// figure. S3 bills HEAD as "GET and all other requests", LIST with PUT, COPY
/// and POST, and DELETE and abort (cancel) free.
pub const PRICES: PriceList = PriceList {
    name: "S3 Standard, us-east-1 (aws.amazon.com/s3/pricing, as quoted in issue 15; entered 2026-11-27)",
    get_class_per_1000: 0.0004,
    put_class_per_1000: 0.005,
};

/// Request prices of one storage class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceList {
    /// Which list, from where, and when.
    pub name: &'static str,
    /// USD per 1,000 GET, HEAD (and other read) requests.
    pub get_class_per_1000: f64,
    /// USD per 1,000 PUT, COPY, POST and LIST requests.
    pub put_class_per_1000: f64,
}

/// The class an operation is billed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceClass {
    /// GET, HEAD and other reads.
    Get,
    /// PUT, COPY, POST, LIST.
    Put,
    /// DELETE and abort: not billed.
    Free,
}

impl PriceClass {
    /// The class's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            PriceClass::Get => "GET class",
            PriceClass::Put => "PUT class",
            PriceClass::Free => "free",
        }
    }
}

/// The class `op` is billed in: one object_store call is one request, except
/// `get_ranges` on a non-S3 store (never billed anyway).
pub fn class(op: RequestOp) -> PriceClass {
    match op {
        RequestOp::Get | RequestOp::GetRange | RequestOp::GetRanges | RequestOp::Head => {
            PriceClass::Get
        }
        RequestOp::Put
        | RequestOp::List
        | RequestOp::Copy
        | RequestOp::CreateMultipart
        | RequestOp::UploadPart
        | RequestOp::CompleteMultipart => PriceClass::Put,
        RequestOp::Delete | RequestOp::AbortMultipart => PriceClass::Free,
    }
}

impl PriceList {
    /// USD per request of class `c`.
    pub fn per_request(&self, c: PriceClass) -> f64 {
        match c {
            PriceClass::Get => self.get_class_per_1000 / 1000.0,
            PriceClass::Put => self.put_class_per_1000 / 1000.0,
            PriceClass::Free => 0.0,
        }
    }

    /// USD for `count` requests of the kind named `kind` (`s3 get`, …, as results
    /// name them), or `None` when the kind is not an S3 request (not billed) or not
    /// a known operation.
    pub fn cost(&self, kind: &str, count: f64) -> Option<f64> {
        let (store, op) = kind.split_once(' ')?;
        if store != "s3" {
            return None;
        }
        let op = RequestOp::from_name(op)?;
        Some(count * self.per_request(class(op)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_priced_by_class_on_s3_only() {
        let p = PRICES;
        assert_eq!(p.cost("s3 get", 1000.0), Some(0.0004));
        assert_eq!(p.cost("s3 get_range", 2000.0), Some(0.0008));
        assert_eq!(p.cost("s3 head", 1000.0), Some(0.0004));
        assert_eq!(p.cost("s3 put", 1000.0), Some(0.005));
        assert_eq!(p.cost("s3 list", 1.0), Some(0.000005));
        assert_eq!(p.cost("s3 delete", 1000.0), Some(0.0));
        assert_eq!(p.cost("file put", 1000.0), None);
        assert_eq!(p.cost("memory get", 1000.0), None);
        assert_eq!(p.cost("s3 teleport", 1.0), None);
        // 146,000 GETs and 4,000 PUTs (1000 variables × 2 × 2 tiles of 32×32): one
        // icon-like run read from and written to S3.
        let run = p.cost("s3 get", 146_000.0).unwrap() + p.cost("s3 put", 4_000.0).unwrap();
        assert!((run - 0.0784).abs() < 1e-9, "{run}");
    }
}
