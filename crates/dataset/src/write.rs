//! Writing a dataset directory in the contract format, reproducibly: the same
//! [`Dataset`] always gives byte-identical files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use polars::prelude::*;

use crate::Dataset;
use crate::read::DatasetError;

/// Which metrics file to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFormat {
    /// `metrics.parquet` (zstd-compressed).
    #[default]
    Parquet,
    /// `metrics.csv`.
    Csv,
}

impl std::str::FromStr for MetricsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parquet" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            other => Err(format!("unknown metrics format {other:?} (expected parquet or csv)")),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io { path: path.to_path_buf(), source }
}

fn create(path: &Path) -> Result<BufWriter<File>, DatasetError> {
    File::create(path).map(BufWriter::new).map_err(io(path))
}

fn enc(path: &Path) -> impl FnOnce(PolarsError) -> DatasetError + '_ {
    move |e| DatasetError::Decode { path: path.to_path_buf(), reason: format!("encoding failed: {e}") }
}

/// Writes `ds` into `dir` (created if needed): `hosts.csv`, `resources.json`,
/// `metrics.parquet` or `metrics.csv`, `events.jsonl`, `failures.csv` and, when
/// `ds.meta` is set, `dataset.json`. Metric rows are sorted by (timestamp, host, metric).
///
/// # Errors
/// I/O failures, naming the file.
pub fn write_dataset(ds: &Dataset, dir: &Path, format: MetricsFormat) -> Result<(), DatasetError> {
    write_inventory(ds, dir)?;
    write_metrics(ds, dir, format)
}

/// Writes every file of [`write_dataset`] but the metrics.
pub(crate) fn write_inventory(ds: &Dataset, dir: &Path) -> Result<(), DatasetError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;

    let p = dir.join("hosts.csv");
    let mut hosts = DataFrame::new(
        ds.hosts.len(),
        vec![
            Column::new("host".into(), ds.hosts.iter().map(|h| h.host.as_str()).collect::<Vec<_>>()),
            Column::new("zone".into(), ds.hosts.iter().map(|h| h.zone.as_str()).collect::<Vec<_>>()),
            Column::new("rack".into(), ds.hosts.iter().map(|h| h.rack.as_str()).collect::<Vec<_>>()),
            Column::new("cpu_cores".into(), ds.hosts.iter().map(|h| h.cpu_cores).collect::<Vec<_>>()),
            Column::new("mem_gb".into(), ds.hosts.iter().map(|h| h.mem_gb).collect::<Vec<_>>()),
        ],
    )
    .map_err(enc(&p))?;
    let mut w = create(&p)?;
    CsvWriter::new(&mut w).finish(&mut hosts).map_err(enc(&p))?;
    w.flush().map_err(io(&p))?;

    let p = dir.join("resources.json");
    let text =
        serde_json::to_string_pretty(&ds.resources).map_err(|e| DatasetError::Io { path: p.clone(), source: std::io::Error::other(e) })?;
    std::fs::write(&p, text + "\n").map_err(io(&p))?;

    let p = dir.join("events.jsonl");
    let mut w = create(&p)?;
    for e in &ds.events {
        serde_json::to_writer(&mut w, e).map_err(|e| DatasetError::Io { path: p.clone(), source: e.into() })?;
        w.write_all(b"\n").map_err(io(&p))?;
    }
    w.flush().map_err(io(&p))?;

    let p = dir.join("failures.csv");
    let mut failures = DataFrame::new(
        ds.failures.len(),
        vec![
            Column::new("host".into(), ds.failures.iter().map(|f| f.host.as_str()).collect::<Vec<_>>()),
            Column::new("timestamp".into(), ds.failures.iter().map(|f| f.timestamp).collect::<Vec<_>>()),
            Column::new("kind".into(), ds.failures.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>()),
        ],
    )
    .map_err(enc(&p))?;
    let mut w = create(&p)?;
    CsvWriter::new(&mut w).finish(&mut failures).map_err(enc(&p))?;
    w.flush().map_err(io(&p))?;

    if let Some(meta) = &ds.meta {
        let p = dir.join("dataset.json");
        let text =
            serde_json::to_string_pretty(meta).map_err(|e| DatasetError::Io { path: p.clone(), source: std::io::Error::other(e) })?;
        std::fs::write(&p, text + "\n").map_err(io(&p))?;
    }
    Ok(())
}

