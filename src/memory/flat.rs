//! A read-only, flat copy of the HNSW graph that searches are answered from.
//!
//! hnsw_rs builds, grows and persists the graph; its own search walks
//! `Arc<Point>`s behind read locks, records visited points in a fresh
//! `HashMap` holding `Arc` clones and allocates an `Arc` per candidate, and
//! with a filter it keeps exploring past the point where an unfiltered search
//! stops. Together that made twin's queries 25-50x slower than hnswlib's over
//! the same graph shape. This copy lays the same graph out as hnswlib does:
//! vectors in one contiguous array, base-layer links as one compressed
//! adjacency array of dense `u32` ids, the few upper-layer nodes in small maps,
//! a reusable visited list per searching thread, prefetching of the next
//! neighbour's vector, and the whole loop compiled for AVX2+FMA when the CPU
//! has them. (Thinning hnsw_rs's full 2M-link lists with hnswlib's
//! neighbour heuristic was tried: 18% fewer links, recall@10 at ef 16 fell
//! from 0.966 to 0.954 on 20k clustered vectors, no gain at equal recall.) It is rebuilt from hnsw_rs after the
//! graph changes (see `VectorIndex`), so both always describe the same graph.
//!
//! Cost: a second copy of the vectors (4 bytes x dim per point: 150 MB at 100k
//! MiniLM vectors) and one pass over the graph per rebuild.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use hnsw_rs::prelude::{Distance, Hnsw};

/// A distance that orders totally (NaN never occurs for unit vectors).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Per-search working memory, kept between searches (hnswlib's visited-list
/// pool): a visited mark per point that a new epoch clears in O(1), and the
/// two heaps.
struct Scratch {
    marks: Vec<u16>,
    epoch: u16,
    candidates: BinaryHeap<Reverse<Near>>,
    results: BinaryHeap<Near>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            marks: vec![0; n],
            epoch: 0,
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
        }
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }
}

pub struct FlatGraph {
    dim: usize,
    /// Point `i`'s vector is `vectors[i * dim..(i + 1) * dim]`.
    vectors: Vec<f32>,
    /// The caller's id (the vector slot) of each point.
    slots: Vec<u64>,
    /// Base-layer links of point `i`: `links[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// `upper[l - 1]`: links in layer `l` of the points that reach it.
    upper: Vec<HashMap<u32, Vec<u32>>>,
    entry: u32,
    /// The CPU has AVX2+FMA (checked once).
    avx2: bool,
    scratch: Mutex<Vec<Scratch>>,
}

