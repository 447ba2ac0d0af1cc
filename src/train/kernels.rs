//! twin's own training kernels, for where candle's ops do more work than
//! training a LoRA on a frozen base needs. Each has a reference made of candle's
//! plain ops (`Model::use_reference_ops` switches to it), and the tests hold the
//! two to the same loss and LoRA gradients. CPU kernels only: elsewhere each
//! function falls back to the plain ops.
//!
//! - [`linear`]: `x @ W^T` against a frozen weight, passing a gradient to `x`
//!   only. candle's own matmul backward computes the gradient of both operands,
//!   tracked or not (`backprop.rs`, `Op::Matmul`): for every frozen projection
//!   and the `[vocab, n_embd]` output layer a training step paid a second
//!   weight-sized matmul, a zeroed weight-sized buffer and an add, all thrown
//!   away. This op runs the same forward matmul and its backward is the one
//!   matmul the input needs (`grad @ W`). On the CPU the weight is held in both
//!   orientations ([`Frozen`]): the `gemm` crate streams its left operand down
//!   columns, so `x @ W^T` read from the row-major `W` had it copy (pack) the
//!   whole weight on every call, forward, every step; `W^T` stored contiguous
//!   once at load feeds the forward as it is, and `W` the backward.
//! - [`cross_entropy`]: `-log softmax(logits)[target]` per row in one pass over
//!   the `[rows, vocab]` logits, and its gradient `softmax - onehot` in one
//!   more. candle's `log_softmax` and `gather` allocate four logits-sized
//!   tensors forward and as many backward, walking them a dozen times.
//! - [`rms_norm`]: `x / sqrt(mean(x^2) + eps) * w` over the last dimension in
//!   one pass, and the input gradient in one more; the same norm composed of
//!   candle ops is six ops forward and about twenty backward, each allocating,
//!   61 times per step for SmolLM2. The norm weights are frozen: no gradient.
//! - [`rope`]: rotary position embedding in one pass; its backward is the
//!   rotation by the opposite angles. candle's fused rope passes no gradient,
//!   and the composed one (`rope_slow`, `rope_i_slow`) is a dozen ops each way.
//! - [`causal_softmax`]: attention weights `softmax(scale * q k^T + causal
//!   mask)` in one pass, the backward in one more; composed, it was a scale, a
//!   mask add and five softmax ops forward and about fifteen backward per layer.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor};

/// A frozen weight `[out, in]` for [`linear`]. On the CPU it keeps `W^T`
/// (`[in, out]`, contiguous) beside `W`: the forward reads the one, the backward
/// the other, and the matmul packs neither (see the module notes). It costs a
/// second copy of each weight in memory (about 0.5 GB for SmolLM2-135M).
#[derive(Clone)]
pub struct Frozen {
    w: Tensor,
    wt: Option<Tensor>,
}

impl Frozen {
    /// `w` (`[out, in]`), with its contiguous transpose when it lives on the CPU.
    pub fn new(w: Tensor) -> Result<Frozen> {
        let w = w.contiguous()?;
        let wt = if w.device().is_cpu() {
            Some(w.t()?.contiguous()?)
        } else {
            None
        };
        Ok(Frozen { w, wt })
    }

    /// The weight as loaded, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.w
    }
}

/// `x @ W^T` from `x` `[n, in]` and `W^T` `[in, out]`; the backward reads `w`.
struct FrozenLinear {
    /// `[out, in]`, contiguous.
    w: Tensor,
}

impl CustomOp2 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    /// `s1`: `x` `[n, in]`; `s2`: `W^T` `[in, out]` (any strides matmul takes).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("frozen-linear: [{m}, {k}] @ [{k2}, {n}]");
        }
        let out = s1.matmul(s2, (1, m, n, k), l1, l2)?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _wt: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // y = x W^T  =>  dL/dx = dL/dy W; W gets nothing (it is frozen).
        Ok((Some(grad.matmul(&self.w)?), None))
    }
}

/// `x` (`[n, in]`) times the transpose of the frozen `w` (`[out, in]`):
/// `[n, out]`. Gradients reach `x`, never `w`. Off the CPU it is candle's
/// plain matmul (the custom op has only a CPU kernel).
pub fn linear(x: &Tensor, w: &Frozen) -> Result<Tensor> {
    match &w.wt {
        Some(wt) if x.device().is_cpu() => x.apply_op2(wt, FrozenLinear { w: w.w.clone() }),
        _ => x.matmul(&w.w.t()?),
    }
}

