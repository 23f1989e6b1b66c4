//! The dependency graph over a stack's resources: cycle detection (the error names the
//! cycle), stages of independent resources in dependency order, and dependents (the blast
//! radius of a change).

use std::collections::{BTreeMap, BTreeSet};

/// A cycle in `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle: {}", .cycle.join(" -> "))]
pub struct CycleError {
    /// The resources of the cycle, the first repeated at the end (`a -> b -> a`).
    pub cycle: Vec<String>,
}

/// A dependency graph. Edges point from a resource to what it depends on.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
    rdeps: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Builds the graph of `(id, depends_on)` pairs. Targets that are not nodes are
    /// ignored (the template parser refuses them first).
    ///
    /// # Errors
    /// [`CycleError`] naming a cycle.
    pub fn new<'a, I, D>(nodes: I) -> Result<Self, CycleError>
    where
        I: IntoIterator<Item = (&'a str, D)>,
        D: IntoIterator<Item = &'a str>,
    {
        let mut g = Graph::default();
        let mut edges = Vec::new();
        for (id, deps) in nodes {
            g.deps.entry(id.to_string()).or_default();
            g.rdeps.entry(id.to_string()).or_default();
            for d in deps {
                edges.push((id.to_string(), d.to_string()));
            }
        }
        for (from, to) in edges {
            if g.deps.contains_key(&to) {
                g.deps.entry(from.clone()).or_default().insert(to.clone());
                g.rdeps.entry(to).or_default().insert(from);
            }
        }
        if let Some(cycle) = g.find_cycle() {
            return Err(CycleError { cycle });
        }
        Ok(g)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.deps.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// What `id` depends on directly.
    pub fn dependencies(&self, id: &str) -> impl Iterator<Item = &str> {
        self.deps.get(id).into_iter().flatten().map(String::as_str)
    }

    /// Iterative DFS with colours; returns the first cycle found, in a deterministic order.
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let mut colour: BTreeMap<&str, Colour> = self.deps.keys().map(|k| (k.as_str(), Colour::White)).collect();
        for start in self.deps.keys() {
            if colour[start.as_str()] != Colour::White {
                continue;
            }
            // stack of (node, iterator position)
            let mut path: Vec<&str> = vec![start];
            let mut iters: Vec<std::collections::btree_set::Iter<'_, String>> = vec![self.deps[start].iter()];
            colour.insert(start, Colour::Grey);
            while let Some(it) = iters.last_mut() {
                match it.next() {
                    Some(next) => match colour[next.as_str()] {
                        Colour::White => {
                            colour.insert(next, Colour::Grey);
                            path.push(next);
                            iters.push(self.deps[next].iter());
                        }
                        Colour::Grey => {
                            let at = path.iter().position(|p| *p == next).unwrap_or(0);
                            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                            cycle.push(next.clone());
                            return Some(cycle);
                        }
                        Colour::Black => {}
                    },
                    None => {
                        iters.pop();
                        if let Some(done) = path.pop() {
                            colour.insert(done, Colour::Black);
                        }
                    }
                }
            }
        }
        None
    }

    /// Stages in dependency order (Kahn's layers): every resource comes after all it
    /// depends on; the resources of one stage are independent of each other. Restricted
    /// to `subset` (dependencies through resources outside it still order it).
    pub fn stages(&self, subset: &BTreeSet<String>) -> Vec<Vec<String>> {
        // Depth = longest chain of dependencies within the whole graph, so that ordering
        // through resources outside the subset is kept.
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        let mut indeg: BTreeMap<&str, usize> = self.deps.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
        let mut ready: Vec<&str> = indeg.iter().filter(|(_, d)| **d == 0).map(|(k, _)| *k).collect();
        while let Some(n) = ready.pop() {
            let d = self.deps[n].iter().map(|x| depth.get(x.as_str()).copied().unwrap_or(0) + 1).max().unwrap_or(0);
            depth.insert(n, d);
            for up in &self.rdeps[n] {
                if let Some(c) = indeg.get_mut(up.as_str()) {
                    *c -= 1;
                    if *c == 0 {
                        ready.push(up);
                    }
                }
            }
        }
        let mut by_depth: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for id in subset {
            if let Some(d) = depth.get(id.as_str()) {
                by_depth.entry(*d).or_default().push(id.clone());
            }
        }
        by_depth.into_values().collect()
    }

    /// Every resource that depends on `id`, directly or through others.
    pub fn dependents(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<&str> = vec![id];
        while let Some(n) = todo.pop() {
            for up in self.rdeps.get(n).into_iter().flatten() {
                if out.insert(up.clone()) {
                    todo.push(up);
                }
            }
        }
        out
    }

    /// Every resource that depends on one of `ids` and is not itself in `ids` (one walk
    /// from all of them).
    pub fn dependents_of<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
        let ids: BTreeSet<&str> = ids.into_iter().map(String::as_str).collect();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = ids.iter().copied().collect();
        while let Some(n) = todo.pop() {
            for up in self.rdeps.get(n).into_iter().flatten() {
                if seen.insert(up.as_str()) {
                    todo.push(up);
                }
            }
        }
        seen.into_iter().filter(|x| !ids.contains(x)).map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn g(edges: &[(&'static str, &[&'static str])]) -> Result<Graph, CycleError> {
        Graph::new(edges.iter().map(|(a, d)| (*a, d.iter().copied())))
    }

    #[test]
    fn cycle_is_named() {
        let err = g(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]).unwrap_err();
        assert_eq!(err.cycle, vec!["a", "b", "c", "a"]);
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn stages_follow_dependencies_and_group_independent_resources() {
        // app -> cache, app -> db, db -> disk, web -> app
        let gr = g(&[("web", &["app"]), ("app", &["cache", "db"]), ("db", &["disk"]), ("cache", &[]), ("disk", &[])]).unwrap();
        let all: BTreeSet<String> = ["web", "app", "cache", "db", "disk"].iter().map(|s| s.to_string()).collect();
        assert_eq!(gr.stages(&all), vec![vec!["cache", "disk"], vec!["db"], vec!["app"], vec!["web"]]);
        // A subset keeps the order through resources outside it.
        let sub: BTreeSet<String> = ["web", "disk"].iter().map(|s| s.to_string()).collect();
        assert_eq!(gr.stages(&sub), vec![vec!["disk"], vec!["web"]]);
        assert_eq!(gr.dependents("db"), ["app", "web"].iter().map(|s| s.to_string()).collect());
    }
}