impl FlatGraph {
    /// Copy the graph out of hnsw_rs; `None` for an empty graph.
    pub fn of<D: Distance<f32> + Send + Sync>(hnsw: &Hnsw<'_, f32, D>) -> Option<FlatGraph> {
        let pi = hnsw.get_point_indexation();
        if pi.get_nb_point() == 0 {
            return None;
        }
        let top = pi.get_max_level_observed() as usize;
        // Dense ids: layer by layer, in each layer's own order.
        let mut start = vec![0usize; top + 2];
        for l in 0..=top {
            start[l + 1] = start[l] + pi.get_layer_nb_point(l);
        }
        let n = start[top + 1];
        let dense = |layer: u8, index: i32| (start[layer as usize] + index as usize) as u32;
        let mut dim = 0;
        let mut vectors = Vec::new();
        let mut slots = vec![0u64; n];
        let mut base: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut upper: Vec<HashMap<u32, Vec<u32>>> = vec![HashMap::new(); top];
        let mut entry = None;
        for point in pi {
            let p = point.get_point_id();
            let id = dense(p.0, p.1);
            let v = point.get_v();
            if vectors.is_empty() {
                dim = v.len();
                vectors = vec![0f32; n * dim];
            }
            vectors[id as usize * dim..(id as usize + 1) * dim].copy_from_slice(v);
            slots[id as usize] = point.get_origin_id() as u64;
            if p.0 as usize == top && entry.is_none() {
                entry = Some(id);
            }
            for (layer, ns) in point.get_neighborhood_id().into_iter().enumerate() {
                let ids: Vec<u32> = ns.iter().map(|n| dense(n.p_id.0, n.p_id.1)).collect();
                if layer == 0 {
                    base[id as usize] = ids;
                } else if layer <= top && !ids.is_empty() {
                    upper[layer - 1].insert(id, ids);
                }
            }
        }
        let mut offsets = Vec::with_capacity(n + 1);
        let mut links = Vec::with_capacity(base.iter().map(Vec::len).sum());
        offsets.push(0u32);
        for ns in base {
            links.extend_from_slice(&ns);
            offsets.push(links.len() as u32);
        }
        Some(FlatGraph {
            dim,
            vectors,
            slots,
            offsets,
            links,
            upper,
            entry: entry.unwrap_or(0),
            avx2: super::index::has_avx2(),
            scratch: Mutex::new(Vec::new()),
        })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Mean base-layer links per point (what each expansion costs).
    pub fn mean_links(&self) -> f64 {
        self.links.len() as f64 / self.slots.len().max(1) as f64
    }

    /// The `k` nearest points kept by `keep` (every point when `None`), as
    /// (slot, cosine distance) nearest first. `ef` is the search beam.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        if self.slots.is_empty() || k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Scratch::new(self.slots.len()));
        #[cfg(target_arch = "x86_64")]
        let found = if self.avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe { self.search_avx2(&mut scratch, query, k, ef.max(k), keep) }
        } else {
            self.search_in(&mut scratch, query, k, ef.max(k), keep)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let found = self.search_in(&mut scratch, query, k, ef.max(k), keep);
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(scratch);
        found
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn search_avx2(
        &self,
        scratch: &mut Scratch,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        self.search_in(scratch, query, k, ef, keep)
    }

    #[inline(always)]
    fn vector(&self, id: u32) -> &[f32] {
        let at = id as usize * self.dim;
        &self.vectors[at..at + self.dim]
    }

    #[inline(always)]
    fn distance(&self, query: &[f32], id: u32) -> f32 {
        let v = self.vector(id);
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` says the CPU has AVX2 and FMA.
            return (1.0 - unsafe { super::index::dot_avx2(query, v) }).max(0.0);
        }
        (1.0 - super::index::dot_lanes(query, v)).max(0.0)
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p = self.vectors.as_ptr().wrapping_add(id as usize * self.dim);
            // SAFETY: a prefetch is a hint; it never faults, even out of range.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16) as *const i8);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// Greedy descent through the upper layers, then the beam search of the
    /// base layer (Malkov and Yashunin's algorithms 5 and 2, with hnswlib's
    /// filtered stopping rule: keep walking while fewer than `ef` kept points
    /// are found).
    #[inline(always)]
    fn search_in(
        &self,
        s: &mut Scratch,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let mut at = self.entry;
        let mut best = self.distance(query, at);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                if let Some(ns) = layer.get(&at) {
                    for &n in ns {
                        let d = self.distance(query, n);
                        if d < best {
                            best = d;
                            at = n;
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }

        s.next_epoch();
        let epoch = s.epoch;
        let kept = |id: u32| keep.is_none_or(|f| f(self.slots[id as usize]));
        s.marks[at as usize] = epoch;
        s.candidates.push(Reverse(Near(best, at)));
        let mut bound = f32::INFINITY;
        if kept(at) {
            s.results.push(Near(best, at));
            bound = best;
        }
        while let Some(Reverse(Near(d, c))) = s.candidates.pop() {
            if d > bound && s.results.len() >= ef {
                break;
            }
            let ns = &self.links
                [self.offsets[c as usize] as usize..self.offsets[c as usize + 1] as usize];
            if let Some(&first) = ns.first() {
                self.prefetch(first);
            }
            for (i, &n) in ns.iter().enumerate() {
                if let Some(&next) = ns.get(i + 1) {
                    self.prefetch(next);
                }
                if s.marks[n as usize] == epoch {
                    continue;
                }
                s.marks[n as usize] = epoch;
                let dn = self.distance(query, n);
                if s.results.len() < ef || dn < bound {
                    s.candidates.push(Reverse(Near(dn, n)));
                    if kept(n) {
                        s.results.push(Near(dn, n));
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                        bound = s.results.peek().map_or(f32::INFINITY, |w| w.0);
                    }
                }
            }
        }
        let mut out: Vec<Near> = s.results.drain().collect();
        out.sort_unstable();
        out.truncate(k);
        out.into_iter()
            .map(|Near(d, id)| (self.slots[id as usize], d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::index::UnitCosine;

    fn unit(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dim)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                crate::memory::embed::normalize(&mut v);
                v
            })
            .collect()
    }

    fn exact(base: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut all: Vec<(f32, u64)> = base
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i as u64 + 1000))
            .map(|(i, v)| (1.0 - crate::memory::embed::dot(q, v), i as u64 + 1000))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|(_, s)| s).collect()
    }

    #[test]
    fn same_graph_answers_like_brute_force_with_and_without_a_filter() {
        let base = unit(3000, 48, 5);
        let queries = unit(50, 48, 9);
        let hnsw: Hnsw<f32, UnitCosine> = Hnsw::new(16, 3000, 16, 100, UnitCosine);
        let data: Vec<(&[f32], usize)> = base
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i + 1000))
            .collect();
        hnsw.parallel_insert_slice(&data);
        let flat = FlatGraph::of(&hnsw).unwrap();
        assert_eq!(flat.len(), 3000);
        let (mut hits, mut hits_even, mut total) = (0, 0, 0);
        for q in &queries {
            let found: Vec<u64> = flat.search(q, 10, 64, None).iter().map(|h| h.0).collect();
            let truth = exact(&base, q, 10, |_| true);
            hits += found.iter().filter(|s| truth.contains(s)).count();
            let even = |s: u64| s.is_multiple_of(2);
            let found: Vec<(u64, f32)> = flat.search(q, 10, 64, Some(&even));
            assert!(found.iter().all(|(s, _)| s.is_multiple_of(2)));
            assert!(found.windows(2).all(|w| w[0].1 <= w[1].1));
            let truth = exact(&base, q, 10, even);
            hits_even += found.iter().filter(|(s, _)| truth.contains(s)).count();
            total += 10;
        }
        assert!(hits as f64 / total as f64 > 0.9, "recall {hits}/{total}");
        assert!(
            hits_even as f64 / total as f64 > 0.9,
            "filtered recall {hits_even}/{total}"
        );
        // A point finds itself at distance ~0, and a filter that keeps nothing
        // finds nothing.
        let me = flat.search(&base[17], 1, 32, None);
        assert_eq!(me[0].0, 1017);
        assert!(me[0].1 < 1e-4);
        assert!(flat.search(&base[17], 5, 32, Some(&|_| false)).is_empty());
    }

    #[test]
    fn an_empty_graph_has_no_copy() {
        let hnsw: Hnsw<f32, UnitCosine> = Hnsw::new(16, 10, 16, 100, UnitCosine);
        assert!(FlatGraph::of(&hnsw).is_none());
    }
}
