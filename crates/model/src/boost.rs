//! Gradient-boosted trees for the logistic loss, histogram-based (the method of
//! LightGBM and scikit-learn's `HistGradientBoostingClassifier`).
//!
//! linfa has no boosting, so this is the one learner written here. Each feature is cut
//! into at most [`BoostParams::bins`] quantile bins once; every round fits a depth-limited
//! tree to the gradient and Hessian of the log-loss from per-node histograms (the larger
//! child's histogram is its parent's minus the smaller child's), on a seeded share of the
//! rows. Fitting is parallel over features with rayon and deterministic for a seed.
//!
//! The fitted model is a plain value: a base log-odds and flattened [`Tree`]s whose node
//! values are the node's own (shrunken) Newton step, so a row's path gives per-feature
//! contributions the same way as the forest's.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::learn::{LearnError, Node, PackedCache, Prep, Tree, leaf_sum};

/// Boosting settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostParams {
    /// Boosting rounds (one tree each).
    pub rounds: usize,
    /// Shrinkage of every tree's output.
    pub learning_rate: f64,
    /// Depth limit of each tree.
    pub max_depth: usize,
    /// Fewest sampled rows in a leaf.
    pub min_leaf: usize,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Most bins per feature (≤ 256).
    pub bins: usize,
    /// Share of rows drawn (without replacement) for each round's tree.
    pub row_share: f64,
}

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams { rounds: 120, learning_rate: 0.1, max_depth: 4, min_leaf: 40, lambda: 1.0, bins: 64, row_share: 0.5 }
    }
}

/// A fitted boosted model: `P(failure) = σ(base + Σ tree leaf values)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boosted {
    /// Log-odds of the training base rate.
    pub base: f64,
    /// Trees; a node's `v` is its shrunken Newton step (a leaf's is its output).
    pub trees: Vec<Tree>,
    /// Split-gain importance per feature (sums to 1).
    pub importance: Vec<f64>,
    #[serde(skip)]
    pub(crate) packed: PackedCache,
}

/// Per-bin sums of gradient, Hessian and row count, `bins` entries per feature.
type Hist = Vec<[f64; 3]>;

struct Grower<'a> {
    binned: &'a [Vec<u8>],
    edges: &'a [Vec<f32>],
    nb: usize,
    g: &'a [f64],
    h: &'a [f64],
    p: BoostParams,
    gain: Vec<f64>,
    nodes: Vec<Node>,
    /// Split bin per node (`u8::MAX` for leaves), to route rows by their bins.
    split_bin: Vec<u8>,
}

impl Grower<'_> {
    fn hist(&self, rows: &[u32]) -> Hist {
        let nb = self.nb;
        let parts: Vec<Vec<[f64; 3]>> = self
            .binned
            .par_iter()
            .map(|col| {
                let mut acc = vec![[0.0f64; 3]; nb];
                for &r in rows {
                    let r = r as usize;
                    let a = &mut acc[usize::from(col[r])];
                    a[0] += self.g[r];
                    a[1] += self.h[r];
                    a[2] += 1.0;
                }
                acc
            })
            .collect();
        parts.concat()
    }

    fn value(&self, g: f64, h: f64) -> f64 {
        -self.p.learning_rate * g / (h + self.p.lambda)
    }

    /// Best split of a node as (gain, feature, bin), if any clears the leaf-size limit.
    fn best_split(&self, hist: &Hist, tot: [f64; 3]) -> Option<(f64, usize, usize)> {
        let (nb, lambda, min_leaf) = (self.nb, self.p.lambda, self.p.min_leaf.max(1) as f64);
        let parent = tot[0] * tot[0] / (tot[1] + lambda);
        let per: Vec<Option<(f64, usize, usize)>> = (0..self.binned.len())
            .into_par_iter()
            .map(|j| {
                let mut best: Option<(f64, usize, usize)> = None;
                let (mut gl, mut hl, mut cl) = (0.0, 0.0, 0.0);
                for b in 0..self.edges[j].len().min(nb - 1) {
                    let a = hist[j * nb + b];
                    gl += a[0];
                    hl += a[1];
                    cl += a[2];
                    if cl < min_leaf {
                        continue;
                    }
                    if tot[2] - cl < min_leaf {
                        break;
                    }
                    let (gr, hr) = (tot[0] - gl, tot[1] - hl);
                    let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                    if gain > best.map_or(1e-9, |x| x.0) {
                        best = Some((gain, j, b));
                    }
                }
                best
            })
            .collect();
        // The first feature wins ties, whatever the thread schedule.
        per.into_iter().flatten().fold(None, |acc: Option<(f64, usize, usize)>, x| match acc {
            Some(a) if a.0 >= x.0 => Some(a),
            _ => Some(x),
        })
    }

    fn grow(&mut self, rows: Vec<u32>, hist: Hist, depth: usize) -> u32 {
        let mut tot = [0.0f64; 3];
        for a in &hist[..self.nb] {
            tot[0] += a[0];
            tot[1] += a[1];
            tot[2] += a[2];
        }
        let me = self.nodes.len();
        self.nodes.push(Node { f: u32::MAX, t: 0.0, l: 0, r: 0, v: self.value(tot[0], tot[1]) });
        self.split_bin.push(u8::MAX);
        if depth >= self.p.max_depth {
            return me as u32;
        }
        let Some((gain, j, b)) = self.best_split(&hist, tot) else {
            return me as u32;
        };
        self.gain[j] += gain;
        let col = &self.binned[j];
        let (left, right): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| usize::from(col[r as usize]) <= b);
        drop(rows);
        let (small_is_left, small) = if left.len() <= right.len() { (true, &left) } else { (false, &right) };
        let small_hist = self.hist(small);
        let big_hist: Hist = hist.iter().zip(&small_hist).map(|(p, s)| [p[0] - s[0], p[1] - s[1], p[2] - s[2]]).collect();
        drop(hist);
        let (lh, rh) = if small_is_left { (small_hist, big_hist) } else { (big_hist, small_hist) };
        let l = self.grow(left, lh, depth + 1);
        let r = self.grow(right, rh, depth + 1);
        self.nodes[me] = Node { f: j as u32, t: f64::from(self.edges[j][b]), l, r, v: self.nodes[me].v };
        self.split_bin[me] = b as u8;
        me as u32
    }
}

