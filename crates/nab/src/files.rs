//! NAB's files on disk: the windows file, data files, results files, and a corpus
//! directory walk.
//!
//! CSV here is NAB's plain kind: a header line, comma-separated fields, no quoting.
//! Columns are found by header name; blank lines are skipped (as pandas does); errors
//! name the file and the 1-based line (the header is line 1 of a file without leading
//! blank lines).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use crate::error::NabError;
use crate::score::{FileInput, resolve_windows};

/// Windows of every file: NAB file key (`"<category>/<file>.csv"`) to `[start, end]`
/// timestamp pairs, inclusive, in file order.
pub type Windows = BTreeMap<String, Vec<(String, String)>>;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> NabError + '_ {
    move |source| NabError::Io { path: path.to_path_buf(), source }
}

/// Reads `labels/combined_windows.json`.
///
/// # Errors
/// [`NabError::Io`] if the file cannot be read, [`NabError::LabelsJson`] if it is not a
/// JSON object of lists of `[start, end]` string pairs.
pub fn load_windows(path: &Path) -> Result<Windows, NabError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|source| NabError::LabelsJson { path: path.to_path_buf(), source })
}

/// A NAB data file (`timestamp,value`).
#[derive(Clone, Debug, PartialEq)]
pub struct DataFile {
    /// Timestamps as written in the file, in file order.
    pub timestamps: Vec<String>,
    /// Values, row by row.
    pub values: Vec<f64>,
}

/// Calls `row(line, fields)` for every non-blank line after the header, with `fields`
/// the values of `columns` (looked up by header name), trimmed. `line` is 1-based.
///
/// Generic over the caller's error type, so callers parse fields with their own errors
/// while file-level problems arrive as [`NabError`].
///
/// # Errors
/// [`NabError`] (converted into `E`) naming the file and line: unreadable, empty, a missing
/// column, a short row; or whatever `row` returns.
pub fn read_columns<const K: usize, E: From<NabError>>(
    path: &Path,
    columns: [&'static str; K],
    mut row: impl FnMut(usize, [&str; K]) -> Result<(), E>,
) -> Result<(), E> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let (header_line, header) = lines.next().ok_or_else(|| NabError::EmptyCsv { path: path.to_path_buf() })?;
    let header = header.strip_prefix('\u{feff}').unwrap_or(header);
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut index = [0_usize; K];
    for (slot, column) in index.iter_mut().zip(columns) {
        *slot = names.iter().position(|&n| n == column).ok_or_else(|| NabError::MissingColumn {
            path: path.to_path_buf(),
            line: header_line,
            column,
        })?;
    }
    let mut fields: Vec<&str> = Vec::with_capacity(names.len());
    for (line, text) in lines {
        fields.clear();
        fields.extend(text.split(',').map(str::trim));
        let mut picked = [""; K];
        for ((out, &i), column) in picked.iter_mut().zip(&index).zip(columns) {
            *out = fields.get(i).copied().ok_or_else(|| NabError::ShortRow {
                path: path.to_path_buf(),
                line,
                column,
                needed: i + 1,
                found: fields.len(),
            })?;
        }
        row(line, picked)?;
    }
    Ok(())
}

fn number(path: &Path, line: usize, column: &'static str, value: &str) -> Result<f64, NabError> {
    value.parse().map_err(|_| NabError::BadNumber { path: path.to_path_buf(), line, column, value: value.to_string() })
}

/// Reads a data file: header with `timestamp` and `value` columns, one row per line.
///
/// # Errors
/// [`NabError`] naming the file (and line): unreadable, empty, a missing column, a short
/// row, a value that is not a number.
pub fn read_data_file(path: &Path) -> Result<DataFile, NabError> {
    let mut data = DataFile { timestamps: Vec::new(), values: Vec::new() };
    read_columns(path, ["timestamp", "value"], |line, [t, v]| {
        data.values.push(number(path, line, "value", v)?);
        data.timestamps.push(t.to_string());
        Ok(())
    })?;
    Ok(data)
}

