//! The NAB v1.1 scoring rule: row weights, per-file raw scores, the corpus-wide threshold
//! sweep and the 0-100 normalisation.
//!
//! Everything here follows the spec (`nab-scoring.md`) section by section; the section
//! names are repeated in the comments. Rows before the probation length `P` are dropped
//! from scoring but still count for row indices and window widths.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::error::NabError;
use crate::profile::{Profile, Weights};
use crate::timestamp::TimeKey;

/// The "no alarm at all" candidate threshold NAB always evaluates first.
pub const NO_ALARM_THRESHOLD: f64 = 1.1;

/// NAB's scaled sigmoid: `2 / (1 + exp(5 y)) - 1` for `y <= 3`, `-1` for `y > 3`.
///
/// Written as NAB writes it (`2 * sigmoid(-5 y) - 1`), so values agree to the last bit.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 { -1.0 } else { 2.0 * (1.0 / (1.0 + (5.0 * y).exp())) - 1.0 }
}

/// Probation length `P = min(floor(0.15 n), 750)`, computed in floating point as NAB does
/// (`min(math.floor(0.15 * n), 0.15 * 5000)`).
pub fn probation_length(rows: usize) -> usize {
    let p = (0.15 * rows as f64).floor().min(0.15 * 5000.0);
    // Non-negative and at most 750, so the conversion is exact.
    p as usize
}

/// One data file to score, with a detector's anomaly scores.
#[derive(Clone, Debug, PartialEq)]
pub struct FileInput {
    /// NAB file key, `"<category>/<file>.csv"`. The category is the part before the first `/`.
    pub name: String,
    /// The data file's timestamps, in file order. Used only to place the windows.
    pub timestamps: Vec<String>,
    /// The detector's anomaly score for each row, in [0, 1], matched to rows by position.
    pub scores: Vec<f64>,
    /// The file's anomaly windows, `[start, end]` inclusive, as in `combined_windows.json`.
    pub windows: Vec<(String, String)>,
}

/// A threshold per profile, for [`score_corpus_at`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Threshold of [`Profile::Standard`].
    pub standard: f64,
    /// Threshold of [`Profile::RewardLowFp`].
    pub reward_low_fp: f64,
    /// Threshold of [`Profile::RewardLowFn`].
    pub reward_low_fn: f64,
}

impl Thresholds {
    /// The same threshold for every profile.
    pub const fn uniform(threshold: f64) -> Self {
        Thresholds { standard: threshold, reward_low_fp: threshold, reward_low_fn: threshold }
    }

    /// The threshold of `profile`.
    pub const fn get(&self, profile: Profile) -> f64 {
        match profile {
            Profile::Standard => self.standard,
            Profile::RewardLowFp => self.reward_low_fp,
            Profile::RewardLowFn => self.reward_low_fn,
        }
    }
}

/// How the thresholds of a [`CorpusScore`] were chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ThresholdSource {
    /// Optimised on the scored files themselves, as NAB does ([`score_corpus`]).
    Optimised,
    /// Given by the caller ([`score_corpus_at`]), e.g. fitted on another subset.
    Fixed,
}

/// Scores of one detector on a corpus, for every profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CorpusScore {
    /// Whether the thresholds were optimised here or given.
    pub threshold_source: ThresholdSource,
    /// Number of files scored.
    pub files: usize,
    /// Number of windows in the labels of those files (N).
    pub windows: usize,
    /// Number of rows scored (rows at or after the probation length of their file).
    pub scored_rows: usize,
    /// One entry per profile, in [`Profile::ALL`] order; see [`CorpusScore::profile`].
    pub profiles: [ProfileScore; 3],
}

/// The result of one profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileScore {
    /// The profile.
    pub profile: Profile,
    /// θ*: a row raises an alarm iff its score is `>= threshold`.
    /// [`NO_ALARM_THRESHOLD`] (1.1) means no alarm at all.
    pub threshold: f64,
    /// Raw score S(θ*): the sum of the per-file raw scores.
    pub raw: f64,
    /// Raw score of NAB's null detector (constant 0.5, its own threshold optimised) on the
    /// same files.
    pub null: f64,
    /// Raw score of the perfect detector, `A_TP * N`.
    pub perfect: f64,
    /// `100 * (raw - null) / (perfect - null)`: 0 = never alarm, 100 = perfect.
    pub normalised: f64,
    /// Per category, sorted by category name.
    pub categories: Vec<CategoryScore>,
    /// Per file, in input order.
    pub files: Vec<FileScore>,
}

/// One category of a [`ProfileScore`].
///
/// The category is scored at the profile's corpus threshold θ* (not re-optimised), and
/// normalised with its own totals: its `null` is the null detector threshold-optimised on
/// the category's files alone, its `perfect` is `A_TP * N_c`. Raw scores add across
/// files at a fixed θ, so the corpus score is the window-count-weighted mean of the
/// category scores whenever each null is "no alarm" (always the case on NAB data).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryScore {
    /// Category name (the directory under `data/`).
    pub category: String,
    /// Files in the category.
    pub files: usize,
    /// Windows in the category (N_c).
    pub windows: usize,
    /// Sum of the raw scores of its files at θ*.
    pub raw: f64,
    /// Null detector raw score on the category.
    pub null: f64,
    /// `A_TP * N_c`.
    pub perfect: f64,
    /// `100 * (raw - null) / (perfect - null)`; `None` when `perfect <= null`, which
    /// happens when the category has no window (e.g. `artificialNoAnomaly`): its false
    /// alarms then show only in `raw` (and in the corpus score).
    pub normalised: Option<f64>,
}

/// One file of a [`ProfileScore`], at θ*. The counts are informative and do not enter
/// the score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileScore {
    /// NAB file key.
    pub name: String,
    /// Windows in the file's labels.
    pub windows: usize,
    /// Windows with at least one alarm (at rows `>= P`).
    pub detected: usize,
    /// Alarm rows outside every window (each one is charged).
    pub false_alarms: usize,
    /// S_f(θ*).
    pub raw: f64,
}

impl CorpusScore {
    /// The result of `profile`.
    pub fn profile(&self, profile: Profile) -> &ProfileScore {
        &self.profiles[profile.index()]
    }

    /// The threshold of each profile, e.g. to apply unchanged to held-out files with
    /// [`score_corpus_at`].
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            standard: self.profile(Profile::Standard).threshold,
            reward_low_fp: self.profile(Profile::RewardLowFp).threshold,
            reward_low_fn: self.profile(Profile::RewardLowFn).threshold,
        }
    }

    /// A plain-text table: the three profile scores with their thresholds, then one row
    /// per category with its normalised score under each profile.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let source = match self.threshold_source {
            ThresholdSource::Optimised => "thresholds optimised on these files",
            ThresholdSource::Fixed => "fixed thresholds",
        };
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(out, "NAB scores: {} files, {} windows, {} scored rows ({source})", self.files, self.windows, self.scored_rows);
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<20} {:>14} {:>9} {:>10}", "profile", "threshold", "score", "raw");
        for p in &self.profiles {
            let threshold = if p.threshold > 1.0 { "none".to_string() } else { format!("{:.6}", p.threshold) };
            let _ = writeln!(out, "{:<20} {:>14} {:>9.2} {:>10.3}", p.profile.name(), threshold, p.normalised, p.raw);
        }
        let _ = writeln!(out);
        let name_w = self.profiles[0].categories.iter().map(|c| c.category.len()).max().unwrap_or(0).max(8);
        let _ = write!(out, "{:<name_w$} {:>5} {:>7}", "category", "files", "windows");
        for p in Profile::ALL {
            let _ = write!(out, " {:>18}", p.name());
        }
        let _ = writeln!(out);
        let mut any_na = false;
        for (i, c) in self.profiles[0].categories.iter().enumerate() {
            let _ = write!(out, "{:<name_w$} {:>5} {:>7}", c.category, c.files, c.windows);
            for p in &self.profiles {
                match p.categories.get(i).and_then(|c| c.normalised) {
                    Some(v) => {
                        let _ = write!(out, " {v:>18.2}");
                    }
                    None => {
                        any_na = true;
                        let raw = p.categories.get(i).map_or(0.0, |c| c.raw);
                        let _ = write!(out, " {:>18}", format!("n/a (raw {raw:.2})"));
                    }
                }
            }
            let _ = writeln!(out);
        }
        if any_na {
            let _ = writeln!(out, "n/a: no window in the category, so it cannot be normalised; its false alarms count in the totals.");
        }
        out
    }
}