/// The rows of an f32 CPU tensor, which must be contiguous.
fn rows<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<(&'a [f32], usize, usize)> {
    let (n, v) = l.shape().dims2()?;
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{what}: f32 expected, got {:?}", s.dtype());
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: contiguous rows expected");
    };
    Ok((&data[start..end], n, v))
}

/// `max + ln(sum(exp(x - max)))` of one row.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
    max + sum.ln()
}

/// Per-row loss `[n]` of logits `[n, vocab]` against `targets` (one per row).
struct CrossEntropy {
    targets: Arc<Vec<u32>>,
}

impl CrossEntropy {
    fn check(&self, n: usize, v: usize) -> Result<()> {
        if self.targets.len() != n {
            candle_core::bail!("cross-entropy: {} targets for {n} rows", self.targets.len());
        }
        if let Some(t) = self.targets.iter().find(|t| **t as usize >= v) {
            candle_core::bail!("cross-entropy: target {t} outside a vocabulary of {v}");
        }
        Ok(())
    }
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, n, v) = rows(s, l, "cross-entropy")?;
        self.check(n, v)?;
        let loss = x
            .chunks_exact(v)
            .zip(self.targets.iter())
            .map(|(row, &t)| log_sum_exp(row) - row[t as usize])
            .collect();
        Ok((CpuStorage::F32(loss), Shape::from(n)))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let g = logits.contiguous()?.apply_op2_no_bwd(
            &grad,
            &CrossEntropyGrad {
                targets: self.targets.clone(),
            },
        )?;
        Ok(Some(g))
    }
}

/// `grad[i] * (softmax(logits[i]) - onehot(targets[i]))`, `[n, vocab]`.
struct CrossEntropyGrad {
    targets: Arc<Vec<u32>>,
}

impl CustomOp2 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, n, v) = rows(s1, l1, "cross-entropy gradient")?;
        let CpuStorage::F32(g) = s2 else {
            candle_core::bail!("cross-entropy gradient: f32 expected");
        };
        let Some((start, end)) = l2.contiguous_offsets() else {
            candle_core::bail!("cross-entropy gradient: contiguous gradient expected");
        };
        let g = &g[start..end];
        if g.len() != n || self.targets.len() != n {
            candle_core::bail!(
                "cross-entropy gradient: {} rows of gradient for {n}",
                g.len()
            );
        }
        let mut out = vec![0f32; n * v];
        for ((row, dst), (&gi, &t)) in x
            .chunks_exact(v)
            .zip(out.chunks_exact_mut(v))
            .zip(g.iter().zip(self.targets.iter()))
        {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (d, x) in dst.iter_mut().zip(row) {
                *d = (x - max).exp();
                sum += *d;
            }
            let scale = gi / sum;
            for d in dst.iter_mut() {
                *d *= scale;
            }
            dst[t as usize] -= gi;
        }
        Ok((CpuStorage::F32(out), Shape::from((n, v))))
    }
}

/// RMS norm of contiguous rows of `d` values, times the frozen `w` (`[d]`).
struct RmsNorm {
    eps: f32,
}

/// `1 / sqrt(mean(row^2) + eps)`.
fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let sq: f32 = row.iter().map(|x| x * x).sum();
    1.0 / (sq / row.len() as f32 + eps).sqrt()
}

/// A contiguous f32 slice of a tensor's storage.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{what}: f32 expected, got {:?}", s.dtype());
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: contiguous values expected");
    };
    Ok(&data[start..end])
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rms-norm")?;
        let w = slice(s2, l2, "rms-norm weight")?;
        let d = w.len();
        if l1.shape().dims().last() != Some(&d) {
            candle_core::bail!("rms-norm: rows of {:?} against {d} weights", l1.shape());
        }
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let r = inv_rms(row, self.eps);
            for ((o, x), w) in dst.iter_mut().zip(row).zip(w) {
                *o = x * r * w;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.apply_op3_no_bwd(w, &grad.contiguous()?, &RmsNormGrad { eps: self.eps })?;
        Ok((Some(dx), None))
    }
}

/// The input gradient of [`RmsNorm`]: with `r = 1 / rms(x)` and `u = g * w`,
/// `dx = r * u - x * r^3 * mean(u * x)` per row.
struct RmsNormGrad {
    eps: f32,
}

