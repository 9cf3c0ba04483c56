//! Logging macros that route to `log`, `defmt`, or nowhere.
//!
//! The core never calls a logging crate directly: it calls these macros, which
//! expand to `log::…!` with the `log` feature, `defmt::…!` with the `defmt`
//! feature, and to nothing (arguments still type-checked, never evaluated) when
//! neither is enabled.

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("the `log` and `defmt` features are mutually exclusive: enable at most one");

macro_rules! log_at {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        { ::log::$level!($($arg)+); }
        #[cfg(feature = "defmt")]
        { ::defmt::$level!($($arg)+); }
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { if false { let _ = ::core::format_args!($($arg)+); } }
    }};
}

macro_rules! trace { ($($arg:tt)+) => { log_at!(trace, $($arg)+) }; }
macro_rules! debug { ($($arg:tt)+) => { log_at!(debug, $($arg)+) }; }
#[allow(unused_macros)]
macro_rules! info { ($($arg:tt)+) => { log_at!(info, $($arg)+) }; }
#[allow(unused_macros)]
macro_rules! warn { ($($arg:tt)+) => { log_at!(warn, $($arg)+) }; }
