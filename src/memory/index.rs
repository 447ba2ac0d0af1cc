//! The approximate-nearest-neighbour index over memory vectors: hnsw_rs with a
//! dot-product distance (vectors are unit length, so it is cosine). Our own
//! distance, because anndists' `DistDot` asserts `dot <= 1` and a vector's
//! rounding against itself can exceed it.
//!
//! The `vectors` tree is the truth; this index is a cache of it, persisted
//! beside the store as hnsw_rs's two dump files plus a small sidecar
//! (`vectors.json`) that names the generation, the embedding model, how many
//! vector slots the dump covers, and checksums of both files. On open the dump
//! is used only when every one of those agrees; slots written after the dump
//! are inserted on top; anything else (missing, stale, corrupt, another
//! model) rebuilds from the `vectors` tree. Deleted vectors are tombstones
//! (filtered out of every search) until they pass a share of the index, then
//! the index is rebuilt without them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hnsw_rs::prelude::{Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use super::flat::FlatGraph;

/// Links per node (hnswlib's M) and the construction beam.
/// Public so `scripts/bench-memory` runs its peer at the same settings.
/// Not lower: when a point's link list is full, hnsw_rs keeps its nearest
/// links and drops the farthest (hnswlib re-selects the list for spread), so
/// where lists fill up, dense clusters lose the links between them and
/// recall falls far below hnswlib's at the same M (BENCHMARKS.md, memory,
/// branch s5-mem: M=12 and 16). At 24 the base-layer lists stay about half
/// full and the graph is as good as hnswlib's.
pub const MAX_CONN: usize = 24;
pub const EF_CONSTRUCTION: usize = 200;
const MAX_LAYER: usize = 16;
const BASENAME: &str = "vectors";

/// 1 - dot for unit vectors, clamped at 0; AVX2+FMA when the CPU has it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - fast_dot(a, b)).max(0.0)
    }
}

/// Dot product in 32 lanes (four independent 8-wide sums), the portable
/// fallback for CPUs without AVX2+FMA.
pub(crate) fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 32;
    let mut acc = [0f32; LANES];
    let (ca, ra) = a.as_chunks::<LANES>();
    let (cb, rb) = b.as_chunks::<LANES>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

/// Dot product with AVX2 FMAs in four independent 8-wide sums (LLVM does
/// not vectorise the portable loop this way by itself: the profile showed it
/// two floats at a time). Inlines into callers compiled for AVX2+FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 8 <= n` and both slices hold at least `n` floats.
    while i + 32 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                )
            };
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(quad, _mm_shuffle_ps::<0b01>(quad, quad));
    let mut s = _mm_cvtss_f32(one);
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