/// Where a scored row lies, and its unweighted sigmoid value.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// Inside window `window`; `sig = sig(y)` with `y = -(R - i + 1) / W`.
    Window { window: usize, sig: f64 },
    /// Outside all windows; `sig` is `-1` before any window has closed, else
    /// `sig((i - R') / (W' - 1))` for the most recently closed window.
    Outside { sig: f64 },
}

#[derive(Clone, Copy, Debug)]
struct Row {
    score: f64,
    place: Place,
}

/// A file after validation, with its scored rows (`i >= P`) and their places.
#[derive(Debug)]
struct Prepared<'a> {
    name: &'a str,
    category: &'a str,
    /// Windows in the labels.
    windows: usize,
    /// Windows with at least one row `>= P` are `first_scored_window..windows` (windows
    /// are ordered, so those wholly inside probation come first).
    first_scored_window: usize,
    rows: Vec<Row>,
}

impl Prepared<'_> {
    fn scored_windows(&self) -> usize {
        self.windows - self.first_scored_window
    }
}

fn category_of(name: &str) -> Result<&str, NabError> {
    match name.split_once('/') {
        Some((category, file)) if !category.is_empty() && !file.is_empty() => Ok(category),
        _ => Err(NabError::BadFileName { name: name.to_string() }),
    }
}

/// Turns windows given by timestamps into inclusive row ranges `[L, R]`, checking
/// `L <= R` and that windows are ordered and do not overlap. A bound matches the first
/// row with the same instant (NAB's `timestamps[timestamps == t].index[0]`).
pub(crate) fn resolve_windows(file: &str, timestamps: &[String], windows: &[(String, String)]) -> Result<Vec<(usize, usize)>, NabError> {
    let mut first_row: HashMap<TimeKey, usize> = HashMap::with_capacity(timestamps.len());
    for (row, t) in timestamps.iter().enumerate() {
        let key = TimeKey::parse(t).ok_or_else(|| NabError::BadTimestamp { file: file.to_string(), row, value: t.clone() })?;
        first_row.entry(key).or_insert(row);
    }
    let find = |t: &String| -> Result<usize, NabError> {
        let key = TimeKey::parse(t).ok_or_else(|| NabError::BadWindowTimestamp { file: file.to_string(), value: t.clone() })?;
        first_row.get(&key).copied().ok_or_else(|| NabError::WindowNotFound { file: file.to_string(), timestamp: t.clone() })
    };
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(windows.len());
    for (index, (start, end)) in windows.iter().enumerate() {
        let (l, r) = (find(start)?, find(end)?);
        let after_previous = out.last().is_none_or(|&(_, prev_r)| l > prev_r);
        if l > r || !after_previous {
            return Err(NabError::WindowOrder { file: file.to_string(), index, start: start.clone(), end: end.clone() });
        }
        out.push((l, r));
    }
    Ok(out)
}

/// Validates one file and computes the place of each scored row ("Weight of an alarm on
/// row i").
fn prepare(input: &FileInput) -> Result<Prepared<'_>, NabError> {
    let category = category_of(&input.name)?;
    let n = input.scores.len();
    if input.timestamps.len() != n {
        return Err(NabError::LengthMismatch { file: input.name.clone(), timestamps: input.timestamps.len(), scores: n });
    }
    if let Some((row, &value)) = input.scores.iter().enumerate().find(|&(_, &v)| !(0.0..=1.0).contains(&v)) {
        return Err(NabError::ScoreOutOfRange { file: input.name.clone(), row, value });
    }
    let windows = resolve_windows(&input.name, &input.timestamps, &input.windows)?;
    let p = probation_length(n);

    let mut rows = Vec::with_capacity(n.saturating_sub(p));
    let mut next = 0; // next window to enter
    let mut current: Option<(usize, usize, usize)> = None; // (index, L, R)
    let mut closed: Option<(usize, usize)> = None; // most recently closed window: (R', W')
    for (i, &score) in input.scores.iter().enumerate() {
        if current.is_none()
            && let Some(&(l, r)) = windows.get(next)
            && l == i
        {
            current = Some((next, l, r));
            next += 1;
        }
        let place = match (current, closed) {
            // Inside [L, R]: y = -(R - i + 1) / W, from -1 (left edge) to -1/W (right edge).
            (Some((window, l, r)), _) => {
                let width = (r - l + 1) as f64;
                Place::Window { window, sig: scaled_sigmoid(-((r - i + 1) as f64) / width) }
            }
            // After a window closed: y = (i - R') / (W' - 1). A width-1 window gives
            // y = +inf, hence sig = -1 (NAB would divide by zero).
            (None, Some((prev_r, prev_w))) => Place::Outside { sig: scaled_sigmoid((i - prev_r) as f64 / (prev_w as f64 - 1.0)) },
            // Before the end of the first window: the full -A_FP.
            (None, None) => Place::Outside { sig: -1.0 },
        };
        if i >= p {
            rows.push(Row { score, place });
        }
        if let Some((_, l, r)) = current
            && r == i
        {
            closed = Some((r, r - l + 1));
            current = None;
        }
    }
    let first_scored_window = windows.iter().take_while(|&&(_, r)| r < p).count();
    Ok(Prepared { name: &input.name, category, windows: windows.len(), first_scored_window, rows })
}

/// Weight `w_i` of an alarm at `place` under `w`; `sig1 = sig(-1)`.
fn weight(place: Place, w: Weights, sig1: f64) -> f64 {
    match place {
        // NAB: unweighted * tpWeight / sig(-1), in that order.
        Place::Window { sig, .. } => sig * w.tp / sig1,
        Place::Outside { sig } => sig * w.fp,
    }
}

/// S_f at the alarm rule `alarm(score)` ("Score of one file at threshold θ").
#[derive(Clone, Copy, Debug)]
struct Tally {
    raw: f64,
    detected: usize,
    false_alarms: usize,
}

fn score_file(f: &Prepared<'_>, w: Weights, sig1: f64, alarm: impl Fn(f64) -> bool) -> Tally {
    let mut best: Vec<Option<f64>> = vec![None; f.windows];
    let mut fp = 0.0;
    let mut false_alarms = 0;
    for row in f.rows.iter().filter(|r| alarm(r.score)) {
        let x = weight(row.place, w, sig1);
        match row.place {
            Place::Window { window, .. } => {
                // Each window counts once: its best (= earliest) alarm.
                let b = &mut best[window];
                *b = Some(b.map_or(x, |b| b.max(x)));
            }
            Place::Outside { .. } => {
                fp += x;
                false_alarms += 1;
            }
        }
    }
    let mut raw = 0.0;
    let mut detected = 0;
    for b in &best[f.first_scored_window..] {
        match b {
            Some(x) => {
                raw += x;
                detected += 1;
            }
            None => raw -= w.fn_,
        }
    }
    Tally { raw: raw + fp, detected, false_alarms }
}

/// The sweep of "Threshold optimisation": candidates 1.1 and every distinct score of the
/// scored rows, `argmax S(θ)`, ties to the highest θ. `sorted` holds every scored row of
/// the corpus, scores descending, with window indices global to the corpus.
fn optimise(sorted: &[Row], total_windows: usize, scored_windows: usize, w: Weights, sig1: f64) -> f64 {
    let mut best = (NO_ALARM_THRESHOLD, f64::NEG_INFINITY);
    for (threshold, s) in sweep(sorted, total_windows, scored_windows, w, sig1) {
        // Strictly greater: thresholds decrease, so a tie keeps the higher one.
        if s > best.1 {
            best = (threshold, s);
        }
    }
    best.0
}

