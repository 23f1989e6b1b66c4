//! Errors: [`ParamsError`] (configuration) and [`DetectError`] (running over files).

use std::path::PathBuf;

/// A [`crate::DetectorParams`] that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A field is outside its range.
    #[error("detector param `{field}` = {value} is outside {range}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range.
        range: &'static str,
    },
    /// Neither a level predictor nor the seasonal one is configured.
    #[error("detector params configure no predictor (empty `level_rates` and `seasonal` off)")]
    NoPredictor,
}

/// Everything that can go wrong running a detector over files on disk.
///
/// File variants carry the `path` and, for a row, its 1-based `line` (the header is
/// line 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The detector params are invalid.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The OS failed to read or write a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CSV file itself is unusable (unreadable, empty, a missing column, a short
    /// row), as the NAB reader reports it with file and line.
    #[error(transparent)]
    Csv(#[from] harbinger_nab::NabError),
    /// A timestamp is not `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    #[error("{path} line {line}: bad timestamp {value:?} (expected YYYY-MM-DD HH:MM:SS)")]
    BadTimestamp {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A value is not a number.
    #[error("{path} line {line}: bad value {value:?} (not a number)")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The data directory holds no `<category>/<name>.csv` file.
    #[error("{path}: no <category>/<name>.csv data file")]
    NoDataFiles {
        /// The data directory.
        path: PathBuf,
    },
}