/// At most `bins - 1` cut points: distinct quantiles of (a sample of) the column.
fn bin_edges(col: &[f32], bins: usize) -> Vec<f32> {
    let stride = (col.len() / 50_000).max(1);
    let mut s: Vec<f32> = col.iter().step_by(stride).copied().collect();
    s.sort_unstable_by(f32::total_cmp);
    let mut edges: Vec<f32> = Vec::with_capacity(bins);
    if s.is_empty() {
        return edges;
    }
    for i in 1..bins {
        let v = s[(i * s.len() / bins).min(s.len() - 1)];
        if edges.last().is_none_or(|&e| v > e) && v < s[s.len() - 1] {
            edges.push(v);
        }
    }
    edges
}

impl Boosted {
    /// Fits `p.rounds` trees to row-major `x` (`k` columns; NaN imputed with `prep.fill`).
    ///
    /// # Errors
    /// Both classes are needed, and the settings must make sense.
    pub fn fit(prep: &Prep, x: &[f32], y: &[bool], k: usize, p: BoostParams, seed: u64) -> Result<Self, LearnError> {
        let bad = |m: &str| LearnError::Fit { learner: "boosted_trees", message: m.to_string() };
        let n = y.len();
        let npos = y.iter().filter(|&&v| v).count();
        if npos == 0 || npos == n {
            return Err(bad("needs rows of both classes"));
        }
        if !(2..=256).contains(&p.bins) || p.max_depth == 0 || !(p.row_share > 0.0 && p.row_share <= 1.0) || p.learning_rate <= 0.0 {
            return Err(bad("bins must be in 2..=256, depth at least 1, row share in (0, 1], learning rate positive"));
        }
        if x.len() != n * k || prep.fill.len() != k {
            return Err(bad("rows and columns do not match"));
        }
        let (binned, edges): (Vec<Vec<u8>>, Vec<Vec<f32>>) = (0..k)
            .into_par_iter()
            .map(|j| {
                let fill = prep.fill[j] as f32;
                let col: Vec<f32> = (0..n).map(|i| x[i * k + j]).map(|v| if v.is_finite() { v } else { fill }).collect();
                let e = bin_edges(&col, p.bins);
                let b = col.iter().map(|&v| e.partition_point(|&t| t < v) as u8).collect();
                (b, e)
            })
            .unzip();
        let nb = p.bins;
        let rate = npos as f64 / n as f64;
        let base = (rate / (1.0 - rate)).ln();
        let mut f = vec![base; n];
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n];
        let mut trees = Vec::with_capacity(p.rounds);
        let mut gain = vec![0.0; k];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..p.rounds {
            for i in 0..n {
                let q = 1.0 / (1.0 + (-f[i]).exp());
                g[i] = q - f64::from(u8::from(y[i]));
                h[i] = (q * (1.0 - q)).max(1e-6);
            }
            let rows: Vec<u32> = (0..n as u32).filter(|_| p.row_share >= 1.0 || rng.random::<f64>() < p.row_share).collect();
            let mut gr = Grower {
                binned: &binned,
                edges: &edges,
                nb,
                g: &g,
                h: &h,
                p,
                gain: vec![0.0; k],
                nodes: Vec::new(),
                split_bin: Vec::new(),
            };
            let root = gr.hist(&rows);
            gr.grow(rows, root, 0);
            // Every row moves by its leaf's value, routed by bins (the same path as `x <= t`).
            let (nodes, split_bin) = (gr.nodes, gr.split_bin);
            for (a, b) in gain.iter_mut().zip(&gr.gain) {
                *a += b;
            }
            f.par_iter_mut().enumerate().for_each(|(i, fi)| {
                let mut at = 0usize;
                loop {
                    let nd = &nodes[at];
                    if nd.f == u32::MAX {
                        *fi += nd.v;
                        break;
                    }
                    at = if binned[nd.f as usize][i] <= split_bin[at] { nd.l as usize } else { nd.r as usize };
                }
            });
            trees.push(Tree { nodes });
        }
        let total: f64 = gain.iter().sum();
        if total > 0.0 {
            for v in &mut gain {
                *v /= total;
            }
        }
        Ok(Boosted { base, trees, importance: gain, packed: PackedCache::default() })
    }

    /// Probability of failure for an imputed row; per-feature log-odds contributions along
    /// each tree's path into `contrib` if given.
    pub fn score(&self, row: &[f64], contrib: Option<&mut [f64]>) -> f64 {
        let z = match contrib {
            Some(c) => {
                c.fill(0.0);
                self.base + leaf_sum(&self.packed, &self.trees, row, Some(c))
            }
            None => self.base + leaf_sum(&self.packed, &self.trees, row, None),
        };
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::average_precision;

    /// Failure needs two things at once (an interaction a linear model cannot express).
    fn interaction(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b, c): (f32, f32, f32) = (rng.random(), rng.random(), rng.random());
            x.extend([a, b, c]);
            let p = if a > 0.7 && b > 0.6 { 0.9 } else { 0.05 };
            y.push(rng.random::<f64>() < p);
        }
        (x, y)
    }

    #[test]
    fn boosting_learns_an_interaction_and_is_deterministic() {
        let (x, y) = interaction(6000, 1);
        let prep = Prep::fit(&x, 3);
        let m = Boosted::fit(&prep, &x, &y, 3, BoostParams::default(), 7).expect("fit");
        assert_eq!(m, Boosted::fit(&prep, &x, &y, 3, BoostParams::default(), 7).expect("fit"));
        let (xt, yt) = interaction(3000, 2);
        let s: Vec<f64> = xt.chunks(3).map(|r| m.score(&[f64::from(r[0]), f64::from(r[1]), f64::from(r[2])], None)).collect();
        // As good as ranking by the true probability (the base rate is about 0.15).
        let truth: Vec<f64> = xt.chunks(3).map(|r| if r[0] > 0.7 && r[1] > 0.6 { 0.9 } else { 0.05 }).collect();
        let (ap, best) = (average_precision(&s, &yt), average_precision(&truth, &yt));
        assert!(ap > best - 0.03 && best > 0.6, "{ap} vs {best}");
        let inside = m.score(&[0.9, 0.9, 0.5], None);
        let outside = m.score(&[0.9, 0.2, 0.5], None);
        assert!(inside > 0.7 && outside < 0.2, "{inside} {outside}");
        // The noise column earns far less importance than either signal.
        assert!(m.importance[2] * 3.0 < m.importance[0].min(m.importance[1]), "{:?}", m.importance);
    }

    #[test]
    fn contributions_add_up_to_the_log_odds() {
        let (x, y) = interaction(3000, 3);
        let prep = Prep::fit(&x, 3);
        let m = Boosted::fit(&prep, &x, &y, 3, BoostParams { rounds: 30, ..BoostParams::default() }, 1).expect("fit");
        let row = [0.95, 0.8, 0.1];
        let mut c = [0.0; 3];
        let p = m.score(&row, Some(&mut c));
        assert!((p - m.score(&row, None)).abs() < 1e-12);
        let roots: f64 = m.trees.iter().map(|t| t.nodes[0].v).sum();
        let z = m.base + roots + c.iter().sum::<f64>();
        assert!((1.0 / (1.0 + (-z).exp()) - p).abs() < 1e-9);
        assert!(c[0] > 0.0 && c[1] > 0.0, "{c:?}");
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let prep = Prep::fit(&[0.0, 1.0], 1);
        let e = Boosted::fit(&prep, &[0.0, 1.0], &[false, false], 1, BoostParams::default(), 1).expect_err("refused");
        assert!(e.to_string().contains("both classes"), "{e}");
        let e =
            Boosted::fit(&prep, &[0.0, 1.0], &[false, true], 1, BoostParams { bins: 1, ..BoostParams::default() }, 1).expect_err("refused");
        assert!(e.to_string().contains("bins"), "{e}");
        // NaN features are imputed, not propagated.
        let x = [f32::NAN, 1.0, 0.0, f32::NAN, 1.0, 0.0];
        let prep = Prep::fit(&x, 1);
        let m =
            Boosted::fit(&prep, &x, &[true, true, false, false, true, false], 1, BoostParams { min_leaf: 1, ..BoostParams::default() }, 1)
                .expect("fit");
        assert!(m.score(&[prep.fill[0]], None).is_finite());
    }
}