/// The raw score S(θ) at every candidate threshold, thresholds descending: first
/// "no alarm" (1.1), then each distinct score of the scored rows (every row at or above
/// it an alarm). A threshold θ between two candidates, in `(next, this]`, raises the same
/// alarms as `this`.
fn sweep(sorted: &[Row], total_windows: usize, scored_windows: usize, w: Weights, sig1: f64) -> Vec<(f64, f64)> {
    let mut best_in_window: Vec<Option<f64>> = vec![None; total_windows];
    let (mut tp, mut fp, mut detected) = (0.0_f64, 0.0_f64, 0_usize);
    let total = |tp: f64, fp: f64, detected: usize| tp + fp - w.fn_ * (scored_windows - detected) as f64;
    let mut out = vec![(NO_ALARM_THRESHOLD, total(0.0, 0.0, 0))];
    let mut k = 0;
    while let Some(first) = sorted.get(k) {
        let threshold = first.score;
        // All rows with this score become alarms together.
        while let Some(row) = sorted.get(k)
            && row.score == threshold
        {
            let x = weight(row.place, w, sig1);
            match row.place {
                Place::Window { window, .. } => match best_in_window[window] {
                    None => {
                        best_in_window[window] = Some(x);
                        tp += x;
                        detected += 1;
                    }
                    Some(b) if x > b => {
                        best_in_window[window] = Some(x);
                        tp += x - b;
                    }
                    Some(_) => {}
                },
                Place::Outside { .. } => fp += x,
            }
            k += 1;
        }
        out.push((threshold, total(tp, fp, detected)));
    }
    out
}

/// The threshold with the best raw score *around* it: the θ that maximises the mean of
/// S over `[θ − margin, θ + margin]` (S is a step function of θ, so the mean is exact),
/// ties to the highest θ; returns θ and that mean. `curve` is [`sweep`]'s output.
///
/// The exact optimum of S usually sits at a cliff's edge, just below the score of a
/// detection that a slightly higher threshold loses; on files the threshold was not fitted
/// on, the same detector's scores come out a little higher or lower, and a threshold at
/// the edge falls off it as often as not. The margin asks for a threshold whose
/// neighbourhood scores well.
fn smoothed_best(curve: &[(f64, f64)], margin: f64) -> (f64, f64) {
    // Ascending breakpoints a_i (the candidate scores, 1.1 excluded) and the value of S
    // on each side: S(t) = below[i] for a_{i-1} < t <= a_i (below[0]: every t <= a_0),
    // S(t) = curve[0].1 (no alarm) above the highest score.
    let points: Vec<(f64, f64)> = curve[1..].iter().rev().copied().collect();
    let no_alarm = curve[0].1;
    if points.is_empty() {
        return (NO_ALARM_THRESHOLD, no_alarm);
    }
    // S on (a_{i}, a_{i+1}] is points[i + 1].1; on (a_last, inf) it is `no_alarm`.
    let value_above = |i: usize| points.get(i + 1).map_or(no_alarm, |p| p.1);
    // H(x) = ∫_lo^x S, with prefix values at the breakpoints.
    let lo = points[0].0.min(0.0) - 2.0 * margin - 1.0;
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = (points[0].0 - lo) * points[0].1;
    prefix.push(acc);
    for i in 1..points.len() {
        acc += (points[i].0 - points[i - 1].0) * points[i].1;
        prefix.push(acc);
    }
    let integral = |x: f64| -> f64 {
        // The last breakpoint at or below x.
        let j = points.partition_point(|p| p.0 <= x);
        if j == 0 { (x - lo) * points[0].1 } else { prefix[j - 1] + (x - points[j - 1].0) * value_above(j - 1) }
    };
    let mean = |theta: f64| (integral(theta + margin) - integral(theta - margin)) / (2.0 * margin);
    // The mean is piecewise linear in θ with kinks where θ ± margin meets a breakpoint:
    // its maximum is at one of them (or anywhere above them all, where it is `no_alarm`).
    let mut candidates: Vec<f64> = points.iter().flat_map(|p| [p.0 - margin, p.0 + margin]).collect();
    candidates.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut best = (NO_ALARM_THRESHOLD, no_alarm);
    for theta in candidates {
        let m = mean(theta);
        if m > best.1 + 1e-12 * m.abs().max(1.0) {
            best = (theta, m);
        }
    }
    best
}

/// The null detector (constant 0.5), threshold-optimised on `files`: the better of
/// "no alarm" (θ = 1.1) and "every row an alarm" (θ = 0.5), ties to "no alarm".
fn null_raw<'a, 'b: 'a>(files: impl Iterator<Item = &'a Prepared<'b>> + Clone, w: Weights, sig1: f64) -> f64 {
    let none: f64 = files.clone().map(|f| score_file(f, w, sig1, |_| false).raw).sum();
    let all: f64 = files.map(|f| score_file(f, w, sig1, |_| true).raw).sum();
    if all > none { all } else { none }
}

fn normalise(raw: f64, null: f64, perfect: f64) -> Option<f64> {
    (perfect > null).then(|| 100.0 * (raw - null) / (perfect - null))
}

/// Scores a detector on a corpus the way NAB does: per profile, θ* optimised on these
/// files (one threshold for all of them), raw score S(θ*), normalised to 0-100 with the
/// null and perfect detectors of these files; plus per-category and per-file results
/// (see [`CategoryScore`] for how categories are normalised).
///
/// Restricting `files` to a subset scores that subset as NAB would (θ* re-optimised, N =
/// the subset's windows).
///
/// # Errors
/// [`NabError`] naming the file for: a bad file key or a duplicate one, timestamps and
/// scores of different lengths, a score that is NaN or outside [0, 1], an unreadable
/// timestamp, a window bound absent from the file, windows reversed or overlapping; and
/// [`NabError::NoWindows`] / [`NabError::DegenerateNormalisation`] when the
/// normalisation is undefined.
pub fn score_corpus(files: &[FileInput]) -> Result<CorpusScore, NabError> {
    score(files, None)
}

/// Like [`score_corpus`], but at the given thresholds instead of optimised ones: the
/// honest way to score held-out files with thresholds fitted elsewhere
/// (`score_corpus_at(held_out, &score_corpus(dev)?.thresholds())`).
///
/// # Errors
/// As [`score_corpus`], plus [`NabError::BadThreshold`] for a NaN threshold.
pub fn score_corpus_at(files: &[FileInput], thresholds: &Thresholds) -> Result<CorpusScore, NabError> {
    if let Some(profile) = Profile::ALL.into_iter().find(|&p| thresholds.get(p).is_nan()) {
        return Err(NabError::BadThreshold { profile });
    }
    score(files, Some(thresholds))
}

/// [`MarginFit`]: thresholds chosen with a margin on a corpus.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MarginFit {
    /// The margin, in score units.
    pub margin: f64,
    /// Per profile, the threshold whose neighbourhood `[θ − margin, θ + margin]` has the
    /// best mean raw score.
    pub thresholds: Thresholds,
    /// Per profile, in [`Profile::ALL`] order: that mean, normalised as NAB normalises a
    /// raw score (see [`MarginFit::smoothed`]).
    pub smoothed: [f64; 3],
}

impl MarginFit {
    /// The normalised mean score around `profile`'s threshold: what the threshold can be
    /// expected to give when the scores it meets are a little higher or lower than these.
    pub fn smoothed(&self, profile: Profile) -> f64 {
        self.smoothed[profile.index()]
    }
}

