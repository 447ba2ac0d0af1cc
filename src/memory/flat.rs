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
//! neighbour's vector, and the whole loop compiled for AVX-512 or AVX2+FMA
//! when the CPU has them (the release binary is built for baseline x86-64,
//! so the kernel is picked at run time). Two things hnswlib does not do:
//! points are renumbered in breadth-first order of the base layer, so
//! neighbours sit near each other in memory, and the vector and link arrays
//! ask Linux for huge pages (fewer TLB misses when a search jumps across a
//! large array). (Thinning hnsw_rs's full 2M-link lists with hnswlib's
//! neighbour heuristic was tried: 18% fewer links, recall@10 at ef 16 fell
//! from 0.966 to 0.954 on 20k clustered vectors, no gain at equal recall.) It is rebuilt from hnsw_rs after the
//! graph changes (see `VectorIndex`), so both always describe the same graph.
//!
//! The walk through the graph reads the vectors as half floats (half the
//! memory traffic of f32, which is what a search at 100k+ points waits on;
//! the dot product moves by ~1e-5), and the final candidates are ranked again
//! on the f32 copy, so results and their distances are exact.
//!
//! Cost: a second copy of the vectors in f32 and f16 (6 bytes x dim per
//! point: 230 MB at 100k MiniLM vectors) and one pass over the graph per
//! rebuild.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use hnsw_rs::prelude::{Distance, Hnsw};

use super::index::Simd;

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