impl candle_core::CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rms-norm gradient")?;
        let w = slice(s2, l2, "rms-norm gradient")?;
        let g = slice(s3, l3, "rms-norm gradient")?;
        let d = w.len();
        if g.len() != x.len() {
            candle_core::bail!("rms-norm gradient: {} values for {}", g.len(), x.len());
        }
        let mut out = vec![0f32; x.len()];
        for ((row, gr), dst) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(out.chunks_exact_mut(d))
        {
            let r = inv_rms(row, self.eps);
            let dot: f32 = row.iter().zip(gr).zip(w).map(|((x, g), w)| x * g * w).sum();
            let c = r * r * r * dot / d as f32;
            for (((o, x), g), w) in dst.iter_mut().zip(row).zip(gr).zip(w) {
                *o = r * g * w - x * c;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// RMS norm over the last dimension of `x` (f32), times `w` (`[last dim]`,
/// frozen: it gets no gradient).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x
            .contiguous()?
            .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 });
    }
    rms_norm_reference(x, w, eps)
}

/// The same norm composed of candle ops (gradients reach `x` and `w`).
pub fn rms_norm_reference(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(w)
}

/// Rotary position embedding of `x` `[b, heads, t, d]` by `cos` and `sin`
/// (`[t, d / 2]`): rotates adjacent pairs (llama's) or the two halves of each
/// head (`halves`, NEOX); `inverse` rotates by the opposite angles.
struct Rope {
    halves: bool,
    inverse: bool,
}

impl candle_core::CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rope")?;
        let cos = slice(s2, l2, "rope cos")?;
        let sin = slice(s3, l3, "rope sin")?;
        let (_, _, t, d) = l1.shape().dims4()?;
        let h = d / 2;
        if d % 2 != 0 || cos.len() != t * h || sin.len() != t * h {
            candle_core::bail!(
                "rope: heads of {d} at {t} positions against tables of {} and {}",
                cos.len(),
                sin.len()
            );
        }
        let mut out = vec![0f32; x.len()];
        for (k, (src, dst)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            let at = (k % t) * h;
            let (c, s) = (&cos[at..at + h], &sin[at..at + h]);
            for i in 0..h {
                let (a, b) = if self.halves {
                    (i, i + h)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let sn = if self.inverse { -s[i] } else { s[i] };
                let (x0, x1) = (src[a], src[b]);
                dst[a] = x0 * c[i] - x1 * sn;
                dst[b] = x0 * sn + x1 * c[i];
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let back = Rope {
            halves: self.halves,
            inverse: !self.inverse,
        };
        let dx = grad.contiguous()?.apply_op3_no_bwd(cos, sin, &back)?;
        Ok((Some(dx), None, None))
    }
}

/// Rotary position embedding of `x` (`[b, heads, t, d]`, f32) by the tables
/// `cos`, `sin` (`[t, d / 2]`): on the two halves of each head (`halves`) or on
/// adjacent pairs. Gradients reach `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, halves: bool) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op3(
            &cos.contiguous()?,
            &sin.contiguous()?,
            Rope {
                halves,
                inverse: false,
            },
        );
    }
    rope_reference(x, cos, sin, halves)
}

/// The same rotation composed of candle ops.
pub fn rope_reference(x: &Tensor, cos: &Tensor, sin: &Tensor, halves: bool) -> Result<Tensor> {
    if halves {
        candle_nn::rotary_emb::rope_slow(x, cos, sin)
    } else {
        candle_nn::rotary_emb::rope_i_slow(x, cos, sin)
    }
}

/// Position `j` is visible from position `i` (itself, earlier ones, and within
/// `window` positions when given).
fn visible(i: usize, j: usize, window: Option<usize>) -> bool {
    j <= i && window.is_none_or(|w| i - j < w)
}

/// `softmax(scale * x + mask)` over the last dimension of `[.., t, t]` scores.
struct CausalSoftmax {
    scale: f32,
    window: Option<usize>,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "causal softmax")?;
        let dims = l.shape().dims();
        let t = dims.last().copied().unwrap_or(0);
        if dims.len() < 2 || dims[dims.len() - 2] != t {
            candle_core::bail!("causal softmax: square scores expected, got {:?}", dims);
        }
        let mut out = vec![0f32; x.len()];
        for (k, (row, dst)) in x.chunks_exact(t).zip(out.chunks_exact_mut(t)).enumerate() {
            let i = k % t;
            let mut max = f32::NEG_INFINITY;
            for (j, x) in row.iter().enumerate() {
                if visible(i, j, self.window) {
                    max = max.max(x * self.scale);
                }
            }
            let mut sum = 0f32;
            for (j, (d, x)) in dst.iter_mut().zip(row).enumerate() {
                if visible(i, j, self.window) {
                    *d = (x * self.scale - max).exp();
                    sum += *d;
                }
            }
            for d in dst.iter_mut() {
                *d /= sum;
            }
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad { scale: self.scale })?;
        Ok(Some(g))
    }
}