/// Chooses a threshold per profile for files *other* than these: not NAB's exact optimum
/// (which [`score_corpus`] takes, and which usually sits just below the score of some
/// detection, on a cliff's edge) but the threshold whose neighbourhood `[θ − margin,
/// θ + margin]` scores best on average, ties to the highest. `margin` is in score units;
/// 0 gives NAB's optimum. Score the files at the result with [`score_corpus_at`].
///
/// # Errors
/// As [`score_corpus`], and [`NabError::BadMargin`] for a margin that is negative, NaN or
/// infinite.
pub fn fit_thresholds_with_margin(files: &[FileInput], margin: f64) -> Result<MarginFit, NabError> {
    if !(margin >= 0.0 && margin.is_finite()) {
        return Err(NabError::BadMargin { margin });
    }
    let prepared = prepare_all(files)?;
    let windows: usize = prepared.iter().map(|f| f.windows).sum();
    if windows == 0 {
        return Err(NabError::NoWindows);
    }
    let sig1 = scaled_sigmoid(-1.0);
    let sorted = sorted_rows(&prepared);
    let scored_windows: usize = prepared.iter().map(Prepared::scored_windows).sum();
    let mut thresholds = [0.0; 3];
    let mut smoothed = [0.0; 3];
    for profile in Profile::ALL {
        let w = profile.weights();
        let curve = sweep(&sorted, windows, scored_windows, w, sig1);
        let (threshold, mean) = if margin > 0.0 {
            smoothed_best(&curve, margin)
        } else {
            curve.iter().fold((NO_ALARM_THRESHOLD, f64::NEG_INFINITY), |b, &(t, s)| if s > b.1 { (t, s) } else { b })
        };
        let null = null_raw(prepared.iter(), w, sig1);
        let perfect = w.tp * windows as f64;
        thresholds[profile.index()] = threshold;
        smoothed[profile.index()] = normalise(mean, null, perfect).ok_or(NabError::DegenerateNormalisation { profile, null, perfect })?;
    }
    let [standard, reward_low_fp, reward_low_fn] = thresholds;
    Ok(MarginFit { margin, thresholds: Thresholds { standard, reward_low_fp, reward_low_fn }, smoothed })
}

/// Validates and prepares each file; names must be unique.
fn prepare_all(files: &[FileInput]) -> Result<Vec<Prepared<'_>>, NabError> {
    let mut seen = HashSet::with_capacity(files.len());
    let mut prepared = Vec::with_capacity(files.len());
    for f in files {
        if !seen.insert(f.name.as_str()) {
            return Err(NabError::DuplicateFile { name: f.name.clone() });
        }
        prepared.push(prepare(f)?);
    }
    Ok(prepared)
}

/// All scored rows of the corpus, scores descending, windows numbered corpus-wide.
fn sorted_rows(prepared: &[Prepared<'_>]) -> Vec<Row> {
    let mut sorted = Vec::with_capacity(prepared.iter().map(|f| f.rows.len()).sum());
    let mut offset = 0;
    for f in prepared {
        sorted.extend(f.rows.iter().map(|r| match r.place {
            Place::Window { window, sig } => Row { score: r.score, place: Place::Window { window: offset + window, sig } },
            Place::Outside { .. } => *r,
        }));
        offset += f.windows;
    }
    sorted.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    sorted
}

fn score(files: &[FileInput], fixed: Option<&Thresholds>) -> Result<CorpusScore, NabError> {
    let prepared = prepare_all(files)?;
    let windows: usize = prepared.iter().map(|f| f.windows).sum();
    if windows == 0 {
        return Err(NabError::NoWindows);
    }
    let scored_rows: usize = prepared.iter().map(|f| f.rows.len()).sum();
    let sig1 = scaled_sigmoid(-1.0);

    let thresholds = match fixed {
        Some(t) => *t,
        None => {
            // Sorted once and swept once per profile.
            let sorted = sorted_rows(&prepared);
            let scored_windows: usize = prepared.iter().map(Prepared::scored_windows).sum();
            let fit = |p: Profile| optimise(&sorted, windows, scored_windows, p.weights(), sig1);
            Thresholds {
                standard: fit(Profile::Standard),
                reward_low_fp: fit(Profile::RewardLowFp),
                reward_low_fn: fit(Profile::RewardLowFn),
            }
        }
    };

    // Category name -> indices into `prepared`, sorted by name.
    let mut by_category: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in prepared.iter().enumerate() {
        by_category.entry(f.category).or_default().push(i);
    }

    let profile_score = |profile: Profile| -> Result<ProfileScore, NabError> {
        let w = profile.weights();
        let threshold = thresholds.get(profile);
        let tallies: Vec<Tally> = prepared.iter().map(|f| score_file(f, w, sig1, |s| s >= threshold)).collect();
        let raw: f64 = tallies.iter().map(|t| t.raw).sum();
        let null = null_raw(prepared.iter(), w, sig1);
        let perfect = w.tp * windows as f64;
        let normalised = normalise(raw, null, perfect).ok_or(NabError::DegenerateNormalisation { profile, null, perfect })?;
        let categories = by_category
            .iter()
            .map(|(&category, members)| {
                let raw: f64 = members.iter().map(|&i| tallies[i].raw).sum();
                let null = null_raw(members.iter().map(|&i| &prepared[i]), w, sig1);
                let n: usize = members.iter().map(|&i| prepared[i].windows).sum();
                let perfect = w.tp * n as f64;
                CategoryScore {
                    category: category.to_string(),
                    files: members.len(),
                    windows: n,
                    raw,
                    null,
                    perfect,
                    normalised: normalise(raw, null, perfect),
                }
            })
            .collect();
        let files = prepared
            .iter()
            .zip(&tallies)
            .map(|(f, t)| FileScore {
                name: f.name.to_string(),
                windows: f.windows,
                detected: t.detected,
                false_alarms: t.false_alarms,
                raw: t.raw,
            })
            .collect();
        Ok(ProfileScore { profile, threshold, raw, null, perfect, normalised, categories, files })
    };

    Ok(CorpusScore {
        threshold_source: if fixed.is_some() { ThresholdSource::Fixed } else { ThresholdSource::Optimised },
        files: prepared.len(),
        windows,
        scored_rows,
        profiles: [profile_score(Profile::Standard)?, profile_score(Profile::RewardLowFp)?, profile_score(Profile::RewardLowFn)?],
    })
}

/// One held-out fold for [`score_held_out`]: files scored at thresholds chosen elsewhere
/// (e.g. on the other categories, for a leave-one-category-out check).
#[derive(Clone, Debug, PartialEq)]
pub struct HeldOutFold {
    /// Name of the fold (e.g. the held-out category).
    pub name: String,
    /// The held-out files, with the scores of the detector configured for this fold.
    pub files: Vec<FileInput>,
    /// Thresholds fitted without these files.
    pub thresholds: Thresholds,
}

/// Several held-out folds pooled as one corpus: per profile, the raw scores of every
/// fold (each at its own thresholds) summed, normalised with the null and perfect
/// detectors of all the held-out files together (as NAB normalises a corpus).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldOutScore {
    /// Files over all folds.
    pub files: usize,
    /// Windows over all folds (N).
    pub windows: usize,
    /// One entry per profile, in [`Profile::ALL`] order.
    pub profiles: [HeldOutProfile; 3],
}

/// One profile of a [`HeldOutScore`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldOutProfile {
    /// The profile.
    pub profile: Profile,
    /// Sum of the folds' raw scores.
    pub raw: f64,
    /// Null detector (threshold-optimised) on all the held-out files.
    pub null: f64,
    /// `A_TP * N`.
    pub perfect: f64,
    /// `100 * (raw - null) / (perfect - null)`.
    pub normalised: f64,
    /// Per fold, in input order.
    pub folds: Vec<FoldScore>,
}

/// One fold of a [`HeldOutProfile`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FoldScore {
    /// The fold's name.
    pub name: String,
    /// The threshold applied.
    pub threshold: f64,
    /// Files in the fold.
    pub files: usize,
    /// Windows in the fold.
    pub windows: usize,
    /// Sum of the fold's per-file raw scores at `threshold`.
    pub raw: f64,
    /// The fold normalised with its own null and perfect; `None` without windows (e.g.
    /// `artificialNoAnomaly`, whose false alarms still count in the pooled raw score).
    pub normalised: Option<f64>,
}

