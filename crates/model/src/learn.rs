//! Learners: a logistic model and a forest of decision trees, both fitted with linfa,
//! an isotonic calibrator, and the ranking metric used to choose between them.
//!
//! Fitted models are plain serialisable values ([`Logistic`], [`Forest`]) so `train`
//! and `serve` exchange artefacts, not code. Trees are fitted by `linfa-trees` and then
//! flattened; each node keeps the (class-balanced) share of failures among the training
//! rows that reached it, which gives the forest a probability and per-feature path
//! contributions (the change of that share at every split along a row's path).

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use linfa_trees::{DecisionTree, TreeNode};
// Only its `threading` feature is wanted: ndarray's matrix products in the logistic fit
// are split over the cores (by rows of the product, so the results do not change).
use matrixmultiply as _;
use ndarray::{Array1, Array2, ShapeBuilder};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A fitting failure.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// linfa refused the data or did not converge.
    #[error("{learner}: {message}")]
    Fit {
        /// Which learner.
        learner: &'static str,
        /// linfa's message.
        message: String,
    },
}

/// Column-wise imputation (training medians) and standardisation (training mean/sd).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prep {
    /// Value used for a missing (NaN) feature.
    pub fill: Vec<f64>,
    /// Mean after imputation.
    pub mean: Vec<f64>,
    /// Standard deviation after imputation (at least 1e-9).
    pub sd: Vec<f64>,
}

impl Prep {
    /// Fits on row-major `x` with `k` columns.
    pub fn fit(x: &[f32], k: usize) -> Self {
        let n = x.len() / k.max(1);
        let mut fill = vec![0.0; k];
        let mut mean = vec![0.0; k];
        let mut sd = vec![1.0; k];
        let mut col = Vec::with_capacity(n);
        for j in 0..k {
            col.clear();
            col.extend((0..n).map(|i| f64::from(x[i * k + j])).filter(|v| v.is_finite()));
            if col.is_empty() {
                continue;
            }
            let mid = col.len() / 2;
            let (_, m, _) = col.select_nth_unstable_by(mid, f64::total_cmp);
            fill[j] = *m;
            let missing = (n - col.len()) as f64;
            let s: f64 = col.iter().sum::<f64>() + missing * fill[j];
            let mu = s / n as f64;
            let ss: f64 = col.iter().map(|v| (v - mu).powi(2)).sum::<f64>() + missing * (fill[j] - mu).powi(2);
            mean[j] = mu;
            sd[j] = (ss / n as f64).sqrt().max(1e-9);
        }
        Prep { fill, mean, sd }
    }

    /// Replaces NaN with the fill value, in place; returns how many were missing.
    pub fn impute(&self, row: &mut [f64]) -> usize {
        let mut missing = 0;
        for (v, f) in row.iter_mut().zip(&self.fill) {
            if !v.is_finite() {
                *v = *f;
                missing += 1;
            }
        }
        missing
    }
}

/// A fitted logistic model over standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Weight per standardised feature.
    pub weights: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
}

impl Logistic {
    /// Fits with L2 penalty `alpha`.
    ///
    /// # Errors
    /// linfa's error (e.g. a single class).
    pub fn fit(prep: &Prep, x: &[f32], y: &[bool], k: usize, alpha: f64) -> Result<Self, LearnError> {
        let n = y.len();
        // Column-major: linfa's gradient is `x.t().dot(..)`, which ndarray (without BLAS)
        // computes row by row of `x.t()`; stored this way those rows are contiguous instead
        // of one strided pass over the whole matrix per feature.
        let mut m = Array2::<f64>::zeros((n, k).f());
        for (i, mut r) in m.rows_mut().into_iter().enumerate() {
            for j in 0..k {
                let v = f64::from(x[i * k + j]);
                let v = if v.is_finite() { v } else { prep.fill[j] };
                r[j] = ((v - prep.mean[j]) / prep.sd[j]).clamp(-20.0, 20.0);
            }
        }
        let t = Array1::from_iter(y.iter().map(|&b| usize::from(b)));
        let ds = Dataset::new(m, t);
        let fitted = LogisticRegression::default()
            .alpha(alpha)
            .max_iterations(80)
            .fit(&ds)
            .map_err(|e| LearnError::Fit { learner: "logistic", message: e.to_string() })?;
        // linfa's "positive" class is the more frequent one; flip so the score is P(failure).
        let sign = if fitted.labels().pos.class == 1 { 1.0 } else { -1.0 };
        Ok(Logistic { weights: fitted.params().iter().map(|w| sign * w).collect(), intercept: sign * fitted.intercept() })
    }

