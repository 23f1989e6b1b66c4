//! The crate's one error type.

use std::path::PathBuf;

use crate::profile::Profile;

/// Everything that can go wrong reading NAB files or scoring a corpus.
///
/// File-reading variants carry the `path` and, where there is one, the 1-based `line`
/// (the header is line 1). Scoring variants carry the NAB file key
/// (`"<category>/<file>.csv"`) and, for a row, its 0-based row index in the data file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NabError {
    /// The OS failed to read or write a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The labels file is not `{"<category>/<file>.csv": [[start, end], ...], ...}`.
    #[error("{path}: not a NAB windows file: {source}")]
    LabelsJson {
        /// The labels file.
        path: PathBuf,
        /// What serde_json found.
        source: serde_json::Error,
    },
    /// A CSV file has no header line.
    #[error("{path}: empty file (no header line)")]
    EmptyCsv {
        /// The file.
        path: PathBuf,
    },
    /// A CSV header lacks a required column.
    #[error("{path} line {line}: header has no column `{column}`")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// Line of the header.
        line: usize,
        /// The column expected.
        column: &'static str,
    },
    /// A CSV row has fewer fields than the header requires.
    #[error("{path} line {line}: {found} fields, column `{column}` needs at least {needed}")]
    ShortRow {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column that is missing on this row.
        column: &'static str,
        /// Fields needed to reach that column.
        needed: usize,
        /// Fields present.
        found: usize,
    },
    /// A CSV field is not a number.
    #[error("{path} line {line}: column `{column}`: {value:?} is not a number")]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column.
        column: &'static str,
        /// The text found.
        value: String,
    },
    /// A results file has an `anomaly_score` that is NaN or outside [0, 1].
    #[error("{path} line {line}: anomaly_score {value} is not in [0, 1]")]
    BadScoreInFile {
        /// The results file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The value found.
        value: f64,
    },
    /// A data file of the corpus has no results file.
    #[error("no results for {file}: {path} does not exist")]
    MissingResults {
        /// NAB file key, `"<category>/<file>.csv"`.
        file: String,
        /// The results file looked for.
        path: PathBuf,
    },
    /// A results file does not have one row per data row.
    #[error("{path}: {found} rows, but the data file of {file} has {expected}")]
    RowCountMismatch {
        /// NAB file key.
        file: String,
        /// The results file.
        path: PathBuf,
        /// Rows in the data file.
        expected: usize,
        /// Rows in the results file.
        found: usize,
    },
    /// A data file has no entry in the labels file (NAB raises `KeyError` here).
    #[error("{file} has no entry in the labels file {labels}")]
    NotInLabels {
        /// NAB file key.
        file: String,
        /// The labels file.
        labels: PathBuf,
    },
    /// The data directory holds no `<category>/*.csv` file.
    #[error("{path}: no data files (<category>/*.csv)")]
    NoDataFiles {
        /// The data directory.
        path: PathBuf,
    },
    /// A file key is not `"<category>/<file>"`.
    #[error("file name {name:?} is not of the form \"<category>/<file>.csv\"")]
    BadFileName {
        /// The name given.
        name: String,
    },
    /// The same file key appears twice in one corpus.
    #[error("{name} appears twice in the corpus")]
    DuplicateFile {
        /// The file key.
        name: String,
    },
    /// A [`crate::FileInput`] has a different number of timestamps and scores.
    #[error("{file}: {timestamps} timestamps but {scores} anomaly scores")]
    LengthMismatch {
        /// NAB file key.
        file: String,
        /// Number of timestamps.
        timestamps: usize,
        /// Number of scores.
        scores: usize,
    },
    /// An anomaly score is NaN or outside [0, 1].
    #[error("{file} row {row}: anomaly score {value} is not in [0, 1]")]
    ScoreOutOfRange {
        /// NAB file key.
        file: String,
        /// 0-based data row.
        row: usize,
        /// The value found.
        value: f64,
    },
    /// A data timestamp is not `YYYY-MM-DD HH:MM[:SS[.fraction]]`.
    #[error("{file} row {row}: cannot read timestamp {value:?} (expected YYYY-MM-DD HH:MM:SS)")]
    BadTimestamp {
        /// NAB file key.
        file: String,
        /// 0-based data row.
        row: usize,
        /// The text found.
        value: String,
    },
    /// A window bound is not a timestamp.
    #[error("{file}: cannot read window bound {value:?} (expected YYYY-MM-DD HH:MM:SS)")]
    BadWindowTimestamp {
        /// NAB file key.
        file: String,
        /// The text found.
        value: String,
    },
    /// A window bound is not a timestamp of the file.
    #[error("{file}: window bound {timestamp:?} is not a timestamp of the file")]
    WindowNotFound {
        /// NAB file key.
        file: String,
        /// The window bound.
        timestamp: String,
    },
    /// Windows must have start <= end, be ordered and not overlap.
    #[error("{file}: window {index} [{start}, {end}] ends before it starts or overlaps the previous window")]
    WindowOrder {
        /// NAB file key.
        file: String,
        /// 0-based index of the window in the file's list.
        index: usize,
        /// Its start.
        start: String,
        /// Its end.
        end: String,
    },
    /// A fixed threshold is NaN.
    #[error("threshold for profile {profile} is NaN")]
    BadThreshold {
        /// The profile.
        profile: Profile,
    },
    /// A threshold margin that is negative, NaN or infinite.
    #[error("threshold margin {margin} must be a finite number >= 0 (score units)")]
    BadMargin {
        /// The margin given.
        margin: f64,
    },
    /// The corpus has no anomaly window, so the 0-100 normalisation is undefined.
    #[error("the scored files have no anomaly window: the NAB normalisation (perfect minus null) is undefined")]
    NoWindows,
    /// The null detector scores as well as the perfect one, so normalisation is undefined.
    #[error("profile {profile}: null detector score {null} is not below the perfect score {perfect}")]
    DegenerateNormalisation {
        /// The profile.
        profile: Profile,
        /// Raw score of the null detector.
        null: f64,
        /// Raw score of the perfect detector.
        perfect: f64,
    },
}