impl HeldOutScore {
    /// The result of `profile`.
    pub fn profile(&self, profile: Profile) -> &HeldOutProfile {
        &self.profiles[profile.index()]
    }
}

/// Scores held-out folds, each at its own thresholds, pooled into one normalised score
/// per profile (see [`HeldOutScore`]).
///
/// # Errors
/// As [`score_corpus_at`] (a file key may appear only once over all folds), and
/// [`NabError::NoWindows`] when no fold has a window.
pub fn score_held_out(folds: &[HeldOutFold]) -> Result<HeldOutScore, NabError> {
    let mut seen = HashSet::new();
    let mut prepared: Vec<Vec<Prepared<'_>>> = Vec::with_capacity(folds.len());
    for fold in folds {
        if let Some(profile) = Profile::ALL.into_iter().find(|&p| fold.thresholds.get(p).is_nan()) {
            return Err(NabError::BadThreshold { profile });
        }
        let mut files = Vec::with_capacity(fold.files.len());
        for f in &fold.files {
            if !seen.insert(f.name.as_str()) {
                return Err(NabError::DuplicateFile { name: f.name.clone() });
            }
            files.push(prepare(f)?);
        }
        prepared.push(files);
    }
    let windows: usize = prepared.iter().flatten().map(|f| f.windows).sum();
    if windows == 0 {
        return Err(NabError::NoWindows);
    }
    let sig1 = scaled_sigmoid(-1.0);
    let profile_score = |profile: Profile| -> Result<HeldOutProfile, NabError> {
        let w = profile.weights();
        let fold_scores: Vec<FoldScore> = folds
            .iter()
            .zip(&prepared)
            .map(|(fold, files)| {
                let threshold = fold.thresholds.get(profile);
                let raw: f64 = files.iter().map(|f| score_file(f, w, sig1, |s| s >= threshold).raw).sum();
                let n: usize = files.iter().map(|f| f.windows).sum();
                let null = null_raw(files.iter(), w, sig1);
                FoldScore {
                    name: fold.name.clone(),
                    threshold,
                    files: files.len(),
                    windows: n,
                    raw,
                    normalised: normalise(raw, null, w.tp * n as f64),
                }
            })
            .collect();
        let raw: f64 = fold_scores.iter().map(|f| f.raw).sum();
        let null = null_raw(prepared.iter().flatten(), w, sig1);
        let perfect = w.tp * windows as f64;
        let normalised = normalise(raw, null, perfect).ok_or(NabError::DegenerateNormalisation { profile, null, perfect })?;
        Ok(HeldOutProfile { profile, raw, null, perfect, normalised, folds: fold_scores })
    };
    Ok(HeldOutScore {
        files: prepared.iter().map(Vec::len).sum(),
        windows,
        profiles: [profile_score(Profile::Standard)?, profile_score(Profile::RewardLowFp)?, profile_score(Profile::RewardLowFn)?],
    })
}

/// Leave-one-category-out with the scores as given: for each category (sorted by name),
/// thresholds are fitted on the files of the other categories ([`fit_thresholds_with_margin`]
/// with `margin`; 0 is NAB's optimum, as [`score_corpus`] takes) and applied unchanged
/// to the category's files; the folds are pooled by [`score_held_out`]. Only the
/// threshold is fitted here: a detector whose own parameters were chosen on these files
/// still has that advantage.
///
/// # Errors
/// As [`fit_thresholds_with_margin`] (on each training set: one without windows gives
/// [`NabError::NoWindows`]) and [`score_held_out`].
pub fn score_leave_one_category_out(files: &[FileInput], margin: f64) -> Result<HeldOutScore, NabError> {
    let mut categories: BTreeMap<&str, Vec<&FileInput>> = BTreeMap::new();
    for f in files {
        categories.entry(category_of(&f.name)?).or_default().push(f);
    }
    let mut folds = Vec::with_capacity(categories.len());
    for &category in categories.keys() {
        let (held, train): (Vec<&FileInput>, Vec<&FileInput>) =
            files.iter().partition(|f| category_of(&f.name).is_ok_and(|c| c == category));
        let train: Vec<FileInput> = train.into_iter().cloned().collect();
        let thresholds = fit_thresholds_with_margin(&train, margin)?.thresholds;
        folds.push(HeldOutFold { name: category.to_string(), files: held.into_iter().cloned().collect(), thresholds });
    }
    score_held_out(&folds)
}

#[cfg(test)]
mod tests {
    //! Hand-computed cases. Unless said otherwise a file has n = 100 rows, so
    //! P = floor(0.15 * 100) = 15, and one window [L, R] = [20, 24], W = 5. Files are long
    //! enough next to their windows that the null detector's best choice is "no alarm", as
    //! on NAB's data (alarming on every row costs at least 5 * A_FP for rows 15..19 and
    //! ~7 for rows 25..99), so S_null = -A_FN * N.
    //!
    //! Useful values (sig(y) = 2 / (1 + e^(5y)) - 1):
    //! - sig(-1)   = 2 / (1 + e^-5) - 1 = 2 / 1.0067379 - 1 = 0.9866143
    //! - sig(-0.6) = 2 / (1 + e^-3) - 1 = 2 / 1.0497871 - 1 = 0.9051483
    //! - sig(-0.2) = 2 / (1 + e^-1) - 1 = 2 / 1.3678794 - 1 = 0.4621172
    //! - sig(0.25) = 2 / (1 + e^1.25) - 1 = 2 / 4.4903430 - 1 = -0.5545997
    //! - sig(1.5)  = 2 / (1 + e^7.5) - 1 = 2 / 1809.0424 - 1 = -0.9988944
    use super::*;

    const EPS: f64 = 1e-6;

    fn ts(i: usize) -> String {
        format!("2020-01-01 {:02}:{:02}:00", i / 60, i % 60)
    }

    /// A file `name` of `n` rows, windows given as row ranges (written the way
    /// combined_windows.json writes them, with `.000000`), score 0 except `alarms`.
    fn file(name: &str, n: usize, windows: &[(usize, usize)], alarms: &[(usize, f64)]) -> FileInput {
        let mut scores = vec![0.0; n];
        for &(i, s) in alarms {
            scores[i] = s;
        }
        FileInput {
            name: name.to_string(),
            timestamps: (0..n).map(ts).collect(),
            scores,
            windows: windows.iter().map(|&(l, r)| (format!("{}.000000", ts(l)), format!("{}.000000", ts(r)))).collect(),
        }
    }

    fn one_window(alarms: &[(usize, f64)]) -> FileInput {
        file("cat/a.csv", 100, &[(20, 24)], alarms)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < EPS
    }

    /// Raw score of the single file at θ = 1 for `profile`.
    fn raw_at_one(input: FileInput, profile: Profile) -> f64 {
        let s = score_corpus_at(&[input], &Thresholds::uniform(1.0)).expect("scores");
        assert_eq!(s.threshold_source, ThresholdSource::Fixed);
        s.profile(profile).files[0].raw
    }

    #[test]
    fn sigmoid_and_probation_match_the_spec() {
        // The spec gives 5 decimals.
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert!(scaled_sigmoid(3.0) > -1.0);
        assert_eq!(scaled_sigmoid(3.0001), -1.0);
        assert_eq!(probation_length(40), 6);
        assert_eq!(probation_length(4032), 604); // floor(604.8)
        assert_eq!(probation_length(5000), 750);
        assert_eq!(probation_length(20_000), 750);
    }