    /// Raw score (probability before calibration) and per-feature log-odds contributions
    /// (written to `contrib` if given) for an imputed row.
    pub fn score(&self, prep: &Prep, row: &[f64], contrib: Option<&mut [f64]>) -> f64 {
        let mut z = self.intercept;
        match contrib {
            Some(c) => {
                let terms = row.iter().zip(&self.weights).zip(&prep.mean).zip(&prep.sd);
                for (cj, (((x, w), m), sd)) in c.iter_mut().zip(terms) {
                    let t = w * ((x - m) / sd).clamp(-20.0, 20.0);
                    *cj = t;
                    z += t;
                }
            }
            None => {
                for (((x, w), m), sd) in row.iter().zip(&self.weights).zip(&prep.mean).zip(&prep.sd) {
                    z += w * ((x - m) / sd).clamp(-20.0, 20.0);
                }
            }
        }
        1.0 / (1.0 + (-z).exp())
    }
}

/// One node of a flattened tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Split feature, or `u32::MAX` for a leaf.
    pub f: u32,
    /// Rows with `x[f] <= t` go left.
    pub t: f64,
    /// Left child index.
    pub l: u32,
    /// Right child index.
    pub r: u32,
    /// Share of failures (class-balanced) among training rows that reached the node.
    pub v: f64,
}

/// A flattened decision tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes; index 0 is the root.
    pub nodes: Vec<Node>,
}

/// Trees walked side by side: a walk is a chain of dependent loads and compares, and
/// interleaving a few of them lets the processor overlap the chains.
const LANES: usize = 8;

/// One node of [`Packed`]: children by the outcome of `!(x[f] <= t)`; a leaf points to
/// itself both ways (with `f` 0), so a walk needs no test for leaves.
#[derive(Debug, Clone, Copy)]
struct PackedNode {
    f: u32,
    kids: [u32; 2],
    t: f64,
    v: f64,
}

/// Trees laid out for scoring: all nodes in one array, each tree's root and depth.
/// Built from the artifact's trees on first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packed {
    nodes: Vec<PackedNode>,
    /// Per tree: root index and depth (splits on the longest path).
    roots: Vec<(u32, u32)>,
}

impl Packed {
    fn new(trees: &[Tree]) -> Self {
        let mut p = Packed { nodes: Vec::with_capacity(trees.iter().map(|t| t.nodes.len()).sum()), roots: Vec::new() };
        for t in trees {
            let base = p.nodes.len() as u32;
            let mut depth = vec![0u32; t.nodes.len()];
            let mut deepest = 0;
            for (i, n) in t.nodes.iter().enumerate() {
                let me = base + i as u32;
                if n.f == u32::MAX {
                    p.nodes.push(PackedNode { f: 0, kids: [me, me], t: f64::INFINITY, v: n.v });
                    deepest = deepest.max(depth[i]);
                } else {
                    // Children come after their parent (checked at load), so depths fill forwards.
                    let below = depth[i] + 1;
                    for c in [n.l, n.r] {
                        if let Some(d) = depth.get_mut(c as usize) {
                            *d = below;
                        }
                    }
                    p.nodes.push(PackedNode { f: n.f, kids: [base + n.l, base + n.r], t: n.t, v: n.v });
                }
            }
            p.roots.push((base, deepest));
        }
        let pad = p.nodes.len() as u32;
        p.nodes.push(PackedNode { f: 0, kids: [pad, pad], t: f64::INFINITY, v: 0.0 });
        p
    }

    /// Sum of the leaves `row` reaches (added in tree order); with `contrib`, each split on
    /// the way adds the change in node value to its feature's entry (Saabas path
    /// contributions; `contrib` is not cleared first).
    fn leaf_sum(&self, row: &[f64], contrib: Option<&mut [f64]>) -> f64 {
        match contrib {
            Some(c) => self.walk::<true>(row, c),
            None => self.walk::<false>(row, &mut []),
        }
    }