fn write_metrics(ds: &Dataset, dir: &Path, format: MetricsFormat) -> Result<(), DatasetError> {
    // Order rows by (timestamp, series); series are sorted by (host, metric) first so the
    // tie order is deterministic.
    let mut order: Vec<usize> = (0..ds.metrics.len()).collect();
    order.sort_by(|a, b| ds.metrics[*a].key.cmp(&ds.metrics[*b].key));
    let n = ds.metric_rows();
    let mut rows: Vec<(i64, u32, u32)> = Vec::with_capacity(n);
    for (rank, &si) in order.iter().enumerate() {
        for (j, t) in ds.metrics[si].timestamps.iter().enumerate() {
            rows.push((*t, rank as u32, j as u32));
        }
    }
    rows.sort_unstable();
    let mut ts = Vec::with_capacity(n);
    let mut host = Vec::with_capacity(n);
    let mut metric = Vec::with_capacity(n);
    let mut value = Vec::with_capacity(n);
    for (t, rank, j) in rows {
        let s = &ds.metrics[order[rank as usize]];
        ts.push(t);
        host.push(s.key.host.as_str());
        metric.push(s.key.metric.as_str());
        value.push(s.values[j as usize]);
    }
    let (p, is_parquet) = match format {
        MetricsFormat::Parquet => (dir.join("metrics.parquet"), true),
        MetricsFormat::Csv => (dir.join("metrics.csv"), false),
    };
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("timestamp".into(), ts),
            Column::new("host".into(), host),
            Column::new("metric".into(), metric),
            Column::new("value".into(), value),
        ],
    )
    .map_err(enc(&p))?;
    let mut w = create(&p)?;
    if is_parquet {
        ParquetWriter::new(&mut w).with_compression(ParquetCompression::Zstd(None)).set_parallel(false).finish(&mut df).map_err(enc(&p))?;
    } else {
        CsvWriter::new(&mut w).finish(&mut df).map_err(enc(&p))?;
    }
    w.flush().map_err(io(&p))?;
    Ok(())
}

/// Writes a feature table (for exporting training rows to other tools) as Parquet:
/// `host` (string) and `timestamp` (i64 ms) saying where each row comes from, one `f32`
/// column per name (NaN = missing), then `label` (bool) and `holdout` (bool: the row
/// belongs to the held-back part). `x` is row-major with `names.len()` columns; `at`
/// gives each row's host (an index into `hosts`) and time.
///
/// # Errors
/// [`DatasetError`] naming the file.
pub fn write_features(
    path: &Path,
    names: &[String],
    x: &[f32],
    label: &[bool],
    holdout: &[bool],
    hosts: &[String],
    at: &[(u32, i64)],
) -> Result<(), DatasetError> {
    let k = names.len();
    let n = label.len();
    let mut cols: Vec<Column> = Vec::with_capacity(k + 4);
    let host: Vec<&str> = at.iter().map(|&(h, _)| hosts.get(h as usize).map_or("", String::as_str)).collect();
    cols.push(Column::new("host".into(), host));
    cols.push(Column::new("timestamp".into(), at.iter().map(|&(_, t)| t).collect::<Vec<i64>>()));
    for (j, name) in names.iter().enumerate() {
        let v: Vec<f32> = (0..n).map(|i| x[i * k + j]).collect();
        cols.push(Column::new(name.as_str().into(), v));
    }
    cols.push(Column::new("label".into(), label.to_vec()));
    cols.push(Column::new("holdout".into(), holdout.to_vec()));
    let mut df = DataFrame::new(n, cols).map_err(enc(path))?;
    let mut w = create(path)?;
    ParquetWriter::new(&mut w).with_compression(ParquetCompression::Zstd(None)).finish(&mut df).map_err(enc(path))?;
    w.flush().map_err(io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_features_keep_where_each_row_comes_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rows.parquet");
        let names = vec!["cpu.level".to_string(), "host.z_max".to_string()];
        let x = [0.5, f32::NAN, 0.25, 3.0];
        let hosts = vec!["h0".to_string(), "h1".to_string()];
        write_features(&path, &names, &x, &[false, true], &[false, true], &hosts, &[(1, 60_000), (0, 120_000)]).expect("written");
        let df = ParquetReader::new(File::open(&path).expect("file")).finish().expect("parquet");
        let cols: Vec<&str> = df.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(cols, ["host", "timestamp", "cpu.level", "host.z_max", "label", "holdout"]);
        let host: Vec<Option<&str>> = df.column("host").expect("host").str().expect("str").iter().collect();
        assert_eq!(host, [Some("h1"), Some("h0")]);
        let ts: Vec<Option<i64>> = df.column("timestamp").expect("ts").i64().expect("i64").iter().collect();
        assert_eq!(ts, [Some(60_000), Some(120_000)]);
        let z: Vec<Option<f32>> = df.column("host.z_max").expect("z").f32().expect("f32").iter().collect();
        assert!(z[0].expect("present").is_nan() && z[1] == Some(3.0));
    }
}