    #[test]
    fn a_detector_that_never_alarms_scores_zero() {
        // All scores 0. Candidates: 1.1 -> S = -A_FN (window missed); 0.0 -> every row
        // >= 15 alarms: +1 (row 20) - 5 * A_FP (rows 15..19) - ~67 * A_FP (rows 25..99),
        // far below. So θ* = 1.1, S = -A_FN = S_null, and 100 * 0 / (A_TP + A_FN) = 0.
        let s = score_corpus(&[one_window(&[])]).expect("scores");
        for p in &s.profiles {
            assert_eq!(p.threshold, NO_ALARM_THRESHOLD, "{}", p.profile);
            assert_eq!(p.raw, -p.profile.weights().fn_);
            assert_eq!(p.null, p.raw);
            assert_eq!(p.normalised, 0.0);
        }
    }

    #[test]
    fn a_perfect_detector_scores_one_hundred() {
        // One alarm (score 1) on the first row of each of N = 3 windows: each weighs
        // sig(-1) * A_TP / sig(-1) = 1, so S(1.0) = 3 = S_perfect.
        // File b: n = 200, P = 30, windows [40, 43] and [100, 107].
        let files = [one_window(&[(20, 1.0)]), file("cat/b.csv", 200, &[(40, 43), (100, 107)], &[(40, 1.0), (100, 1.0)])];
        let s = score_corpus(&files).expect("scores");
        assert_eq!(s.windows, 3);
        for p in &s.profiles {
            assert_eq!(p.threshold, 1.0);
            assert_eq!(p.raw, 3.0);
            assert_eq!(p.perfect, 3.0);
            assert_eq!(p.null, -3.0 * p.profile.weights().fn_);
            assert_eq!(p.normalised, 100.0, "{}", p.profile);
        }
    }

    #[test]
    fn one_true_positive_inside_a_window_gets_the_scaled_sigmoid() {
        // Alarm at row 22 of [20, 24]: y = -(24 - 22 + 1) / 5 = -0.6;
        // w = sig(-0.6) / sig(-1) = 0.9051483 / 0.9866143 = 0.9174287.
        // standard: 100 * (0.9174287 + 1) / 2 = 95.871434;
        // reward_low_FN_rate: 100 * (0.9174287 + 2) / 3 = 97.247623.
        let s = score_corpus(&[one_window(&[(22, 1.0)])]).expect("scores");
        let std = s.profile(Profile::Standard);
        assert_eq!(std.threshold, 1.0);
        assert!(close(std.raw, 0.9174287), "{}", std.raw);
        assert!(close(std.normalised, 95.871434), "{}", std.normalised);
        assert!(close(s.profile(Profile::RewardLowFn).normalised, 97.247623));
        assert_eq!((std.files[0].detected, std.files[0].false_alarms), (1, 0));
    }

    #[test]
    fn false_positive_right_after_a_window_costs_little() {
        // Row 25, just after [20, 24]: y = (25 - 24) / (5 - 1) = 0.25, sig = -0.5545997;
        // standard: -0.11 * 0.5545997 = -0.0610060, plus the missed window -1.
        // reward_low_FP_rate: -0.22 * 0.5545997 = -0.1220119, plus -1.
        assert!(close(raw_at_one(one_window(&[(25, 1.0)]), Profile::Standard), -1.0610060));
        assert!(close(raw_at_one(one_window(&[(25, 1.0)]), Profile::RewardLowFp), -1.1220119));
    }

    #[test]
    fn false_positive_far_from_any_window_costs_a_fp() {
        // Row 40: y = (40 - 24) / 4 = 4 > 3, so sig = -1: -A_FP exactly, plus the missed window.
        assert_eq!(raw_at_one(one_window(&[(40, 1.0)]), Profile::Standard), -1.0 - 0.11);
        assert_eq!(raw_at_one(one_window(&[(40, 1.0)]), Profile::RewardLowFp), -1.0 - 0.22);
        // Row 30: y = 6 / 4 = 1.5, sig = -0.9988944: -0.1098784.
        assert!(close(raw_at_one(one_window(&[(30, 1.0)]), Profile::Standard), -1.1098784));
    }

    #[test]
    fn false_positive_before_the_first_window_costs_the_full_a_fp() {
        // Quirk: rows 16 (well before) and 19 (just before [20, 24]) both cost -A_FP,
        // as no window has closed yet. Two false alarms, the window missed.
        let s = score_corpus_at(&[one_window(&[(16, 1.0), (19, 1.0)])], &Thresholds::uniform(1.0)).expect("scores");
        let f = &s.profile(Profile::Standard).files[0];
        assert_eq!(f.false_alarms, 2);
        assert!(close(f.raw, -1.0 - 0.22));
    }

    #[test]
    fn a_run_of_alarms_outside_windows_is_charged_row_by_row() {
        // Rows 40, 41, 42 each have y > 3 after the window: 3 * -0.11 = -0.33, plus -1.
        let raw = raw_at_one(one_window(&[(40, 1.0), (41, 1.0), (42, 1.0)]), Profile::Standard);
        assert!(close(raw, -1.33));
    }

    #[test]
    fn probation_rows_are_ignored() {
        // Row 2 < P = 15: an alarm there costs nothing; the window is still missed.
        let s = score_corpus_at(&[one_window(&[(2, 1.0)])], &Thresholds::uniform(1.0)).expect("scores");
        let f = &s.profile(Profile::Standard).files[0];
        assert_eq!((f.raw, f.false_alarms, f.detected), (-1.0, 0, 0));
        assert_eq!(s.scored_rows, 85);
    }

    #[test]
    fn a_window_straddling_probation_only_counts_rows_after_it() {
        // Window [13, 17], W = 5, P = 15. An alarm at row 13 is in probation: window
        // missed (-1). An alarm at row 15: y = -(17 - 15 + 1) / 5 = -0.6 (the width still
        // counts rows 13 and 14), w = 0.9174287.
        let straddle = |alarm| file("cat/s.csv", 100, &[(13, 17)], &[(alarm, 1.0)]);
        assert_eq!(raw_at_one(straddle(13), Profile::Standard), -1.0);
        assert!(close(raw_at_one(straddle(15), Profile::Standard), 0.9174287));
    }

    #[test]
    fn a_window_inside_probation_is_not_scored_but_still_closes() {
        // Windows [10, 12] (W = 3, wholly before P = 15) and [20, 24]. No FN for [10, 12];
        // but it has closed, so an alarm at row 15 decays from it: y = (15 - 12) / (3 - 1)
        // = 1.5, w = 0.11 * -0.9988944 = -0.1098784; plus -1 for missing [20, 24].
        let f = file("cat/p.csv", 100, &[(10, 12), (20, 24)], &[(15, 1.0)]);
        assert!(close(raw_at_one(f.clone(), Profile::Standard), -1.1098784));
        // Normalisation follows the spec literally: S_perfect = A_TP * N counts both
        // windows (2), S_null only the scored one (-1).
        let s = score_corpus(&[f]).expect("scores");
        let std = s.profile(Profile::Standard);
        assert_eq!((std.perfect, std.null), (2.0, -1.0));
    }

    #[test]
    fn several_detections_in_one_window_count_once() {
        // Rows 20, 21, 22 alarm: the window counts once, through its best (earliest)
        // alarm, row 20, weight exactly 1 (not 1 + 0.98 + 0.92).
        let s = score_corpus(&[one_window(&[(20, 1.0), (21, 1.0), (22, 1.0)])]).expect("scores");
        let std = s.profile(Profile::Standard);
        assert_eq!(std.raw, 1.0);
        assert_eq!(std.normalised, 100.0);
        assert_eq!((std.files[0].detected, std.files[0].false_alarms), (1, 0));
        // Rows 22 and 23: only row 22 (0.9174287) counts.
        assert!(close(raw_at_one(one_window(&[(22, 1.0), (23, 1.0)]), Profile::Standard), 0.9174287));
    }

