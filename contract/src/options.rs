//! Backend options, declared once.
//!
//! A backend's own knobs (queue depth, bridge, pool sizes, …) are one struct,
//! declared with [`backend_options!`](crate::backend_options): each field with its
//! doc comment (the help text), its type, its default and, where it has them, its
//! range and the option it requires. From that one declaration come
//!
//! - the struct itself, deserialized with serde (`deny_unknown_fields`, every
//!   field defaulted), so a scenario's `[[backend]]` table is read straight into it;
//! - [`BackendOptions::docs`], what `harness list` prints and scenario errors cite;
//! - [`BackendOptions::check`], the ranges and requirements;
//! - `Default`, the documented defaults, which the backend's own `Default` uses.
//!
//! A backend ties its options to itself with [`Configured`]. Adding an option is
//! one field in the backend's crate.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Backend;

/// What `harness list` and scenario errors say about one option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OptionDoc {
    /// The key in a `[[backend]]` table.
    pub key: &'static str,
    /// The values it takes, in words: `true or false`, `an integer from 1 to 64`.
    pub kind: String,
    /// The default, as a scenario would write it (`unset` for an optional one).
    pub default: String,
    /// What it does (the field's doc comment).
    pub help: String,
}

/// An option's value that is out of range or conflicts with another.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionError {
    /// The offending key.
    pub key: &'static str,
    /// Whether the value itself is wrong (out of range), rather than its
    /// combination with another option.
    pub in_value: bool,
    /// What is wrong and what would be right, naming the key:
    /// `depth must be an integer from 1 to 8`.
    pub message: String,
}

/// The options of one backend; implemented by [`backend_options!`](crate::backend_options).
pub trait BackendOptions:
    Default + Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Every option, in declaration order.
    fn docs() -> Vec<OptionDoc>;
    /// Ranges and requirements that the types alone do not enforce.
    fn check(&self) -> Result<(), OptionError>;
}

/// A backend built from its declared options.
pub trait Configured: Backend + Sized {
    /// Its options.
    type Options: BackendOptions;
    /// The name scenarios use (the same as [`Backend::name`]).
    const NAME: &'static str;
    /// One line for `harness list`.
    const SUMMARY: &'static str;
    /// The backend with these options (already [checked](BackendOptions::check)).
    fn from_options(options: Self::Options) -> Self;
}

/// A type an option can have: what values it takes, and how a value reads.
pub trait OptionValue {
    /// The values, in words, given the declared range if any.
    fn kind(range: Option<(i64, i64)>) -> String;
    /// The value as a scenario would write it.
    fn show(&self) -> String;
    /// The value as an integer, for range checks.
    fn as_i64(&self) -> Option<i64> {
        None
    }
    /// Whether a boolean option is on, for `requires`.
    fn is_on(&self) -> bool {
        false
    }
}

impl OptionValue for bool {
    fn kind(_: Option<(i64, i64)>) -> String {
        "true or false".into()
    }
    fn show(&self) -> String {
        self.to_string()
    }
    fn is_on(&self) -> bool {
        *self
    }
}

macro_rules! integer_option {
    ($($t:ty),*) => {$(
        impl OptionValue for $t {
            fn kind(range: Option<(i64, i64)>) -> String {
                match range {
                    Some((lo, hi)) => format!("an integer from {lo} to {hi}"),
                    None => "an integer".into(),
                }
            }
            fn show(&self) -> String {
                self.to_string()
            }
            fn as_i64(&self) -> Option<i64> {
                i64::try_from(*self).ok().or(Some(i64::MAX))
            }
        }
    )*};
}
integer_option!(u32, u64, usize);

impl<T: OptionValue> OptionValue for Option<T> {
    fn kind(range: Option<(i64, i64)>) -> String {
        T::kind(range)
    }
    fn show(&self) -> String {
        match self {
            Some(v) => v.show(),
            None => "unset".into(),
        }
    }
    fn as_i64(&self) -> Option<i64> {
        self.as_ref().and_then(T::as_i64)
    }
    fn is_on(&self) -> bool {
        self.as_ref().is_some_and(T::is_on)
    }
}

/// Implements [`OptionValue`] for a fieldless enum whose serde names are the
/// given strings: `choice_option!(Bridge { Oneshot = "oneshot", TokioRayon =
/// "tokio-rayon" });` (the enum derives serde with the same names).
#[macro_export]
macro_rules! choice_option {
    ($ty:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        impl $crate::options::OptionValue for $ty {
            fn kind(_: Option<(i64, i64)>) -> String {
                let names: &[&str] = &[$(concat!("\"", $name, "\"")),+];
                format!("one of {}", names.join(", "))
            }
            fn show(&self) -> String {
                match self {
                    $($ty::$variant => concat!("\"", $name, "\"").to_string(),)+
                }
            }
        }
    };
}