/// From softmax output `y` and its gradient `g`: `scale * y * (g - sum(g * y))`
/// per row (masked positions have `y = 0` and get nothing).
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "causal softmax gradient")?;
        let g = slice(s2, l2, "causal softmax gradient")?;
        let t = l1.shape().dims().last().copied().unwrap_or(0);
        if g.len() != y.len() || t == 0 {
            candle_core::bail!(
                "causal softmax gradient: {} values for {}",
                g.len(),
                y.len()
            );
        }
        let mut out = vec![0f32; y.len()];
        for ((yr, gr), dst) in y
            .chunks_exact(t)
            .zip(g.chunks_exact(t))
            .zip(out.chunks_exact_mut(t))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(y, g)| y * g).sum();
            for ((d, y), g) in dst.iter_mut().zip(yr).zip(gr) {
                *d = self.scale * y * (g - dot);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Attention weights from scores `x` (`[.., t, t]`, f32, query by key):
/// `softmax(scale * x)` over the keys each query may see (itself and earlier
/// ones, within `window` positions when given), zero elsewhere.
pub fn causal_softmax(x: &Tensor, scale: f64, window: Option<usize>) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(CausalSoftmax {
            scale: scale as f32,
            window,
        });
    }
    causal_softmax_reference(x, scale, window)
}

