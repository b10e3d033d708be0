//! The words of the option vocabularies (`"file"`, `"wait"`, `"backward"`…),
//! defined once: every binding, the gateway and the contract read them here.

/// Gives a fieldless enum its stable names: `NAMES`, `as_str`, `Display`
/// and a case-insensitive `FromStr` that refuses anything else with an
/// `InvalidArgument` error listing the accepted words.
macro_rules! vocabulary {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The stable name of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                match s.to_ascii_lowercase().as_str() {
                    $($name $(| $alias)* => Ok(Self::$variant),)+
                    _ => Err($crate::error::Error::new(
                        $crate::error::ErrorKind::InvalidArgument,
                        format!(
                            "unknown {} {s:?}; use {}",
                            $what,
                            $crate::vocabulary::one_of(Self::NAMES)
                        ),
                    )),
                }
            }
        }
    };
}

pub(crate) use vocabulary;

/// `"a, b or c"`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