/// Dot product with AVX-512 FMAs in four independent 16-wide sums: half
/// the instructions of `dot_avx2` per vector (hnswlib's wheel, built with
/// `-march=native`, uses these where the CPU has them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(crate) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 16 <= n` and both slices hold at least `n` floats.
    while i + 64 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                )
            };
            *s = _mm512_fmadd_ps(x, y, *s);
        }
        i += 64;
    }
    while i + 16 <= n {
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut s = _mm512_reduce_add_ps(sum);
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

/// Dot product of an f32 query with a vector stored as IEEE half floats
/// (`to_halves`), AVX2+FMA+F16C, four independent 8-wide sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn dot_f16_avx2(a: &[f32], h: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(h.len());
    let (pa, ph) = (a.as_ptr(), h.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 8 <= n` and both slices hold at least `n` values.
    while i + 32 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_cvtph_ps(_mm_loadu_si128(ph.add(i + 8 * j) as *const __m128i)),
                )
            };
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        let (x, y) = unsafe {
            (
                _mm256_loadu_ps(pa.add(i)),
                _mm256_cvtph_ps(_mm_loadu_si128(ph.add(i) as *const __m128i)),
            )
        };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(quad, _mm_shuffle_ps::<0b01>(quad, quad));
    let mut s = _mm_cvtss_f32(one);
    while i < n {
        s += a[i] * half_to_f32(h[i]);
        i += 1;
    }
    s
}

/// `dot_f16_avx2` with AVX-512 (16 halves per conversion).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[inline]
pub(crate) fn dot_f16_avx512(a: &[f32], h: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(h.len());
    let (pa, ph) = (a.as_ptr(), h.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads): `i + 16 <= n` and both slices hold at least `n` values.
    while i + 64 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_cvtph_ps(_mm256_loadu_si256(ph.add(i + 16 * j) as *const __m256i)),
                )
            };
            *s = _mm512_fmadd_ps(x, y, *s);
        }
        i += 64;
    }
    while i + 16 <= n {
        let (x, y) = unsafe {
            (
                _mm512_loadu_ps(pa.add(i)),
                _mm512_cvtph_ps(_mm256_loadu_si256(ph.add(i) as *const __m256i)),
            )
        };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut s = _mm512_reduce_add_ps(sum);
    while i < n {
        s += a[i] * half_to_f32(h[i]);
        i += 1;
    }
    s
}

/// f32 to IEEE half (round to nearest even; overflow to infinity). Unit
/// vectors' components lie in [-1, 1], where a half keeps 11 significant
/// bits: a dot product of 384-d unit vectors moves by about 1e-5.
pub(crate) fn f32_to_half(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        // Infinity stays infinity; NaN stays a (quiet) NaN.
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): shift the mantissa with its hidden bit.
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut h = m >> shift;
        if rest > half || (rest == half && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let mut h = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        // A carry into the exponent is the correct rounding (up to infinity).
        h += 1;
    }
    sign | h as u16
}

/// IEEE half to f32 (exact).
pub(crate) fn half_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    if exp == 0 {
        // Zero or subnormal: man * 2^-24.
        let v = man as f32 / 16_777_216.0;
        return if sign != 0 { -v } else { v };
    }
    if exp == 0x1f {
        return f32::from_bits(sign | 0x7f80_0000 | (man << 13));
    }
    f32::from_bits(sign | ((exp + 127 - 15) << 23) | (man << 13))
}

/// The widest dot-product kernel this CPU runs (checked once per call of
/// `simd`; the standard library caches the CPUID answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    Avx512,
    Avx2,
    Portable,
}

pub(crate) fn simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            return Simd::Avx2;
        }
    }
    Simd::Portable
}

/// Whether `dot_avx2` may run here.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // F16C comes with every AVX2 CPU; required too, for the half-float
        // kernels of the search copy.
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

pub fn fast_dot(a: &[f32], b: &[f32]) -> f32 {
    match simd() {
        // SAFETY: `simd` says the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { dot_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { dot_avx2(a, b) },
        _ => dot_lanes(a, b),
    }
}

/// What the sidecar file records about a dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpInfo {
    pub generation: u64,
    pub model: String,
    pub dim: usize,
    /// Slots `0..covered` were in the index when it was dumped.
    pub covered: u64,
    pub points: usize,
    pub graph_hash: u64,
    pub data_hash: u64,
}

pub struct VectorIndex {
    hnsw: Hnsw<'static, f32, UnitCosine>,
    dim: usize,
    points: usize,
    /// The flat copy searches run on; dropped by every insert and made again
    /// by `prepare` or the first search after (see `flat.rs`).
    flat: Mutex<Option<Arc<FlatGraph>>>,
}

impl VectorIndex {
    pub fn new(dim: usize, expected: usize) -> VectorIndex {
        VectorIndex::with_params(dim, expected, MAX_CONN, EF_CONSTRUCTION)
    }

    /// An index with other links per node and construction beam than
    /// twin's (`scripts/bench-memory` builds both sides of a large set with
    /// cheaper ones).
    pub fn with_params(
        dim: usize,
        expected: usize,
        max_conn: usize,
        ef_construction: usize,
    ) -> VectorIndex {
        VectorIndex {
            hnsw: Hnsw::new(
                max_conn.max(2),
                expected.max(1024),
                MAX_LAYER,
                ef_construction.max(1),
                UnitCosine,
            ),
            dim,
            points: 0,
            flat: Mutex::new(None),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Points inserted, including ones whose vectors were deleted since.
    pub fn points(&self) -> usize {
        self.points
    }

    pub fn insert(&mut self, slot: u64, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        self.hnsw.insert_slice((v, slot as usize));
        self.points += 1;
        self.stale();
    }

    /// Insert many at once, on all cores.
    pub fn insert_many(&mut self, items: &[(u64, Vec<f32>)]) {
        let data: Vec<(&[f32], usize)> = items
            .iter()
            .map(|(s, v)| (v.as_slice(), *s as usize))
            .collect();
        self.hnsw.parallel_insert_slice(&data);
        self.points += items.len();
        self.stale();
    }

    fn stale(&mut self) {
        *self.flat.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Lay the graph out for searching now (one pass over it), so the first
    /// search after a build or a load does not pay for it. Searches call it
    /// themselves when the graph changed since.
    pub fn prepare(&self) -> Option<Arc<FlatGraph>> {
        let mut flat = self.flat.lock().unwrap_or_else(|e| e.into_inner());
        if flat.is_none() {
            *flat = FlatGraph::of(&self.hnsw).map(Arc::new);
        }
        flat.clone()
    }

    /// The `k` nearest slots with their cosine similarity, best first; only
    /// slots `keep` accepts when given (pass `None` when every slot is live:
    /// an unfiltered search stops sooner).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        if self.points == 0 || k == 0 {
            return Vec::new();
        }
        let Some(flat) = self.prepare() else {
            return Vec::new();
        };
        flat.search(query, k, ef.max(k), keep)
            .into_iter()
            .map(|(slot, d)| (slot, 1.0 - d))
            .collect()
    }

    /// Write the index into `dir` with its sidecar; a crash at any point leaves
    /// either the old dump or a set whose checksums fail (so it is rebuilt).
    pub fn dump(
        &self,
        dir: &Path,
        generation: u64,
        model: &str,
        covered: u64,
    ) -> std::io::Result<()> {
        use hnsw_rs::api::AnnT;
        fs::create_dir_all(dir)?;
        let tmp = format!("{BASENAME}-tmp");
        for ext in ["hnsw.graph", "hnsw.data"] {
            let _ = fs::remove_file(dir.join(format!("{tmp}.{ext}")));
        }
        let _ = fs::remove_file(sidecar(dir));
        if self.points == 0 {
            // hnsw_rs cannot dump an empty graph ("unexpected error"); with no
            // sidecar the next open rebuilds it, from nothing, at no cost.
            return Ok(());
        }
        let written = self
            .hnsw
            .file_dump(dir, &tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let graph = dir.join(format!("{BASENAME}.hnsw.graph"));
        let data = dir.join(format!("{BASENAME}.hnsw.data"));
        fs::rename(dir.join(format!("{written}.hnsw.graph")), &graph)?;
        fs::rename(dir.join(format!("{written}.hnsw.data")), &data)?;
        let info = DumpInfo {
            generation,
            model: model.to_string(),
            dim: self.dim,
            covered,
            points: self.points,
            graph_hash: file_hash(&graph)?,
            data_hash: file_hash(&data)?,
        };
        let side = sidecar(dir);
        let tmp_side = side.with_extension("json.tmp");
        fs::write(
            &tmp_side,
            serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?,
        )?;
        fs::rename(tmp_side, side)?;
        Ok(())
    }

    /// Load the dump in `dir` if it is exactly the one expected; `Err` says why
    /// not (the caller rebuilds and may log the reason).
    pub fn load(
        dir: &Path,
        generation: u64,
        model: &str,
        dim: usize,
    ) -> Result<(VectorIndex, DumpInfo), String> {
        let side = sidecar(dir);
        let bytes = fs::read(&side).map_err(|e| format!("{}: {e}", side.display()))?;
        let info: DumpInfo = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: damaged ({e})", side.display()))?;
        if info.generation != generation {
            return Err(format!(
                "index generation {} but the store is at {generation}",
                info.generation
            ));
        }
        if info.model != model || info.dim != dim {
            return Err(format!(
                "index built with {} but the store uses {model}",
                info.model
            ));
        }
        let graph = dir.join(format!("{BASENAME}.hnsw.graph"));
        let data = dir.join(format!("{BASENAME}.hnsw.data"));
        if file_hash(&graph).ok() != Some(info.graph_hash)
            || file_hash(&data).ok() != Some(info.data_hash)
        {
            return Err("index files do not match their checksums".into());
        }
        // hnsw_rs's reader asserts on malformed input; the checksums above make
        // that unlikely, and a panic is still turned into a rebuild.
        let dir_owned = dir.to_path_buf();
        let loaded = std::panic::catch_unwind(move || {
            // The reloaded graph borrows its reader for life: keep the reader
            // (a few paths) alive for the process.
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&dir_owned, BASENAME)));
            io.load_hnsw::<f32, UnitCosine>().map_err(|e| e.to_string())
        })
        .map_err(|_| "index files are damaged".to_string())??;
        Ok((
            VectorIndex {
                hnsw: loaded,
                dim,
                points: info.points,
                flat: Mutex::new(None),
            },
            info,
        ))
    }
}

pub fn sidecar(dir: &Path) -> PathBuf {
    dir.join(format!("{BASENAME}.json"))
}

fn file_hash(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.digest())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::embed::normalize;

    fn vecs(n: usize, dim: usize, seed: u64) -> Vec<(u64, Vec<f32>)> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let mut v: Vec<f32> = (0..dim)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                normalize(&mut v);
                (i as u64, v)
            })
            .collect()
    }

    #[test]
    fn every_dot_kernel_this_cpu_runs_agrees_with_the_portable_one() {
        // Lengths around the kernels' 64/32/16/8-float steps and their tails.
        for dim in [1, 7, 8, 15, 16, 31, 33, 63, 64, 65, 384, 385] {
            let v = vecs(2, dim, dim as u64);
            let (a, b) = (&v[0].1, &v[1].1);
            let want = dot_lanes(a, b);
            assert!((fast_dot(a, b) - want).abs() < 1e-5, "dim {dim}");
            #[cfg(target_arch = "x86_64")]
            {
                if has_avx2() {
                    // SAFETY: checked just above.
                    assert!(
                        (unsafe { dot_avx2(a, b) } - want).abs() < 1e-5,
                        "avx2 dim {dim}"
                    );
                }
                if simd() == Simd::Avx512 {
                    // SAFETY: `simd` found AVX-512F.
                    assert!(
                        (unsafe { dot_avx512(a, b) } - want).abs() < 1e-5,
                        "avx512 dim {dim}"
                    );
                }
            }
        }
    }

    #[test]
    fn halves_round_to_nearest_and_come_back_exactly() {
        for (x, h) in [
            (0.0f32, 0x0000u16),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.5, 0x3800),
            (65504.0, 0x7bff),
            (1e6, 0x7c00),
            (2f32.powi(-24), 0x0001),
            (2f32.powi(-26), 0x0000),
            // 1 + 2^-11 is halfway between 1 and the next half: to even.
            (1.0 + 2f32.powi(-11), 0x3c00),
            (1.0 + 3.0 * 2f32.powi(-11), 0x3c02),
        ] {
            assert_eq!(f32_to_half(x), h, "{x}");
        }
        for x in [0.0f32, 1.0, -0.333, 0.1234, 2f32.powi(-20), -65504.0] {
            let back = half_to_f32(f32_to_half(x));
            assert!(
                (back - x).abs() <= x.abs() * 2f32.powi(-11) + 2f32.powi(-25),
                "{x} {back}"
            );
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            for dim in [1, 8, 15, 33, 64, 65, 384] {
                let v = vecs(2, dim, 3 + dim as u64);
                let (a, b) = (&v[0].1, &v[1].1);
                let h: Vec<u16> = b.iter().map(|&x| f32_to_half(x)).collect();
                let want = dot_lanes(a, b);
                // SAFETY: checked just above / by `simd`.
                assert!(
                    (unsafe { dot_f16_avx2(a, &h) } - want).abs() < 1e-3,
                    "dim {dim}"
                );
                if simd() == Simd::Avx512 {
                    assert!(
                        (unsafe { dot_f16_avx512(a, &h) } - want).abs() < 1e-3,
                        "dim {dim}"
                    );
                }
            }
        }
    }

    #[test]
    fn finds_itself_filters_tombstones_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let items = vecs(500, 16, 7);
        let mut ix = VectorIndex::new(16, 500);
        ix.insert_many(&items);
        let hit = ix.search(&items[42].1, 3, 64, None);
        assert_eq!(hit[0].0, 42);
        assert!((hit[0].1 - 1.0).abs() < 1e-4);
        let hit = ix.search(&items[42].1, 3, 64, Some(&|s| s != 42));
        assert!(hit.iter().all(|(s, _)| *s != 42));

        // A point inserted after a search is found by the next one (the
        // flat search layout is made again after every change).
        let extra = vecs(1, 16, 99).remove(0).1;
        ix.insert(500, &extra);
        assert_eq!(ix.search(&extra, 1, 64, None)[0].0, 500);
        ix.insert_many(&[(501, extra.clone())]);
        let two: Vec<u64> = ix.search(&extra, 2, 64, None).iter().map(|h| h.0).collect();
        assert!(two.contains(&500) && two.contains(&501), "{two:?}");

        ix.dump(dir.path(), 3, "m", 502).unwrap();
        let (back, info) = VectorIndex::load(dir.path(), 3, "m", 16).unwrap();
        assert_eq!(info.covered, 502);
        assert_eq!(back.points(), 502);
        assert_eq!(back.search(&items[7].1, 1, 64, None)[0].0, 7);

        // Another generation, another model, a damaged file: all refused.
        assert!(VectorIndex::load(dir.path(), 4, "m", 16).is_err());
        assert!(VectorIndex::load(dir.path(), 3, "other", 16).is_err());
        let data = dir.path().join("vectors.hnsw.data");
        let mut bytes = fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xFF;
        fs::write(&data, bytes).unwrap();
        let err = VectorIndex::load(dir.path(), 3, "m", 16).err().unwrap();
        assert!(err.contains("checksum"), "{err}");
        fs::remove_file(&data).unwrap();
        assert!(VectorIndex::load(dir.path(), 3, "m", 16).is_err());
    }
}