    fn walk<const CONTRIB: bool>(&self, row: &[f64], c: &mut [f64]) -> f64 {
        let nodes = &self.nodes[..];
        // Lanes without a tree sit on the padding leaf (value 0, last node).
        let pad = nodes.len() - 1;
        let mut total = 0.0;
        for group in self.roots.chunks(LANES) {
            let mut at = [pad; LANES];
            for (a, r) in at.iter_mut().zip(group) {
                *a = r.0 as usize;
            }
            let depth = group.iter().map(|r| r.1).max().unwrap_or(0);
            for _ in 0..depth {
                for a in &mut at {
                    let n = nodes[*a];
                    let x = row.get(n.f as usize).copied().unwrap_or(f64::NAN);
                    // Left when `x <= t`; right otherwise, NaN included.
                    let left = matches!(x.partial_cmp(&n.t), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal));
                    let next = n.kids[usize::from(!left)] as usize;
                    if CONTRIB && let Some(cf) = c.get_mut(n.f as usize) {
                        *cf += nodes[next].v - n.v;
                    }
                    *a = next;
                }
            }
            for a in at {
                total += nodes[a].v;
            }
        }
        total
    }
}

/// The packed form of a learner's trees, kept beside them (not serialised; equal to any
/// other, as it follows from the trees).
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedCache(std::sync::OnceLock<Packed>);

impl PartialEq for PackedCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Sum of the leaves `row` reaches in `trees`, through the packed form in `cache`.
pub(crate) fn leaf_sum(cache: &PackedCache, trees: &[Tree], row: &[f64], contrib: Option<&mut [f64]>) -> f64 {
    cache.0.get_or_init(|| Packed::new(trees)).leaf_sum(row, contrib)
}

/// Forest settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Number of trees.
    pub trees: usize,
    /// Depth limit.
    pub max_depth: usize,
    /// Share of features each tree may split on.
    pub feature_share: f64,
    /// Most rows of each class drawn (with replacement) per tree.
    pub rows_per_class: usize,
    /// Smallest leaf weight.
    pub min_leaf: f32,
    /// Healthy rows drawn per failure row in each tree's sample.
    pub neg_ratio: f64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams { trees: 32, max_depth: 8, feature_share: 0.35, rows_per_class: 4000, min_leaf: 10.0, neg_ratio: 2.0 }
    }
}

/// A forest of flattened linfa trees; its score is the mean leaf share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// Trees.
    pub trees: Vec<Tree>,
    /// Mean impurity-decrease importance per feature (sums to 1).
    pub importance: Vec<f64>,
    #[serde(skip)]
    pub(crate) packed: PackedCache,
}

impl Forest {
    /// Fits `p.trees` trees in parallel, each on a class-balanced bootstrap sample and a
    /// random subset of features. Deterministic for a given `seed`.
    ///
    /// # Errors
    /// linfa's error.
    pub fn fit(prep: &Prep, x: &[f32], y: &[bool], k: usize, p: ForestParams, seed: u64) -> Result<Self, LearnError> {
        let pos: Vec<usize> = (0..y.len()).filter(|&i| y[i]).collect();
        let neg: Vec<usize> = (0..y.len()).filter(|&i| !y[i]).collect();
        if pos.is_empty() || neg.is_empty() {
            return Err(LearnError::Fit { learner: "forest", message: "needs rows of both classes".into() });
        }
        let results: Vec<Result<(Tree, Vec<f64>), LearnError>> = (0..p.trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let per = p.rows_per_class.min(pos.len().max(neg.len())).max(1);
                let per_neg = ((per as f64) * p.neg_ratio).round().max(1.0) as usize;
                let mut rows = Vec::with_capacity(per + per_neg);
                for _ in 0..per {
                    rows.push(pos[rng.random_range(0..pos.len())]);
                }
                for _ in 0..per_neg {
                    rows.push(neg[rng.random_range(0..neg.len())]);
                }
                let kf = ((k as f64 * p.feature_share).round() as usize).clamp(1, k);
                let mut feats: Vec<usize> = sample(&mut rng, k, kf).into_vec();
                feats.sort_unstable();
                fit_tree(prep, x, y, k, &rows, &feats, p)
            })
            .collect();
        let mut trees = Vec::with_capacity(p.trees);
        let mut importance = vec![0.0; k];
        for r in results {
            let (tree, imp) = r?;
            for (a, b) in importance.iter_mut().zip(imp) {
                *a += b;
            }
            trees.push(tree);
        }
        let total: f64 = importance.iter().sum();
        if total > 0.0 {
            for v in &mut importance {
                *v /= total;
            }
        }
        Ok(Forest { trees, importance, packed: PackedCache::default() })
    }

    /// Raw score for an imputed row; per-feature path contributions into `contrib` if given.
    pub fn score(&self, row: &[f64], contrib: Option<&mut [f64]>) -> f64 {
        let n = self.trees.len().max(1) as f64;
        match contrib {
            Some(c) => {
                c.fill(0.0);
                let s = leaf_sum(&self.packed, &self.trees, row, Some(&mut *c));
                for v in c.iter_mut() {
                    *v /= n;
                }
                s / n
            }
            None => leaf_sum(&self.packed, &self.trees, row, None) / n,
        }
    }
}