/// Ask Linux to back a large, not yet written buffer with 2 MiB pages where
/// it can (transparent huge pages are often opt-in, `madvise`): a search
/// jumps between points all over the vector array, and with 4 KiB pages
/// nearly every jump also misses the TLB. A hint only; nothing changes where
/// it is refused.
fn huge_pages<T>(buf: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_ptr() as usize;
        let end = start + buf.capacity() * std::mem::size_of::<T>();
        let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: the range lies inside the buffer's own allocation, and
            // MADV_HUGEPAGE changes no contents.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// Every point once: breadth-first over `links` from `entry`, then from each
/// point not reached yet, in id order.
fn bfs_order(links: &[Vec<u32>], entry: u32) -> Vec<u32> {
    let n = links.len();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let entry = (entry as usize).min(n.saturating_sub(1));
    for root in std::iter::once(entry).chain(0..n).take_while(|_| n > 0) {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut head = order.len();
        order.push(root as u32);
        while head < order.len() {
            let at = order[head] as usize;
            head += 1;
            for &m in &links[at] {
                if !std::mem::replace(&mut seen[m as usize], true) {
                    order.push(m);
                }
            }
        }
    }
    order
}

/// Which kernel a search is compiled for (`search_in`'s `K`).
const AVX512: u8 = 0;
const AVX2: u8 = 1;
const PORTABLE: u8 = 2;

pub struct FlatGraph {
    dim: usize,
    /// Point `i`'s vector is `vectors[i * dim..(i + 1) * dim]`.
    vectors: Vec<f32>,
    /// The same vectors as IEEE half floats, which the walk through the
    /// graph reads (half the memory traffic; the final candidates are
    /// ranked again on `vectors`). Empty without the SIMD kernels.
    halves: Vec<u16>,
    /// The caller's id (the vector slot) of each point.
    slots: Vec<u64>,
    /// Base-layer links of point `i`: `links[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// `upper[l - 1]`: links in layer `l` of the points that reach it.
    upper: Vec<HashMap<u32, Vec<u32>>>,
    entry: u32,
    /// The dot-product kernel the CPU runs (checked once).
    simd: Simd,
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
        let mut points = vec![None; n];
        let mut base: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut upper: Vec<Vec<(u32, Vec<u32>)>> = vec![Vec::new(); top];
        let mut entry = None;
        for point in pi {
            let p = point.get_point_id();
            let id = dense(p.0, p.1);
            if p.0 as usize == top && entry.is_none() {
                entry = Some(id);
            }
            for (layer, ns) in point.get_neighborhood_id().into_iter().enumerate() {
                let ids: Vec<u32> = ns.iter().map(|n| dense(n.p_id.0, n.p_id.1)).collect();
                if layer == 0 {
                    base[id as usize] = ids;
                } else if layer <= top && !ids.is_empty() {
                    upper[layer - 1].push((id, ids));
                }
            }
            points[id as usize] = Some(point);
        }
        let entry = entry.unwrap_or(0);
        // Relabel in breadth-first order of the base layer from the entry
        // point, so a point's neighbours mostly sit near it in memory and a
        // search walks a few pages instead of the whole array.
        let order = bfs_order(&base, entry);
        let mut new_id = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        let dim = points
            .iter()
            .flatten()
            .next()
            .map_or(0, |p| p.get_v().len());
        let mut vectors = Vec::with_capacity(n * dim);
        let mut slots = Vec::with_capacity(n);
        let mut offsets = Vec::with_capacity(n + 1);
        let mut links = Vec::with_capacity(base.iter().map(Vec::len).sum());
        // Before the first write, so the kernel backs them with huge pages.
        huge_pages(&vectors);
        huge_pages(&links);
        offsets.push(0u32);
        for &old in &order {
            match points[old as usize].take() {
                Some(p) => {
                    vectors.extend_from_slice(p.get_v());
                    slots.push(p.get_origin_id() as u64);
                }
                // hnsw_rs counted a point it did not hand out: keep the ids
                // dense with an unreachable zero vector.
                None => {
                    vectors.resize(vectors.len() + dim, 0.0);
                    slots.push(u64::MAX);
                }
            }
            links.extend(base[old as usize].iter().map(|&m| new_id[m as usize]));
            offsets.push(links.len() as u32);
        }
        let simd = super::index::simd();
        let mut halves = Vec::new();
        if simd != Simd::Portable {
            halves.reserve_exact(vectors.len());
            huge_pages(&halves);
            halves.extend(vectors.iter().map(|&x| super::index::f32_to_half(x)));
        }
        let upper = upper
            .into_iter()
            .map(|layer| {
                layer
                    .into_iter()
                    .map(|(id, ns)| {
                        let ns = ns.into_iter().map(|m| new_id[m as usize]).collect();
                        (new_id[id as usize], ns)
                    })
                    .collect()
            })
            .collect();
        Some(FlatGraph {
            dim,
            vectors,
            halves,
            slots,
            offsets,
            links,
            upper,
            entry: new_id[entry as usize],
            simd,
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

    /// Share of points a walk along base-layer links reaches from the entry
    /// point (1.0 when every point can be found). hnsw_rs keeps each
    /// point's nearest links when a list overflows, so on dense clusters
    /// the long links between clusters go and some points become
    /// unreachable; `scripts/bench-memory` reports this beside recall.
    pub fn reachable_share(&self) -> f64 {
        let n = self.slots.len();
        if n == 0 {
            return 1.0;
        }
        let mut seen = vec![false; n];
        let mut stack = vec![self.entry];
        seen[self.entry as usize] = true;
        let mut reached = 1usize;
        while let Some(at) = stack.pop() {
            let ns = &self.links
                [self.offsets[at as usize] as usize..self.offsets[at as usize + 1] as usize];
            for &m in ns {
                if !std::mem::replace(&mut seen[m as usize], true) {
                    reached += 1;
                    stack.push(m);
                }
            }
        }
        reached as f64 / n as f64
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
        let ef = ef.max(k);
        let found = match self.simd {
            // SAFETY: `simd` says the CPU has these features.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { self.search_avx512(&mut scratch, query, k, ef, keep) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { self.search_avx2(&mut scratch, query, k, ef, keep) },
            _ => self.search_in::<PORTABLE>(&mut scratch, query, k, ef, keep),
        };
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(scratch);
        found
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn search_avx512(
        &self,
        scratch: &mut Scratch,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        self.search_in::<AVX512>(scratch, query, k, ef, keep)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn search_avx2(
        &self,
        scratch: &mut Scratch,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        self.search_in::<AVX2>(scratch, query, k, ef, keep)
    }

    #[inline(always)]
    fn vector(&self, id: u32) -> &[f32] {
        let at = id as usize * self.dim;
        &self.vectors[at..at + self.dim]
    }

    /// Cosine distance with the kernel `K` names; only called from the
    /// search compiled for that kernel's features.
    #[inline(always)]
    fn distance<const K: u8>(&self, query: &[f32], id: u32) -> f32 {
        let v = self.vector(id);
        // SAFETY: `search` picks `K` from what `simd` found on this CPU.
        let dot = match K {
            #[cfg(target_arch = "x86_64")]
            AVX512 => unsafe { super::index::dot_avx512(query, v) },
            #[cfg(target_arch = "x86_64")]
            AVX2 => unsafe { super::index::dot_avx2(query, v) },
            _ => super::index::dot_lanes(query, v),
        };
        (1.0 - dot).max(0.0)
    }

    /// The distance the walk through the graph uses: on the half floats
    /// with the SIMD kernels (within ~1e-5 of `distance`), else `distance`.
    #[inline(always)]
    fn walk_distance<const K: u8>(&self, query: &[f32], id: u32) -> f32 {
        let at = id as usize * self.dim;
        // SAFETY: `search` picks `K` from what `simd` found on this CPU, and
        // `halves` is filled whenever that is not PORTABLE.
        let dot = match K {
            #[cfg(target_arch = "x86_64")]
            AVX512 => unsafe {
                super::index::dot_f16_avx512(query, &self.halves[at..at + self.dim])
            },
            #[cfg(target_arch = "x86_64")]
            AVX2 => unsafe { super::index::dot_f16_avx2(query, &self.halves[at..at + self.dim]) },
            _ => return self.distance::<K>(query, id),
        };
        (1.0 - dot).max(0.0)
    }

    /// Start loading the vector the walk reads next (its first 128 bytes;
    /// the hardware prefetcher follows the rest).
    #[inline(always)]
    fn prefetch<const K: u8>(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p = if K == PORTABLE {
                self.vectors.as_ptr().wrapping_add(id as usize * self.dim) as *const i8
            } else {
                self.halves.as_ptr().wrapping_add(id as usize * self.dim) as *const i8
            };
            // SAFETY: a prefetch is a hint; it never faults, even out of range.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
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
    fn search_in<const K: u8>(
        &self,
        s: &mut Scratch,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let mut at = self.entry;
        let mut best = self.walk_distance::<K>(query, at);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                if let Some(ns) = layer.get(&at) {
                    for &n in ns {
                        let d = self.walk_distance::<K>(query, n);
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
                self.prefetch::<K>(first);
            }
            for (i, &n) in ns.iter().enumerate() {
                if let Some(&next) = ns.get(i + 1) {
                    self.prefetch::<K>(next);
                }
                if s.marks[n as usize] == epoch {
                    continue;
                }
                s.marks[n as usize] = epoch;
                let dn = self.walk_distance::<K>(query, n);
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
        if K != PORTABLE {
            // Rank the candidates on the full-precision vectors.
            for Near(d, id) in &mut out {
                *d = self.distance::<K>(query, *id);
            }
        }
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
        let reach = flat.reachable_share();
        assert!(reach > 0.99 && reach <= 1.0, "reachable {reach}");
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
    fn breadth_first_order_lists_every_point_once_from_the_entry() {
        // 0 -> 1 -> 2, 3 unreachable from 0 but links to 1; entry 2.
        let links = vec![vec![1], vec![2, 0], vec![1], vec![1]];
        assert_eq!(bfs_order(&links, 2), vec![2, 1, 0, 3]);
        assert_eq!(bfs_order(&[], 0), Vec::<u32>::new());
    }

    #[test]
    fn an_empty_graph_has_no_copy() {
        let hnsw: Hnsw<f32, UnitCosine> = Hnsw::new(16, 10, 16, 100, UnitCosine);
        assert!(FlatGraph::of(&hnsw).is_none());
    }
}
