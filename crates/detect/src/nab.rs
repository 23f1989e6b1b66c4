//! Running a detector over a NAB-layout corpus: `<data>/<category>/<name>.csv` in,
//! `<out>/<category>/<name>.csv` (NAB results format) out.

use std::fs;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use harbinger_core::time::parse_timestamp_ms;

use crate::error::DetectError;
use crate::params::DetectorParams;
use crate::{DefaultDetector, StreamingDetector};

/// The margin, in score units, with which a threshold fitted on one corpus is carried to
/// data it was not fitted on (`harbinger_nab::fit_thresholds_with_margin`): the threshold
/// whose neighbourhood, this far either side, scores best on average, rather than NAB's
/// exact optimum, which sits just below some detection's score. For the default
/// detector (`score_decades` 5) near its usual threshold (about 0.70), 0.01 in score is
/// about 0.07 decades of surprise. `nab score` prints such thresholds; the
/// leave-one-category-out check (`examples/nab_eval.rs --loco --margin`) fits its folds
/// with it.
pub const TRANSFER_MARGIN: f64 = 0.01;

/// What [`run_nab_dir`] did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunReport {
    /// Data files processed.
    pub files: usize,
    /// Rows streamed through detectors (all files).
    pub points: u64,
    /// Wall-clock seconds for the whole run (reading, detecting, writing).
    pub seconds: f64,
    /// Seconds spent inside [`StreamingDetector::update`] alone.
    pub detector_seconds: f64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DetectError + '_ {
    move |source| DetectError::Io { path: path.to_path_buf(), source }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DetectError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        out.push(entry.map_err(io_error(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// One data row: the original timestamp and value text, and the parsed pair.
struct Row {
    ts_text: String,
    value_text: String,
    ts: i64,
    value: f64,
}

/// Reads a NAB data file (`timestamp,value` by header name; blank lines skipped) through
/// the scorer's CSV reader, parsing timestamps and values with their line numbers.
fn parse_data(path: &Path) -> Result<Vec<Row>, DetectError> {
    let mut rows = Vec::new();
    harbinger_nab::read_columns(path, ["timestamp", "value"], |line, [ts_text, value_text]| {
        let ts = parse_timestamp_ms(ts_text).map_err(|_| DetectError::BadTimestamp {
            path: path.to_path_buf(),
            line,
            value: ts_text.to_string(),
        })?;
        let value =
            value_text.parse().map_err(|_| DetectError::BadValue { path: path.to_path_buf(), line, value: value_text.to_string() })?;
        rows.push(Row { ts_text: ts_text.to_string(), value_text: value_text.to_string(), ts, value });
        Ok::<(), DetectError>(())
    })?;
    Ok(rows)
}

/// Runs a fresh [`DefaultDetector`] over every `<category>/<name>.csv` under `data_dir`
/// (sorted; header `timestamp,value`) and writes `<out_dir>/<category>/<name>.csv` in
/// NAB's results format, `timestamp,value,anomaly_score,label` (label 0, one row per
/// input row, same order; timestamp and value copied as written).
///
/// # Errors
/// [`DetectError::Params`] for invalid `params`; [`DetectError::NoDataFiles`] if there
/// is no data file; errors naming the file (and line) for unreadable files, a missing
/// column, a short row, a bad timestamp or value; [`DetectError::Io`] on writing.
pub fn run_nab_dir(data_dir: &Path, out_dir: &Path, params: &DetectorParams) -> Result<RunReport, DetectError> {
    let params = params.clone().check()?;
    let start = Instant::now();
    let mut report = RunReport { files: 0, points: 0, seconds: 0.0, detector_seconds: 0.0 };
    for category_dir in sorted_entries(data_dir)?.into_iter().filter(|p| p.is_dir()) {
        let Some(category) = category_dir.file_name() else {
            continue;
        };
        for data_path in sorted_entries(&category_dir)? {
            if !data_path.is_file() || data_path.extension().is_none_or(|e| e != "csv") {
                continue;
            }
            let Some(file_name) = data_path.file_name() else {
                continue;
            };
            let rows = parse_data(&data_path)?;

            let detect_start = Instant::now();
            let mut detector = DefaultDetector::new(params.clone());
            let scores: Vec<f64> = rows.iter().map(|r| detector.update(r.ts, r.value)).collect();
            report.detector_seconds += detect_start.elapsed().as_secs_f64();

            let out_category = out_dir.join(category);
            fs::create_dir_all(&out_category).map_err(io_error(&out_category))?;
            let out_path = out_category.join(file_name);
            let file = fs::File::create(&out_path).map_err(io_error(&out_path))?;
            let mut out = BufWriter::new(file);
            let mut write_all = || -> std::io::Result<()> {
                writeln!(out, "timestamp,value,anomaly_score,label")?;
                for (r, s) in rows.iter().zip(&scores) {
                    writeln!(out, "{},{},{},0", r.ts_text, r.value_text, s)?;
                }
                out.flush()
            };
            write_all().map_err(io_error(&out_path))?;
            report.files += 1;
            report.points += rows.len() as u64;
        }
    }
    if report.files == 0 {
        return Err(DetectError::NoDataFiles { path: data_dir.to_path_buf() });
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, text)?;
        Ok(())
    }

    fn series(n: usize) -> String {
        let mut s = String::from("timestamp,value\n");
        for i in 0..n {
            let (h, m) = (i / 12, (i % 12) * 5);
            let v = (i as f64 * 0.3).sin() + if i == n / 2 { 9.0 } else { 0.0 };
            s.push_str(&format!("2014-04-{:02} {:02}:{:02}:00,{v}\n", 1 + h / 24, h % 24, m));
        }
        s
    }

    #[test]
    fn run_nab_dir_writes_one_row_per_input_row() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (data, out) = (dir.path().join("data"), dir.path().join("out"));
        write(&data.join("catA/one.csv"), &series(500))?;
        write(&data.join("catA/two.csv"), &series(37))?;
        write(&data.join("catB/three.csv"), &series(1))?;
        write(&data.join("catB/notes.txt"), "ignored")?;
        let report = run_nab_dir(&data, &out, &DetectorParams::default())?;
        assert_eq!((report.files, report.points), (3, 538));
        for (name, n) in [("catA/one.csv", 500), ("catA/two.csv", 37), ("catB/three.csv", 1)] {
            let text = fs::read_to_string(out.join(name))?;
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("timestamp,value,anomaly_score,label"));
            let rows: Vec<&str> = lines.collect();
            assert_eq!(rows.len(), n, "{name}");
            for row in rows {
                let f: Vec<&str> = row.split(',').collect();
                assert_eq!(f.len(), 4);
                let s: f64 = f[2].parse()?;
                assert!((0.0..=1.0).contains(&s) && f[3] == "0");
            }
        }
        Ok(())
    }

    #[test]
    fn bad_rows_name_file_and_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        write(&data.join("c/f.csv"), "timestamp,value\n2014-04-01 00:00:00,1\n\n2014-04-01 00:05:00,abc\n")?;
        let err = run_nab_dir(&data, &dir.path().join("out"), &DetectorParams::default());
        match err {
            Err(DetectError::BadValue { path, line: 4, value }) => {
                assert!(path.ends_with("c/f.csv") && value == "abc");
            }
            other => panic!("unexpected {other:?}"),
        }
        write(&data.join("c/f.csv"), "timestamp,value\n2014-04-01 0:00:00,1\n")?;
        let err = run_nab_dir(&data, &dir.path().join("out"), &DetectorParams::default());
        assert!(matches!(err, Err(DetectError::BadTimestamp { line: 2, .. })), "{err:?}");
        let msg = err.map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("f.csv line 2"), "{msg}");
        Ok(())
    }
}