fn fit_tree(
    prep: &Prep,
    x: &[f32],
    y: &[bool],
    k: usize,
    rows: &[usize],
    feats: &[usize],
    p: ForestParams,
) -> Result<(Tree, Vec<f64>), LearnError> {
    let kf = feats.len();
    let mut m = Array2::<f64>::zeros((rows.len(), kf));
    for (ri, &i) in rows.iter().enumerate() {
        for (fj, &j) in feats.iter().enumerate() {
            let v = f64::from(x[i * k + j]);
            m[(ri, fj)] = if v.is_finite() { v } else { prep.fill[j] };
        }
    }
    let t = Array1::from_iter(rows.iter().map(|&i| usize::from(y[i])));
    // linfa breaks class ties in a node by hash-map order, which would make the tree
    // depend on the process; a slightly heavier healthy row (1 + 2^-10, exact in f32)
    // makes ties practically impossible, so the same seed gives the same forest.
    let w = Array1::from_iter(rows.iter().map(|&i| if y[i] { 1.0f32 } else { 1.0 + 1.0 / 1024.0 }));
    let ds = Dataset::new(m, t).with_weights(w);
    let dt = DecisionTree::params()
        .max_depth(Some(p.max_depth))
        .min_weight_leaf(p.min_leaf)
        .min_weight_split(2.0 * p.min_leaf)
        .fit(&ds)
        .map_err(|e| LearnError::Fit { learner: "forest", message: e.to_string() })?;
    // Flatten, mapping feature indices back to the full vector.
    let mut nodes = Vec::new();
    flatten(dt.root_node(), feats, &mut nodes);
    // Node values: share of positives among the tree's rows reaching each node.
    let mut pos = vec![0.0f64; nodes.len()];
    let mut all = vec![0.0f64; nodes.len()];
    let mut row = vec![0.0; k];
    for &i in rows {
        for j in 0..k {
            let v = f64::from(x[i * k + j]);
            row[j] = if v.is_finite() { v } else { prep.fill[j] };
        }
        let mut n = 0usize;
        loop {
            all[n] += 1.0;
            if y[i] {
                pos[n] += 1.0;
            }
            let nd = &nodes[n];
            if nd.f == u32::MAX {
                break;
            }
            n = if row[nd.f as usize] <= nd.t { nd.l as usize } else { nd.r as usize };
        }
    }
    for (i, nd) in nodes.iter_mut().enumerate() {
        // A light prior keeps tiny leaves from claiming certainty.
        nd.v = (pos[i] + 0.5) / (all[i] + 1.0);
    }
    let mut importance = vec![0.0; k];
    for (fj, v) in dt.feature_importance().into_iter().enumerate() {
        importance[feats[fj]] += v;
    }
    Ok((Tree { nodes }, importance))
}

fn flatten(node: &TreeNode<f64, usize>, feats: &[usize], out: &mut Vec<Node>) -> u32 {
    let me = out.len();
    out.push(Node { f: u32::MAX, t: 0.0, l: 0, r: 0, v: 0.0 });
    let children = node.children();
    let (Some(Some(l)), Some(Some(r))) = (children.first().copied(), children.get(1).copied()) else {
        return me as u32;
    };
    if node.is_leaf() {
        return me as u32;
    }
    let (f, t, _) = node.split();
    let li = flatten(l, feats, out);
    let ri = flatten(r, feats, out);
    out[me] = Node { f: feats[f] as u32, t, l: li, r: ri, v: 0.0 };
    me as u32
}

