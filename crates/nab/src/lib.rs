//! harbinger-nab: the Numenta Anomaly Benchmark (NAB v1.1) scoring rule, so harbinger's
//! detectors can be scored on NAB's corpus exactly as NAB scores them.
//!
//! The rule is the one in `spec/nab-scoring.md` (shared spec directory), quirks
//! included: an alarm's weight depends only on where its row lies relative to the
//! windows (scaled sigmoid inside a window and after one, full `-A_FP` before the first
//! window has closed); each window counts once, through its earliest alarm; each alarm
//! outside windows is charged; rows in the probation period (`min(floor(0.15 n), 750)`)
//! are ignored; one threshold per profile is optimised on the scored files themselves,
//! by an exact sweep, ties going to the highest threshold; scores are normalised so that
//! the null detector gets 0 and the perfect one 100.
//!
//! # Layout
//! - [`profile`]: [`Profile`] (standard, reward_low_FP_rate, reward_low_FN_rate) and
//!   their [`Weights`].
//! - [`score`]: [`score_corpus`] (thresholds optimised, as NAB) and [`score_corpus_at`]
//!   (fixed thresholds, for held-out files), returning a [`CorpusScore`] with per-profile,
//!   per-category and per-file results and [`CorpusScore::to_table`];
//!   [`fit_thresholds_with_margin`] chooses thresholds to carry to other files (the best
//!   mean score within a margin either side, off the cliff's edge NAB's optimum sits on);
//!   [`score_held_out`] and [`score_leave_one_category_out`] pool folds scored at
//!   thresholds fitted elsewhere.
//! - [`files`]: NAB's files: [`load_windows`], [`read_data_file`],
//!   [`read_results_scores`], [`write_results_file`], and the directory walk
//!   [`load_corpus`] / [`score_dirs`].
//! - [`error`]: [`NabError`], which names the file (and line or row) at fault.
//!
//! The design decision that matters: the scorer works on row *positions*. Window bounds
//! are turned into row indices once (timestamps compared as instants, so
//! `13:45:00.000000` in the labels matches `13:45:00` in the data), and results files
//! are matched to data files by row position, as NAB does; their own timestamps and
//! `label` columns are not read.
//!
//! Start with [`score_dirs`] (directories on disk) or [`score_corpus`] (in memory).

pub mod error;
pub mod files;
pub mod profile;
pub mod score;
mod timestamp;

pub use error::NabError;
pub use files::{
    DataFile, Windows, load_corpus, load_windows, read_columns, read_data_file, read_results_scores, score_dirs, write_results_file,
};
pub use profile::{Profile, Weights};
pub use score::{
    CategoryScore, CorpusScore, FileInput, FileScore, FoldScore, HeldOutFold, HeldOutProfile, HeldOutScore, MarginFit, NO_ALARM_THRESHOLD,
    ProfileScore, ThresholdSource, Thresholds, fit_thresholds_with_margin, probation_length, scaled_sigmoid, score_corpus, score_corpus_at,
    score_held_out, score_leave_one_category_out,
};