/// Reads the `anomaly_score` column of a results file (NAB's
/// `timestamp,value,anomaly_score,label`; only `anomaly_score` is read, by header name:
/// rows are matched to the data file by position).
///
/// # Errors
/// [`NabError`] naming the file (and line): unreadable, empty, no `anomaly_score`
/// column, a short row, a score that is not a number, or is NaN or outside [0, 1]
/// ([`NabError::BadScoreInFile`]).
pub fn read_results_scores(path: &Path) -> Result<Vec<f64>, NabError> {
    let mut scores = Vec::new();
    read_columns(path, ["anomaly_score"], |line, [s]| {
        let value = number(path, line, "anomaly_score", s)?;
        if !(0.0..=1.0).contains(&value) {
            return Err(NabError::BadScoreInFile { path: path.to_path_buf(), line, value });
        }
        scores.push(value);
        Ok(())
    })?;
    Ok(scores)
}

/// Writes a results file in NAB's format, `timestamp,value,anomaly_score,label`, one row
/// per data row; `label` is 1 inside a window of `windows`, else 0 (as NAB writes it).
/// Creates the parent directory. `name` is the NAB file key, used in errors.
///
/// # Errors
/// [`NabError::LengthMismatch`] or [`NabError::ScoreOutOfRange`] for bad `scores`; the
/// window errors of [`crate::score_corpus`]; [`NabError::Io`] naming `path`.
pub fn write_results_file(path: &Path, name: &str, data: &DataFile, scores: &[f64], windows: &[(String, String)]) -> Result<(), NabError> {
    let n = data.timestamps.len();
    if scores.len() != n || data.values.len() != n {
        return Err(NabError::LengthMismatch { file: name.to_string(), timestamps: n, scores: scores.len() });
    }
    if let Some((row, &value)) = scores.iter().enumerate().find(|&(_, v)| !(0.0..=1.0).contains(v)) {
        return Err(NabError::ScoreOutOfRange { file: name.to_string(), row, value });
    }
    let mut label = vec![0_u8; n];
    for (l, r) in resolve_windows(name, &data.timestamps, windows)? {
        label[l..=r].fill(1);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let file = fs::File::create(path).map_err(io_error(path))?;
    let mut out = BufWriter::new(file);
    let mut write_all = || -> std::io::Result<()> {
        writeln!(out, "timestamp,value,anomaly_score,label")?;
        for i in 0..n {
            writeln!(out, "{},{},{},{}", data.timestamps[i], data.values[i], scores[i], label[i])?;
        }
        out.flush()
    };
    write_all().map_err(io_error(path))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, NabError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        out.push(entry.map_err(io_error(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// Reads a corpus: every `data_dir/<category>/*.csv` (sorted), its windows from the
/// `labels` windows file, and its scores from `results_dir/<category>/<file>.csv`.
/// Label entries without a data file are ignored, so pointing `data_dir` at a copy with
/// fewer files scores that subset.
///
/// # Errors
/// [`NabError::NoDataFiles`] if there is no data file; [`NabError::NotInLabels`] for a
/// data file without windows entry; [`NabError::MissingResults`] and
/// [`NabError::RowCountMismatch`] naming the results file; any reading error of
/// [`load_windows`], [`read_data_file`], [`read_results_scores`].
pub fn load_corpus(data_dir: &Path, labels: &Path, results_dir: &Path) -> Result<Vec<FileInput>, NabError> {
    let mut windows = load_windows(labels)?;
    let mut inputs = Vec::new();
    for category_dir in sorted_entries(data_dir)?.into_iter().filter(|p| p.is_dir()) {
        let Some(category) = category_dir.file_name().map(|c| c.to_string_lossy().into_owned()) else {
            continue;
        };
        for data_path in sorted_entries(&category_dir)? {
            if !data_path.is_file() || data_path.extension().is_none_or(|e| e != "csv") {
                continue;
            }
            let Some(file_name) = data_path.file_name().map(|f| f.to_string_lossy().into_owned()) else {
                continue;
            };
            let name = format!("{category}/{file_name}");
            let file_windows =
                windows.remove(&name).ok_or_else(|| NabError::NotInLabels { file: name.clone(), labels: labels.to_path_buf() })?;
            let data = read_data_file(&data_path)?;
            let results_path = results_dir.join(&category).join(&file_name);
            if !results_path.is_file() {
                return Err(NabError::MissingResults { file: name, path: results_path });
            }
            let scores = read_results_scores(&results_path)?;
            if scores.len() != data.timestamps.len() {
                return Err(NabError::RowCountMismatch {
                    file: name,
                    path: results_path,
                    expected: data.timestamps.len(),
                    found: scores.len(),
                });
            }
            inputs.push(FileInput { name, timestamps: data.timestamps, scores, windows: file_windows });
        }
    }
    if inputs.is_empty() {
        return Err(NabError::NoDataFiles { path: data_dir.to_path_buf() });
    }
    Ok(inputs)
}

/// [`load_corpus`] then [`crate::score_corpus`]: scores the results in `results_dir`
/// against the data in `data_dir` and the windows in `labels`.
///
/// # Errors
/// Those of [`load_corpus`] and [`crate::score_corpus`].
pub fn score_dirs(data_dir: &Path, labels: &Path, results_dir: &Path) -> Result<crate::CorpusScore, NabError> {
    crate::score_corpus(&load_corpus(data_dir, labels, results_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    fn write(path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("mkdir");
        }
        fs::write(path, text).expect("write");
    }

    fn ts(i: usize) -> String {
        format!("2020-01-01 {:02}:{:02}:00", i / 60, i % 60)
    }

    /// A 100-row data file with values 0..99.
    fn data_csv() -> String {
        let mut s = String::from("timestamp,value\n");
        for i in 0..100 {
            s.push_str(&format!("{},{i}\n", ts(i)));
        }
        s
    }

    const LABELS: &str = r#"{"cat/a.csv": [["2020-01-01 00:20:00.000000", "2020-01-01 00:24:00.000000"]],
                             "other/unused.csv": []}"#;

    #[test]
    fn windows_file_is_read_as_timestamp_pairs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.json");
        write(&path, LABELS);
        let w = load_windows(&path).expect("reads");
        assert_eq!(w["cat/a.csv"], [("2020-01-01 00:20:00.000000".to_string(), "2020-01-01 00:24:00.000000".to_string())]);
        assert!(w["other/unused.csv"].is_empty());
        write(&path, r#"{"cat/a.csv": [["only one"]]}"#);
        assert!(matches!(load_windows(&path), Err(NabError::LabelsJson { .. })));
        assert!(matches!(load_windows(&dir.path().join("absent.json")), Err(NabError::Io { .. })));
    }

    #[test]
    fn data_file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.csv");
        write(&path, "timestamp,value\r\n2020-01-01 00:00:00,1.5\r\n\r\n2020-01-01 00:01:00,2\r\n");
        let d = read_data_file(&path).expect("reads");
        assert_eq!(d.timestamps, ["2020-01-01 00:00:00", "2020-01-01 00:01:00"]);
        assert_eq!(d.values, [1.5, 2.0]);

        write(&path, "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,abc\n");
        let err = read_data_file(&path).expect_err("bad number");
        assert!(matches!(&err, NabError::BadNumber { line: 3, column: "value", .. }), "{err}");
        assert!(err.to_string().contains("d.csv line 3"), "{err}");

        write(&path, "timestamp,value\n2020-01-01 00:00:00\n");
        assert!(matches!(read_data_file(&path), Err(NabError::ShortRow { line: 2, needed: 2, found: 1, .. })));
        write(&path, "time,value\n");
        assert!(matches!(read_data_file(&path), Err(NabError::MissingColumn { line: 1, column: "timestamp", .. })));
        write(&path, "\n\n");
        assert!(matches!(read_data_file(&path), Err(NabError::EmptyCsv { .. })));
    }

    #[test]
    fn results_are_read_by_the_anomaly_score_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        write(&path, "label,anomaly_score,timestamp\n0,0.25,x\n1,1,y\n");
        assert_eq!(read_results_scores(&path).expect("reads"), [0.25, 1.0]);
        write(&path, "timestamp,value,anomaly_score,label\nx,1,0.5,0\nx,1,1.2,0\n");
        assert!(matches!(read_results_scores(&path), Err(NabError::BadScoreInFile { line: 3, .. })));
        write(&path, "timestamp,value,label\nx,1,0\n");
        assert!(matches!(read_results_scores(&path), Err(NabError::MissingColumn { column: "anomaly_score", .. })));
    }

    #[test]
    fn written_results_read_back_with_window_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_path = dir.path().join("d.csv");
        write(&data_path, &data_csv());
        let data = read_data_file(&data_path).expect("reads");
        let windows = load_windows_from_str(LABELS).remove("cat/a.csv").expect("entry");
        let scores: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let out = dir.path().join("results/cat/a.csv");
        write_results_file(&out, "cat/a.csv", &data, &scores, &windows).expect("writes");
        assert_eq!(read_results_scores(&out).expect("reads"), scores);
        let text = fs::read_to_string(&out).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "timestamp,value,anomaly_score,label");
        assert_eq!(lines[20], "2020-01-01 00:19:00,19,0.19,0");
        assert_eq!(lines[21], "2020-01-01 00:20:00,20,0.2,1");
        assert_eq!(lines[25], "2020-01-01 00:24:00,24,0.24,1");
        assert_eq!(lines[26], "2020-01-01 00:25:00,25,0.25,0");
        let err = write_results_file(&out, "cat/a.csv", &data, &scores[1..], &windows);
        assert!(matches!(err, Err(NabError::LengthMismatch { scores: 99, .. })));
    }

    fn load_windows_from_str(s: &str) -> Windows {
        serde_json::from_str(s).expect("labels")
    }

    /// data/cat/a.csv, labels, and results/cat/a.csv with `results`.
    fn corpus(results: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("data/cat/a.csv"), &data_csv());
        write(&dir.path().join("data/README.md"), "not a category");
        write(&dir.path().join("data/cat/notes.txt"), "not data");
        write(&dir.path().join("labels.json"), LABELS);
        if let Some(r) = results {
            write(&dir.path().join("results/cat/a.csv"), r);
        }
        dir
    }

    fn results_with_alarm_at(row: usize, rows: usize) -> String {
        let mut s = String::from("timestamp,value,anomaly_score,label\n");
        for i in 0..rows {
            s.push_str(&format!("{},{i},{},0\n", ts(i), if i == row { 1 } else { 0 }));
        }
        s
    }

    fn score(dir: &tempfile::TempDir) -> Result<crate::CorpusScore, NabError> {
        let p = dir.path();
        score_dirs(&p.join("data"), &p.join("labels.json"), &p.join("results"))
    }

    #[test]
    fn score_dirs_scores_a_perfect_results_directory() {
        // Alarm on row 20, the first row of the window [20, 24]: perfect, 100.
        let dir = corpus(Some(&results_with_alarm_at(20, 100)));
        let s = score(&dir).expect("scores");
        assert_eq!((s.files, s.windows), (1, 1));
        assert_eq!(s.profile(Profile::Standard).normalised, 100.0);
        assert_eq!(s.profile(Profile::Standard).files[0].name, "cat/a.csv");
    }

    #[test]
    fn score_dirs_names_missing_and_short_results() {
        let dir = corpus(None);
        let err = score(&dir).expect_err("no results");
        assert!(matches!(&err, NabError::MissingResults { file, .. } if file == "cat/a.csv"), "{err}");
        assert!(err.to_string().contains("results/cat/a.csv"), "{err}");

        let dir = corpus(Some(&results_with_alarm_at(20, 99)));
        let err = score(&dir).expect_err("short");
        assert!(matches!(&err, NabError::RowCountMismatch { expected: 100, found: 99, .. }), "{err}");
        assert!(err.to_string().contains("results/cat/a.csv"), "{err}");
    }

    #[test]
    fn score_dirs_requires_labels_for_every_data_file() {
        let dir = corpus(Some(&results_with_alarm_at(20, 100)));
        write(&dir.path().join("data/cat/b.csv"), &data_csv());
        let err = score(&dir).expect_err("b has no labels");
        assert!(matches!(&err, NabError::NotInLabels { file, .. } if file == "cat/b.csv"), "{err}");

        let empty = tempfile::tempdir().expect("tempdir");
        write(&empty.path().join("labels.json"), LABELS);
        fs::create_dir_all(empty.path().join("data")).expect("mkdir");
        assert!(matches!(score(&empty), Err(NabError::NoDataFiles { .. })));
    }
}