/// Monotone map from raw score to probability (isotonic regression, pool adjacent
/// violators), interpolated linearly between block centres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Raw-score knots, increasing.
    pub x: Vec<f64>,
    /// Probability at each knot, non-decreasing.
    pub y: Vec<f64>,
}

impl Calibration {
    /// Fits on (raw score, outcome) pairs.
    pub fn fit(scores: &[f64], y: &[bool]) -> Self {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        // Blocks: (sum of x, sum of y, weight).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for i in idx {
            blocks.push((scores[i], f64::from(u8::from(y[i])), 1.0));
            while blocks.len() >= 2 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.1 / a.2 >= b.1 / b.2 {
                    blocks.pop();
                    blocks[n - 2] = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
                } else {
                    break;
                }
            }
        }
        let mut cx = Vec::with_capacity(blocks.len());
        let mut cy = Vec::with_capacity(blocks.len());
        for (sx, sy, w) in blocks {
            // Shrink each block toward the overall rate a little (small blocks are noisy).
            cx.push(sx / w);
            cy.push((sy + 0.01) / (w + 0.02));
        }
        if cx.is_empty() {
            cx.push(0.0);
            cy.push(0.0);
        }
        Calibration { x: cx, y: cy }
    }

    /// Probability for a raw score.
    pub fn apply(&self, s: f64) -> f64 {
        let n = self.x.len();
        if s <= self.x[0] {
            return self.y[0];
        }
        if s >= self.x[n - 1] {
            return self.y[n - 1];
        }
        let i = self.x.partition_point(|&v| v <= s);
        let (x0, x1, y0, y1) = (self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]);
        if x1 <= x0 { y1 } else { y0 + (y1 - y0) * (s - x0) / (x1 - x0) }
    }
}

