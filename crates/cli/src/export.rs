//! Export of training rows (`harbinger train --export-features FILE`) for other tools,
//! such as the scikit-learn baseline under `bench/`.

use std::path::Path;

use harbinger_model::Rows;

/// Writes training and held-back rows into one Parquet file with `host`, `timestamp`
/// and `holdout` columns.
///
/// # Errors
/// The file cannot be written.
pub fn write_rows(path: &Path, rows: &Rows) -> anyhow::Result<()> {
    let mut x = rows.train_x.clone();
    x.extend_from_slice(&rows.holdout_x);
    let mut y = rows.train_y.clone();
    y.extend_from_slice(&rows.holdout_y);
    let mut part = vec![false; rows.train_y.len()];
    part.extend(std::iter::repeat_n(true, rows.holdout_y.len()));
    let mut at = rows.train_at.clone();
    at.extend_from_slice(&rows.holdout_at);
    harbinger_dataset::write_features(path, &rows.names, &x, &y, &part, &rows.hosts, &at)?;
    Ok(())
}