/// The same weights composed of candle ops: scale, an additive mask, softmax.
pub fn causal_softmax_reference(x: &Tensor, scale: f64, window: Option<usize>) -> Result<Tensor> {
    let t = x.dim(D::Minus1)?;
    let w = window.unwrap_or(usize::MAX);
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i || i - j >= w { -1e9 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(m, (t, t), x.device())?;
    candle_nn::ops::softmax(&(x * scale)?.broadcast_add(&mask)?, D::Minus1)
}

/// `-log softmax(logits)[target]` for each row of `logits` (`[n, vocab]`,
/// f32): `[n]`. Gradients reach the logits.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    if logits.device().is_cpu() {
        return logits.contiguous()?.apply_op1(CrossEntropy {
            targets: Arc::new(targets.to_vec()),
        });
    }
    let n = targets.len();
    let t = Tensor::from_vec(targets.to_vec(), (n, 1), logits.device())?;
    candle_nn::ops::log_softmax(logits, D::Minus1)?
        .gather(&t, 1)?
        .squeeze(1)?
        .neg()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{Frozen, linear};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn frozen_linear_matches_a_matmul_and_leaves_the_weight_alone() {
        let dev = Device::Cpu;
        let x = Var::from_vec(
            (0..12).map(|i| (i as f32 * 0.37).sin()).collect(),
            (3, 4),
            &dev,
        )
        .unwrap();
        let w = Tensor::from_vec(
            (0..20)
                .map(|i| (i as f32 * 0.11).cos())
                .collect::<Vec<f32>>(),
            (5, 4),
            &dev,
        )
        .unwrap();
        let y1 = linear(x.as_tensor(), &Frozen::new(w.clone()).unwrap()).unwrap();
        let y2 = x.as_tensor().matmul(&w.t().unwrap()).unwrap();
        assert!(max_diff(&y1, &y2) < 1e-6);
        // A loss that is not linear in y, so the gradient depends on it.
        let g1 = y1.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = y2.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        assert!(max_diff(a, b) < 1e-5);
        // Only x gets a gradient (candle's matmul also computes one for `w^T`).
        assert_eq!(g1.get_ids().count(), 1, "x alone");
        assert_eq!(g2.get_ids().count(), 2, "x and w^T");
    }

    #[test]
    fn cross_entropy_matches_log_softmax_and_its_gradient() {
        let dev = Device::Cpu;
        let (n, v) = (3, 7);
        let x = Var::from_vec(
            (0..n * v).map(|i| (i as f32 * 0.71).sin() * 4.0).collect(),
            (n, v),
            &dev,
        )
        .unwrap();
        let targets = [2u32, 6, 0];
        // Row weights, so each row's gradient is scaled differently.
        let w = Tensor::new(&[1.0f32, 0.5, 2.0], &dev).unwrap();
        let ours = super::cross_entropy(x.as_tensor(), &targets).unwrap();
        let t = Tensor::new(&targets, &dev).unwrap().unsqueeze(1).unwrap();
        let plain = candle_nn::ops::log_softmax(x.as_tensor(), candle_core::D::Minus1)
            .unwrap()
            .gather(&t, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap();
        assert!(max_diff(&ours, &plain) < 1e-5);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        assert!(max_diff(a, b) < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn cross_entropy_refuses_a_target_outside_the_vocabulary() {
        let x = Tensor::zeros((2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = super::cross_entropy(&x, &[1, 4]).unwrap_err().to_string();
        assert!(err.contains("target 4"), "{err}");
        assert!(super::cross_entropy(&x, &[1]).is_err());
    }

    #[test]
    fn rms_norm_matches_the_op_chain_and_its_gradient() {
        let dev = Device::Cpu;
        // [2, 3, 5]: the norm runs over the last dimension of any shape.
        let x = Var::from_vec(
            (0..30).map(|i| (i as f32 * 0.53).sin() * 3.0).collect(),
            (2, 3, 5),
            &dev,
        )
        .unwrap();
        let w = Tensor::new(&[0.5f32, 1.0, 1.5, -0.7, 2.0], &dev).unwrap();
        let ours = super::rms_norm(x.as_tensor(), &w, 1e-5).unwrap();
        let plain = super::rms_norm_reference(x.as_tensor(), &w, 1e-5).unwrap();
        assert!(max_diff(&ours, &plain) < 1e-5);
        // A loss that weighs each output differently.
        let k = Tensor::from_vec(
            (0..30)
                .map(|i| (i as f32 * 0.29).cos())
                .collect::<Vec<f32>>(),
            (2, 3, 5),
            &dev,
        )
        .unwrap();
        let g1 = (ours * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (plain * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        assert!(max_diff(a, b) < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn rope_matches_the_op_chain_and_its_gradient_both_ways() {
        let dev = Device::Cpu;
        let (b, n, t, d) = (1, 2, 3, 4);
        let angles: Vec<f32> = (0..t * d / 2).map(|i| i as f32 * 0.4).collect();
        let a = Tensor::from_vec(angles, (t, d / 2), &dev).unwrap();
        let (cos, sin) = (a.cos().unwrap(), a.sin().unwrap());
        let k = Tensor::from_vec(
            (0..b * n * t * d)
                .map(|i| (i as f32 * 0.29).cos())
                .collect::<Vec<f32>>(),
            (b, n, t, d),
            &dev,
        )
        .unwrap();
        for halves in [false, true] {
            let x = Var::from_vec(
                (0..b * n * t * d)
                    .map(|i| (i as f32 * 0.53).sin())
                    .collect(),
                (b, n, t, d),
                &dev,
            )
            .unwrap();
            let ours = super::rope(x.as_tensor(), &cos, &sin, halves).unwrap();
            let plain = super::rope_reference(x.as_tensor(), &cos, &sin, halves).unwrap();
            assert!(max_diff(&ours, &plain) < 1e-6, "halves {halves}");
            let g1 = (ours * &k).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (plain * &k).unwrap().sum_all().unwrap().backward().unwrap();
            let (ga, gb) = (
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap(),
            );
            assert!(max_diff(ga, gb) < 1e-6, "halves {halves}: {ga} vs {gb}");
        }
    }

    #[test]
    fn causal_softmax_matches_the_masked_op_chain_and_its_gradient() {
        let dev = Device::Cpu;
        let (h, t) = (2, 5);
        let k = Tensor::from_vec(
            (0..h * t * t)
                .map(|i| (i as f32 * 0.29).cos())
                .collect::<Vec<f32>>(),
            (1, h, t, t),
            &dev,
        )
        .unwrap();
        for window in [None, Some(2)] {
            let x = Var::from_vec(
                (0..h * t * t)
                    .map(|i| (i as f32 * 0.53).sin() * 3.0)
                    .collect(),
                (1, h, t, t),
                &dev,
            )
            .unwrap();
            let ours = super::causal_softmax(x.as_tensor(), 0.125, window).unwrap();
            let plain = super::causal_softmax_reference(x.as_tensor(), 0.125, window).unwrap();
            assert!(max_diff(&ours, &plain) < 1e-6, "window {window:?}");
            let g1 = (ours * &k).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (plain * &k).unwrap().sum_all().unwrap().backward().unwrap();
            let (ga, gb) = (
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap(),
            );
            assert!(max_diff(ga, gb) < 1e-6, "window {window:?}: {ga} vs {gb}");
        }
    }
}