/// Average precision (area under the precision-recall curve, step interpolation).
pub fn average_precision(scores: &[f64], y: &[bool]) -> f64 {
    let total = y.iter().filter(|&&b| b).count();
    if total == 0 {
        return 0.0;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < idx.len() {
        // Ties form one threshold.
        let s = scores[idx[i]];
        let mut new_tp = 0;
        while i < idx.len() && scores[idx[i]] == s {
            seen += 1;
            if y[idx[i]] {
                new_tp += 1;
            }
            i += 1;
        }
        tp += new_tp;
        ap += (new_tp as f64 / total as f64) * (tp as f64 / seen as f64);
    }
    ap
}

/// Mean log-loss of probabilities.
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    let n = p.len().max(1) as f64;
    p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-6, 1.0 - 1e-6);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        // Two informative features (one with a threshold effect), one noise feature.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let a: f64 = rng.random_range(0.0..1.0);
            let b: f64 = rng.random_range(0.0..1.0);
            let c: f64 = rng.random_range(0.0..1.0);
            let p = 0.05 + 0.5 * a * a + if b > 0.8 { 0.4 } else { 0.0 };
            y.push(rng.random_range(0.0..1.0) < p.min(1.0));
            x.extend([a as f32, b as f32, c as f32]);
        }
        (x, y)
    }

    #[test]
    fn both_learners_rank_and_the_calibrated_forest_matches_frequencies() {
        let (x, y) = toy(6000, 1);
        let prep = Prep::fit(&x, 3);
        let lr = Logistic::fit(&prep, &x, &y, 3, 0.1).expect("logistic");
        let rf = Forest::fit(&prep, &x, &y, 3, ForestParams { trees: 16, ..ForestParams::default() }, 7).expect("forest");
        let (xc, yc) = toy(6000, 2);
        let (xt, yt) = toy(20000, 3);
        let raw = |x: &[f32], f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
            x.chunks(3).map(|r| f(&r.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())).collect()
        };
        let rf_s = |r: &[f64]| rf.score(r, None);
        let lr_s = |r: &[f64]| lr.score(&prep, r, None);
        let ap_rf = average_precision(&raw(&xt, &rf_s), &yt);
        let ap_lr = average_precision(&raw(&xt, &lr_s), &yt);
        let base = yt.iter().filter(|&&b| b).count() as f64 / yt.len() as f64;
        assert!(ap_rf > base + 0.1 && ap_lr > base + 0.1, "ap rf {ap_rf} lr {ap_lr} base {base}");
        // The strongest feature matters more than noise (impurity importance favours
        // continuous noise over a single-threshold feature, so only this is asserted).
        assert!(rf.importance[2] < rf.importance[0], "{:?}", rf.importance);

        // Calibrate on one sample, check on another: in each decile of predicted
        // probability the observed frequency is within 0.06 of the mean prediction.
        let cal = Calibration::fit(&raw(&xc, &rf_s), &yc);
        let p: Vec<f64> = raw(&xt, &rf_s).into_iter().map(|s| cal.apply(s)).collect();
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        for chunk in idx.chunks(p.len() / 10) {
            let mp = chunk.iter().map(|&i| p[i]).sum::<f64>() / chunk.len() as f64;
            let fy = chunk.iter().filter(|&&i| yt[i]).count() as f64 / chunk.len() as f64;
            assert!((mp - fy).abs() < 0.06, "predicted {mp:.3} observed {fy:.3}");
        }
        assert!(log_loss(&p, &yt) < log_loss(&vec![base; yt.len()], &yt));
    }

    #[test]
    fn contributions_sum_to_the_score_minus_the_root() {
        let (x, y) = toy(3000, 4);
        let prep = Prep::fit(&x, 3);
        let rf = Forest::fit(&prep, &x, &y, 3, ForestParams { trees: 8, ..ForestParams::default() }, 1).expect("fit");
        let row = [0.9, 0.9, 0.1];
        let mut c = [0.0; 3];
        let s = rf.score(&row, Some(&mut c));
        let root: f64 = rf.trees.iter().map(|t| t.nodes[0].v).sum::<f64>() / rf.trees.len() as f64;
        assert!((c.iter().sum::<f64>() + root - s).abs() < 1e-9);
        assert!(c[0] > 0.0 && c[1] > 0.0, "{c:?}");
        assert_eq!(s, rf.score(&row, None));
    }

    #[test]
    fn the_packed_walk_reaches_the_leaves_of_a_plain_walk() {
        let (x, y) = toy(3000, 5);
        let prep = Prep::fit(&x, 3);
        let rf = Forest::fit(&prep, &x, &y, 3, ForestParams { trees: 7, ..ForestParams::default() }, 2).expect("fit");
        let plain = |row: &[f64], c: &mut [f64]| -> f64 {
            let mut total = 0.0;
            for t in &rf.trees {
                let mut i = 0;
                while t.nodes[i].f != u32::MAX {
                    let n = &t.nodes[i];
                    let next = if row[n.f as usize] <= n.t { n.l } else { n.r } as usize;
                    c[n.f as usize] += t.nodes[next].v - n.v;
                    i = next;
                }
                total += t.nodes[i].v;
            }
            total
        };
        for k in 0..200 {
            let a = f64::from(k) / 200.0;
            let row = [a, (a * 7.3).fract(), if k % 9 == 0 { f64::NAN } else { 1.0 - a }];
            let (mut c1, mut c2) = ([0.0; 3], [0.0; 3]);
            let s1 = plain(&row, &mut c1);
            let s2 = leaf_sum(&rf.packed, &rf.trees, &row, Some(&mut c2));
            assert_eq!(s1, s2, "row {row:?}");
            for (u, v) in c1.iter().zip(&c2) {
                assert!((u - v).abs() < 1e-12, "row {row:?}: {c1:?} vs {c2:?}");
            }
        }
    }

    #[test]
    fn average_precision_hand_cases() {
        assert!((average_precision(&[0.9, 0.8, 0.1], &[true, true, false]) - 1.0).abs() < 1e-12);
        // Ranks: F T -> precision at the positive = 1/2.
        assert!((average_precision(&[0.9, 0.8], &[false, true]) - 0.5).abs() < 1e-12);
        let c = Calibration::fit(&[0.1, 0.2, 0.3, 0.4], &[false, true, false, true]);
        assert!(c.y.windows(2).all(|w| w[0] <= w[1]));
    }
}