/// Declares a backend's options: the struct, its defaults, its docs and its checks
/// (see the [module](crate::options)). Each field: doc comment (the help), `name:
/// Type = default`, then optionally `, range LO..=HI` (integers) and `, requires
/// other` (a boolean that needs the boolean `other` on), and `;`.
///
/// ```
/// rechunk_contract::backend_options! {
///     /// Options of an example backend.
///     pub struct ExampleOptions {
///         /// Worker threads.
///         workers: usize = 4, range 1..=64;
///         /// Use the fast path.
///         fast: bool = false;
///         /// Also check the fast path (needs `fast`).
///         checked: bool = false, requires fast;
///     }
/// }
/// use rechunk_contract::options::BackendOptions;
/// let o: ExampleOptions = serde_json::from_str(r#"{"workers": 8}"#).unwrap();
/// assert_eq!((o.workers, o.fast), (8, false));
/// assert!(ExampleOptions { workers: 0, ..Default::default() }.check().is_err());
/// assert_eq!(ExampleOptions::docs()[0].kind, "an integer from 1 to 64");
/// ```
#[macro_export]
macro_rules! backend_options {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr
                $(, range $lo:literal ..= $hi:literal)?
                $(, requires $req:ident)?
                ;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }

        impl $crate::options::BackendOptions for $name {
            fn docs() -> Vec<$crate::options::OptionDoc> {
                vec![$(
                    $crate::options::OptionDoc {
                        key: stringify!($field),
                        kind: <$ty as $crate::options::OptionValue>::kind(
                            $crate::__option_range!($($lo, $hi)?),
                        ),
                        default: {
                            let default: $ty = $default;
                            $crate::options::OptionValue::show(&default)
                        },
                        help: [$($doc),*]
                            .iter()
                            .map(|line: &&str| line.trim())
                            .collect::<Vec<_>>()
                            .join(" "),
                    },
                )*]
            }

            fn check(&self) -> Result<(), $crate::options::OptionError> {
                $(
                    if let (Some((lo, hi)), Some(v)) = (
                        $crate::__option_range!($($lo, $hi)?),
                        $crate::options::OptionValue::as_i64(&self.$field),
                    ) {
                        if v < lo || v > hi {
                            return Err($crate::options::OptionError {
                                key: stringify!($field),
                                in_value: true,
                                message: format!(
                                    "{} must be an integer from {lo} to {hi}",
                                    stringify!($field)
                                ),
                            });
                        }
                    }
                    $(
                        if $crate::options::OptionValue::is_on(&self.$field)
                            && !$crate::options::OptionValue::is_on(&self.$req)
                        {
                            return Err($crate::options::OptionError {
                                key: stringify!($field),
                                in_value: false,
                                message: format!(
                                    "{} = true needs {} = true",
                                    stringify!($field),
                                    stringify!($req)
                                ),
                            });
                        }
                    )?
                )*
                Ok(())
            }
        }
    };
}

/// The range of a [`backend_options!`](crate::backend_options) field, if declared.
#[doc(hidden)]
#[macro_export]
macro_rules! __option_range {
    () => {
        None::<(i64, i64)>
    };
    ($lo:literal, $hi:literal) => {
        Some(($lo as i64, $hi as i64))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        Plain,
        ExtraFast,
    }
    crate::choice_option!(Mode { Plain = "plain", ExtraFast = "extra-fast" });

    crate::backend_options! {
        /// Test options.
        struct TestOptions {
            /// How.
            mode: Mode = Mode::Plain;
            /// Depth of
            /// the queue.
            depth: Option<u32> = None, range 1..=8;
            /// A.
            a: bool = false;
            /// B, which needs A.
            b: bool = false, requires a;
        }
    }

    #[test]
    fn one_declaration_gives_docs_defaults_parsing_and_checks() {
        let docs = TestOptions::docs();
        let keys: Vec<_> = docs.iter().map(|d| d.key).collect();
        assert_eq!(keys, ["mode", "depth", "a", "b"]);
        assert_eq!(docs[0].kind, r#"one of "plain", "extra-fast""#);
        assert_eq!(docs[0].default, r#""plain""#);
        assert_eq!(docs[1].kind, "an integer from 1 to 8");
        assert_eq!(docs[1].default, "unset");
        assert_eq!(docs[1].help, "Depth of the queue.");

        let o: TestOptions = serde_json::from_str(r#"{"mode": "extra-fast", "depth": 3}"#).unwrap();
        assert_eq!((o.mode, o.depth, o.a), (Mode::ExtraFast, Some(3), false));
        assert!(o.check().is_ok());
        let e = serde_json::from_str::<TestOptions>(r#"{"deep": 3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `deep`"), "{e}");

        let deep = TestOptions {
            depth: Some(9),
            ..Default::default()
        };
        assert_eq!(
            deep.check().unwrap_err().to_string(),
            "depth must be an integer from 1 to 8"
        );
        let b = TestOptions {
            b: true,
            ..Default::default()
        };
        assert_eq!(
            b.check().unwrap_err().to_string(),
            "b = true needs a = true"
        );
    }
}
