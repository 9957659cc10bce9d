//! `sequential` has no options of its own; declared all the same, so that every
//! backend is configured the same way (see [`rechunk_contract::options`]).

use rechunk_contract::backend_options;
use rechunk_contract::options::Configured;

use crate::Sequential;

backend_options! {
    /// The options of `sequential`: none.
    pub struct SequentialOptions {}
}

impl Configured for Sequential {
    type Options = SequentialOptions;
    const NAME: &'static str = "sequential";
    const SUMMARY: &'static str =
        "one thread, std::fs, every step in order: the oracle and the baseline";

    fn from_options(_: SequentialOptions) -> Sequential {
        Sequential
    }
}
