//! Logging set-up and the `Redacted` wrapper: operational logs carry opaque ids
//! only; anything that may hold PHI or a secret is wrapped so it cannot be formatted.

use std::fmt;

use tracing_subscriber::{fmt as tfmt, prelude::*, EnvFilter};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object a line, for log shippers.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Installs the global subscriber, filtered by `BEDSIDE_LOG` (default `info`), writing to stderr.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BEDSIDE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,str0m=warn,dimpl=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(tfmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text => registry
            .with(tfmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // A subscriber installed already (tests, embedding) is fine.
    let _ = result;
}

/// Wraps a value that must never reach a log: `Debug` and `Display` print a placeholder
/// and the length, never the content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> Redacted<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.as_ref().len())
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_hides_content() {
        let r = Redacted(String::from("Ada Lovelace"));
        assert_eq!(format!("{r}"), "<redacted 12 bytes>");
        assert_eq!(format!("{r:?}"), "<redacted 12 bytes>");
        assert_eq!(r.expose(), "Ada Lovelace");
    }
}