    #[test]
    fn threshold_optimisation_picks_the_best_threshold_per_profile() {
        // Scores: row 24 -> 0.9; rows 20, 40, 41, 42 -> 0.5; all else 0.
        // Row 24: y = -1/5 = -0.2, w = sig(-0.2) / sig(-1) = 0.4621172 / 0.9866143 = 0.4683868.
        // Row 20: w = 1. Rows 40-42: y > 3, -A_FP each.
        //                 S(1.1)  S(0.9)     S(0.5)               S(0.0)
        // standard          -1    0.4683868  1 - 3*0.11 = 0.67    ~ -7
        // reward_low_FP     -1    0.4683868  1 - 3*0.22 = 0.34    ~ -15
        // reward_low_FN     -2    0.4683868  0.67                 ~ -7
        // Normalised: standard 100 * 1.67 / 2 = 83.5; low FP 100 * 1.4683868 / 2 = 73.419342;
        // low FN 100 * 2.67 / 3 = 89.
        let input = one_window(&[(24, 0.9), (20, 0.5), (40, 0.5), (41, 0.5), (42, 0.5)]);
        let s = score_corpus(&[input]).expect("scores");
        let (std, fp, fn_) = (s.profile(Profile::Standard), s.profile(Profile::RewardLowFp), s.profile(Profile::RewardLowFn));
        assert_eq!((std.threshold, fp.threshold, fn_.threshold), (0.5, 0.9, 0.5));
        assert!(close(std.raw, 0.67) && close(std.normalised, 83.5));
        assert!(close(fp.raw, 0.4683868) && close(fp.normalised, 73.419342));
        assert!(close(fn_.raw, 0.67) && close(fn_.normalised, 89.0));
        assert_eq!(s.thresholds(), Thresholds { standard: 0.5, reward_low_fp: 0.9, reward_low_fn: 0.5 });
    }

    #[test]
    fn threshold_ties_go_to_the_highest_threshold() {
        // Row 22 -> 0.9, row 23 -> 0.8: row 23 is later in the same window, adds nothing,
        // so S(0.9) = S(0.8) = 0.9174287 and the higher θ, 0.9, wins.
        let s = score_corpus(&[one_window(&[(22, 0.9), (23, 0.8)])]).expect("scores");
        assert_eq!(s.profile(Profile::Standard).threshold, 0.9);
    }

    #[test]
    fn one_threshold_serves_every_file() {
        // File a: the window is found at score 0.6 (row 20, +1). File b (no window): a
        // false alarm at 0.7 (row 30, before any window: -0.11). θ = 0.6 gives
        // 1 - 0.11 = 0.89 > -1 (θ = 1.1) > -0.11 - 1 (θ = 0.7): θ* = 0.6 for both files.
        let files = [one_window(&[(20, 0.6)]), file("other/b.csv", 100, &[], &[(30, 0.7)])];
        let s = score_corpus(&files).expect("scores");
        let std = s.profile(Profile::Standard);
        assert_eq!(std.threshold, 0.6);
        assert!(close(std.raw, 0.89));
        assert_eq!(std.files[1].false_alarms, 1);
    }

    #[test]
    fn the_null_detector_is_threshold_optimised_too() {
        // n = 20, P = 3, window [4, 19]: nearly every scored row is in the window. The
        // null detector (0.5 everywhere) at θ = 0.5: row 3 is a false alarm before any
        // window (-0.11), row 4 opens the window (+1): 0.89 > -1 (θ = 1.1). So
        // S_null = 0.89, and a detector held to "no alarm" (θ = 1.1, raw -1) scores
        // 100 * (-1 - 0.89) / (1 - 0.89) = -1718.18 rather than 0.
        let input = file("cat/w.csv", 20, &[(4, 19)], &[]);
        let s = score_corpus_at(std::slice::from_ref(&input), &Thresholds::uniform(NO_ALARM_THRESHOLD)).expect("scores");
        let std = s.profile(Profile::Standard);
        assert!(close(std.null, 0.89));
        assert!((std.normalised - -1718.1818).abs() < 1e-3, "{}", std.normalised);
        // Optimised, the all-zero detector is the null detector in disguise: θ* = 0, score 0.
        let s = score_corpus(&[input]).expect("scores");
        assert_eq!((s.profiles[0].threshold, s.profiles[0].normalised), (0.0, 0.0));
        // Window [3, 19] covers every scored row: the null detector is perfect (+1), and
        // the normalisation is undefined.
        let degenerate = score_corpus(&[file("cat/w.csv", 20, &[(3, 19)], &[])]);
        assert!(matches!(degenerate, Err(NabError::DegenerateNormalisation { profile: Profile::Standard, .. })));
    }

    #[test]
    fn categories_are_normalised_with_their_own_totals_at_the_corpus_threshold() {
        // catA: perfect (row 20 -> 1). catB: never alarms. catC (no window): a false alarm
        // at row 30 -> 1, before any window: -0.11.
        // θ* = 1: S = 1 - 1 - 0.11 = -0.11 > S(1.1) = -2. Corpus: 100 * (-0.11 + 2) / 4 = 47.25.
        // catA: 100 * (1 + 1) / 2 = 100; catB: 0; catC: no window -> n/a, raw -0.11.
        let files = [
            file("catA/x.csv", 100, &[(20, 24)], &[(20, 1.0)]),
            file("catB/y.csv", 100, &[(20, 24)], &[]),
            file("catC/z.csv", 100, &[], &[(30, 1.0)]),
        ];
        let s = score_corpus(&files).expect("scores");
        let std = s.profile(Profile::Standard);
        assert_eq!(std.threshold, 1.0);
        assert!(close(std.normalised, 47.25));
        let got: Vec<(&str, usize, Option<f64>)> = std.categories.iter().map(|c| (c.category.as_str(), c.windows, c.normalised)).collect();
        assert_eq!(got, [("catA", 1, Some(100.0)), ("catB", 1, Some(0.0)), ("catC", 0, None)]);
        assert!(close(std.categories[2].raw, -0.11));

        let table = s.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "NAB scores: 3 files, 2 windows, 255 scored rows (thresholds optimised on these files)");
        assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["standard", "1.000000", "47.25", "-0.110"]);
        let cat_a = lines.iter().find(|l| l.starts_with("catA")).expect("catA row");
        assert_eq!(cat_a.split_whitespace().collect::<Vec<_>>(), ["catA", "1", "1", "100.00", "100.00", "100.00"]);
        let cat_c = lines.iter().find(|l| l.starts_with("catC")).expect("catC row");
        assert!(cat_c.contains("n/a (raw -0.11)") && cat_c.contains("n/a (raw -0.22)"), "{cat_c}");
    }

    #[test]
    fn fixed_thresholds_are_applied_unchanged() {
        // At θ = 0.95 the 0.9 alarm at row 22 is not raised: S = -1, score 0.
        let s = score_corpus_at(&[one_window(&[(22, 0.9)])], &Thresholds::uniform(0.95)).expect("scores");
        assert_eq!(s.profile(Profile::Standard).normalised, 0.0);
        assert!(s.to_table().contains("(fixed thresholds)"));
        let nan = score_corpus_at(&[one_window(&[])], &Thresholds { reward_low_fp: f64::NAN, ..Thresholds::uniform(0.5) });
        assert!(matches!(nan, Err(NabError::BadThreshold { profile: Profile::RewardLowFp })));
    }

    #[test]
    fn bad_inputs_are_rejected_naming_the_file() {
        let mut out_of_range = one_window(&[]);
        out_of_range.scores[33] = 1.5;
        assert!(matches!(score_corpus(&[out_of_range]),
            Err(NabError::ScoreOutOfRange { file, row: 33, .. }) if file == "cat/a.csv"));

        let mut nan = one_window(&[]);
        nan.scores[7] = f64::NAN;
        assert!(matches!(score_corpus(&[nan]), Err(NabError::ScoreOutOfRange { row: 7, .. })));

        let mut absent = one_window(&[]);
        absent.windows[0].1 = "2021-01-01 00:00:00.000000".to_string();
        assert!(matches!(score_corpus(&[absent]),
            Err(NabError::WindowNotFound { file, timestamp }) if file == "cat/a.csv" && timestamp.starts_with("2021")));

        let overlapping = file("cat/o.csv", 100, &[(20, 24), (24, 30)], &[]);
        assert!(matches!(score_corpus(&[overlapping]), Err(NabError::WindowOrder { index: 1, .. })));
        let reversed = file("cat/r.csv", 100, &[(24, 20)], &[]);
        assert!(matches!(score_corpus(&[reversed]), Err(NabError::WindowOrder { index: 0, .. })));

        let mut short = one_window(&[]);
        short.scores.pop();
        assert!(matches!(score_corpus(&[short]), Err(NabError::LengthMismatch { timestamps: 100, scores: 99, .. })));

        let mut bad_ts = one_window(&[]);
        bad_ts.timestamps[3] = "yesterday".to_string();
        assert!(matches!(score_corpus(&[bad_ts]), Err(NabError::BadTimestamp { row: 3, .. })));

        assert!(matches!(score_corpus(&[file("flat.csv", 100, &[(20, 24)], &[])]), Err(NabError::BadFileName { .. })));
        assert!(matches!(score_corpus(&[one_window(&[]), one_window(&[])]), Err(NabError::DuplicateFile { .. })));
        assert!(matches!(score_corpus(&[file("cat/n.csv", 100, &[], &[])]), Err(NabError::NoWindows)));
    }

    #[test]
    fn leave_one_category_out_fits_each_fold_on_the_others_and_pools() {
        // catA/x: alarm 0.9 on row 20 (first row of [20, 24]): +1 when θ <= 0.9.
        // catB/y: alarm 0.6 on row 20: +1 when θ <= 0.6; else the window is missed.
        // catC/z (no window): alarm 0.8 at row 30 (before any window): -A_FP when θ <= 0.8.
        // Fold catA: fit on B + C. Standard: θ=0.8 -> -1 - 0.11, θ=0.6 -> 1 - 0.11 = 0.89
        //   beats 1.1 (-1): θ = 0.6; A at 0.6: +1.
        // Fold catB: fit on A + C: θ = 0.9 (+1; 0.8 would add -0.11). B at 0.9: -1.
        // Fold catC: fit on A + B: θ = 0.6 (+2). C at 0.6: -0.11.
        // Pooled standard: raw = 1 - 1 - 0.11 = -0.11; N = 2, null = -2, perfect = 2:
        // 100 * 1.89 / 4 = 47.25. Per fold: A 100, B 0, C n/a.
        // reward_low_FN_rate: same thresholds; raw = 1 - 2 - 0.11 = -1.11; null = -4,
        // perfect = 2: 100 * 2.89 / 6 = 48.1666667.
        let files = [
            file("catA/x.csv", 100, &[(20, 24)], &[(20, 0.9)]),
            file("catB/y.csv", 100, &[(20, 24)], &[(20, 0.6)]),
            file("catC/z.csv", 100, &[], &[(30, 0.8)]),
        ];
        let s = score_leave_one_category_out(&files, 0.0).expect("scores");
        assert_eq!((s.files, s.windows), (3, 2));
        let std = s.profile(Profile::Standard);
        let got: Vec<(&str, f64, Option<f64>)> = std.folds.iter().map(|f| (f.name.as_str(), f.threshold, f.normalised)).collect();
        assert_eq!(got, [("catA", 0.6, Some(100.0)), ("catB", 0.9, Some(0.0)), ("catC", 0.6, None)]);
        assert!(close(std.folds[2].raw, -0.11));
        assert!(close(std.raw, -0.11) && std.null == -2.0 && std.perfect == 2.0);
        assert!(close(std.normalised, 47.25), "{}", std.normalised);
        assert!(close(s.profile(Profile::RewardLowFn).normalised, 48.166_666_7));
        // All in (θ optimised on all three): θ = 0.6, raw 2 - 0.11 -> 100 * 3.89 / 4.
        assert!(close(score_corpus(&files).expect("scores").profile(Profile::Standard).normalised, 97.25));

        let twice = HeldOutFold { name: "x".into(), files: vec![files[0].clone()], thresholds: Thresholds::uniform(0.5) };
        assert!(matches!(score_held_out(&[twice.clone(), twice]), Err(NabError::DuplicateFile { .. })));
    }

    #[test]
    fn a_margin_moves_the_threshold_off_the_cliff_edge() {
        // cat/a.csv: the window [20, 24] detected by 0.8 on its first row (+sig(-1) =
        // 0.9866143 when θ <= 0.8, else the window is missed: -1), a false alarm of 0.5 at
        // row 60 (only when θ <= 0.5). NAB's optimum is the edge, θ = 0.8.
        let files = [one_window(&[(20, 0.8), (60, 0.5)])];
        let exact = score_corpus(&files).expect("scores");
        let fit0 = fit_thresholds_with_margin(&files, 0.0).expect("fits");
        assert_eq!(fit0.thresholds, exact.thresholds());
        assert_eq!(fit0.thresholds.standard, 0.8);
        assert!(close(fit0.smoothed(Profile::Standard), exact.profile(Profile::Standard).normalised));

        // Margin 0.05: every θ in [0.55, 0.75] keeps [θ − 0.05, θ + 0.05] inside (0.5, 0.8];
        // ties go to the highest, 0.75, whose mean is the plateau's score.
        let fit = fit_thresholds_with_margin(&files, 0.05).expect("fits");
        for profile in Profile::ALL {
            assert!(close(fit.thresholds.get(profile), 0.75), "{profile}: {}", fit.thresholds.get(profile));
            let at = score_corpus_at(&files, &fit.thresholds).expect("scores");
            assert!(close(fit.smoothed(profile), at.profile(profile).normalised), "{profile}");
        }
        // Margin 0.2: the plateau (0.3 wide) is narrower than the neighbourhood (0.4); a miss
        // (−1) costs more than the false alarm (−0.11 standard), so the neighbourhood's top
        // stops at the edge: θ = 0.6, and the mean is below the plateau's score.
        let wide = fit_thresholds_with_margin(&files, 0.2).expect("fits");
        assert!(close(wide.thresholds.standard, 0.6), "{}", wide.thresholds.standard);
        assert!(wide.smoothed(Profile::Standard) < fit.smoothed(Profile::Standard));

        // No alarm at all scores best around θ: no alarm (1.1).
        let quiet = [one_window(&[(60, 0.5)])];
        assert_eq!(fit_thresholds_with_margin(&quiet, 0.05).expect("fits").thresholds.standard, NO_ALARM_THRESHOLD);

        for bad in [-0.01, f64::NAN, f64::INFINITY] {
            assert!(matches!(fit_thresholds_with_margin(&files, bad), Err(NabError::BadMargin { .. })), "{bad}");
        }
        assert!(matches!(fit_thresholds_with_margin(&[file("cat/n.csv", 100, &[], &[])], 0.01), Err(NabError::NoWindows)));
    }

    #[test]
    fn leave_one_category_out_with_a_margin_fits_each_fold_with_it() {
        // The files of `leave_one_category_out_fits_each_fold_on_the_others_and_pools`, with
        // margin 0.05. Fold catA, fit on B + C: S = -1 above 0.8, -1.11 on (0.6, 0.8], 0.89
        // at or below 0.6, so θ = 0.6 - 0.05. Fold catB, fit on A + C: -1 above 0.9, +1 on
        // (0.8, 0.9], 0.89 below: θ = 0.85, the middle of (0.8, 0.9]. Fold catC: as catA.
        let files = [
            file("catA/x.csv", 100, &[(20, 24)], &[(20, 0.9)]),
            file("catB/y.csv", 100, &[(20, 24)], &[(20, 0.6)]),
            file("catC/z.csv", 100, &[], &[(30, 0.8)]),
        ];
        let s = score_leave_one_category_out(&files, 0.05).expect("scores");
        let got: Vec<f64> = s.profile(Profile::Standard).folds.iter().map(|f| f.threshold).collect();
        assert!(close(got[0], 0.55) && close(got[1], 0.85) && close(got[2], 0.55), "{got:?}");
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<CorpusScore>();
        check::<FileInput>();
        check::<NabError>();
    }
}
