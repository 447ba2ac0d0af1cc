//! LoRA training on a tiny synthesized llama: gradients reach every adapter
//! tensor, the loss falls on a memorisation set, a stopped run resumes on the
//! same curve, and the exported GGUF adapter means the same thing to llama.cpp
//! as to our forward pass. Gradients and the exported adapter are checked for
//! every supported architecture (llama, gemma3, qwen2, qwen3).

use std::path::Path;

use candle_core::{Device, Tensor};
use twin::llm::direct::Direct;
use twin::llm::gguf::{Value, Writer};
use twin::llm::tiny::{TinyArch, TinyLlama};
use twin::train::lora::{Lora, LoraConfig};
use twin::train::model::Model;
use twin::train::trainer::{self, Control, Example, RunConfig};

fn tiny(dir: &Path) -> (std::path::PathBuf, Model) {
    tiny_of(dir, TinyArch::Llama)
}

fn tiny_of(dir: &Path, arch: TinyArch) -> (std::path::PathBuf, Model) {
    let path = dir.join(format!("tiny-{}.gguf", arch.name()));
    TinyLlama::of(arch).write(&path).unwrap();
    let model = Model::load(&path, &Device::Cpu).unwrap();
    (path, model)
}

/// ChatML-ish byte sequences: a prompt (not learned) and a reply (learned).
fn examples() -> Vec<Example> {
    [
        ("how are you?", "grand, cheers! you?"),
        ("coming tonight?", "yes!! at 8"),
        ("what's up", "not much, you"),
        ("lunch?", "starving, meet at noon"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (q, a))| {
        let mut tokens = vec![257u32];
        tokens.extend(format!("user\n{q}").bytes().map(u32::from));
        tokens.extend([258, 257]);
        tokens.extend("assistant\n".bytes().map(u32::from));
        let mut mask = vec![false; tokens.len()];
        for b in a.bytes() {
            tokens.push(u32::from(b));
            mask.push(true);
        }
        tokens.push(258);
        mask.push(true);
        Example {
            tokens,
            mask,
            conversation: i as u64,
        }
    })
    .collect()
}

fn config(steps: u64) -> RunConfig {
    RunConfig {
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        },
        steps,
        learning_rate: 1e-2,
        warmup_steps: 2,
        batch_size: 2,
        grad_accum: 2,
        checkpoint_every: 5,
        eval_every: 5,
        ..RunConfig::default()
    }
}

#[test]
fn every_lora_tensor_gets_a_gradient() {
    for arch in TinyArch::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (_, model) = tiny_of(dir.path(), arch);
        let cfg = config(1);
        let lora = Lora::new(&model, &cfg.lora, 1).unwrap();
        let layers = TinyLlama::of(arch).n_layer as usize;
        assert_eq!(
            lora.pairs.len(),
            7 * layers,
            "{}: 7 projections a layer",
            arch.name()
        );
        // One step first: B starts at zero, so A only gets a gradient once B moved.
        let data = examples();
        trainer::train(
            &model,
            &lora,
            &data,
            &[],
            &cfg,
            "h",
            dir.path(),
            false,
            |_| Control::Continue,
        )
        .unwrap();
        let refs: Vec<&Example> = data.iter().collect();
        let (loss, _) = trainer::loss_of(&model, Some(&lora), &refs).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in lora.names().iter().zip(lora.vars()) {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{} {name}: no gradient", arch.name()));
            let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(n > 0.0, "{} {name}: zero gradient", arch.name());
        }
    }
}

/// twin's training kernels (`Model::use_reference_ops(false)`, the default)
/// against candle's plain ops: the same loss curve for a fixed seed and the same
/// LoRA gradients afterwards, for every architecture. Tolerance: 1e-4 relative
/// (f32 sums taken in another order differ in the last bits, and AdamW
/// carries that over a few steps).
#[test]
fn twin_kernels_train_like_candle_plain_ops() {
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(b.abs()).max(1e-6);
    for arch in TinyArch::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut model) = tiny_of(dir.path(), arch);
        let cfg = config(4);
        let data = examples();
        let refs: Vec<&Example> = data.iter().collect();
        let mut runs = Vec::new();
        for reference in [true, false] {
            model.use_reference_ops(reference);
            let lora = Lora::new(&model, &cfg.lora, 7).unwrap();
            let d = dir.path().join(format!("run-{reference}"));
            let out = trainer::train(&model, &lora, &data, &[], &cfg, "h", &d, false, |_| {
                Control::Continue
            })
            .unwrap();
            let (loss, _) = trainer::loss_of(&model, Some(&lora), &refs).unwrap();
            let store = loss.backward().unwrap();
            let grads: Vec<Vec<f32>> = lora
                .vars()
                .iter()
                .map(|v| {
                    store
                        .get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect();
            runs.push((out.curve, grads));
        }
        let ((plain, plain_g), (ours, ours_g)) = (&runs[0], &runs[1]);
        for (a, b) in plain.iter().zip(ours) {
            let what = format!("{} step {}", arch.name(), a.step);
            assert!(
                rel(a.loss, b.loss) < 1e-4,
                "{what}: loss {} vs {}",
                a.loss,
                b.loss
            );
            assert!(
                rel(a.grad_norm, b.grad_norm) < 1e-4,
                "{what}: grad norm {} vs {}",
                a.grad_norm,
                b.grad_norm
            );
        }
        for ((name, a), b) in lora_names(&model, &cfg).iter().zip(plain_g).zip(ours_g) {
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                diff / scale < 1e-4,
                "{} {name}: gradients differ by {diff} (largest {scale})",
                arch.name()
            );
        }
    }
}

fn lora_names(model: &Model, cfg: &RunConfig) -> Vec<String> {
    Lora::new(model, &cfg.lora, 0).unwrap().names()
}

#[test]
fn loss_falls_on_a_memorisation_set() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny(dir.path());
    let cfg = config(30);
    let lora = Lora::new(&model, &cfg.lora, 1).unwrap();
    let data = examples();
    let out = trainer::train(
        &model,
        &lora,
        &data,
        &data,
        &cfg,
        "h",
        dir.path(),
        false,
        |_| Control::Continue,
    )
    .unwrap();
    let first = out.curve.first().unwrap().loss;
    let last = out.curve.last().unwrap().loss;
    eprintln!(
        "loss {first:.3} -> {last:.3}; {:.0} tok/s",
        out.tokens_per_s
    );
    assert!(out.finished);
    assert!(last < first * 0.5, "loss {first} -> {last}");
    assert!(out.final_val_loss.unwrap() < first * 0.5);
    assert!(
        out.curve
            .iter()
            .all(|m| m.grad_norm.is_finite() && m.lr > 0.0)
    );
}

#[test]
fn a_stopped_run_resumes_on_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny(dir.path());
    let cfg = config(12);
    let data = examples();
    let whole = {
        let lora = Lora::new(&model, &cfg.lora, 3).unwrap();
        let d = dir.path().join("whole");
        trainer::train(&model, &lora, &data, &data, &cfg, "h", &d, false, |_| {
            Control::Continue
        })
        .unwrap()
    };
    let d = dir.path().join("stopped");
    {
        let lora = Lora::new(&model, &cfg.lora, 3).unwrap();
        // Stopped at step 8: the checkpoint of step 5 is where it goes on.
        let out = trainer::train(&model, &lora, &data, &data, &cfg, "h", &d, false, |m| {
            if m.step == 8 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        assert!(!out.finished);
        assert_eq!(trainer::checkpoint_step(&d), Some(5));
    }
    // A fresh process: a new adapter whose values come from the checkpoint.
    let lora = Lora::new(&model, &cfg.lora, 99).unwrap();
    let resumed = trainer::train(&model, &lora, &data, &data, &cfg, "h", &d, true, |_| {
        Control::Continue
    })
    .unwrap();
    assert_eq!(resumed.resumed_from, 5);
    assert_eq!(resumed.curve.len(), whole.curve.len());
    for (a, b) in whole.curve.iter().zip(&resumed.curve) {
        assert_eq!(a.step, b.step);
        assert_eq!(a.loss, b.loss, "step {}", a.step);
        assert_eq!(a.grad_norm, b.grad_norm, "step {}", a.step);
        assert_eq!(a.val_loss, b.val_loss, "step {}", a.step);
    }
    // Another dataset or other settings are refused, naming the file.
    let err = trainer::train(&model, &lora, &data, &data, &cfg, "other", &d, true, |_| {
        Control::Continue
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("checkpoint.json") && err.contains("dataset"),
        "{err}"
    );
}

#[test]
fn the_exported_adapter_is_what_llama_cpp_applies() {
    for arch in TinyArch::ALL {
        exported_adapter_matches(arch);
    }
}

fn exported_adapter_matches(arch: TinyArch) {
    let dir = tempfile::tempdir().unwrap();
    let (path, model) = tiny_of(dir.path(), arch);
    let cfg = config(6);
    let lora = Lora::new(&model, &cfg.lora, 5).unwrap();
    let data = examples();
    trainer::train(
        &model,
        &lora,
        &data,
        &[],
        &cfg,
        "h",
        dir.path(),
        false,
        |_| Control::Continue,
    )
    .unwrap();
    let adapter = dir.path().join("adapter.gguf");
    twin::train::adapter::export(&lora, arch.name(), "test", &adapter).unwrap();

    let tokens: Vec<u32> = data[0].tokens.clone();
    let ids = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let flat = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    let ours_adapted = flat(model.forward(&ids, Some(&lora)).unwrap());

    // A merged base: W + alpha/r * B A written into a GGUF of its own.
    let merged = dir.path().join("merged.gguf");
    twin::train::adapter::write_f32(&model, Some(&lora), &merged).unwrap();

    let mut base = Direct::open(&path, false, 2).unwrap();
    let plain = base.logits(&tokens).unwrap();
    base.set_adapter(&adapter).unwrap();
    let with_adapter = base.logits(&tokens).unwrap();
    let merged_logits = Direct::open(&merged, false, 2)
        .unwrap()
        .logits(&tokens)
        .unwrap();

    // Differences as a share of the largest logit (f32 summation order differs).
    let scale = with_adapter.iter().fold(1f32, |m, x| m.max(x.abs()));
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let d_merged = max_diff(&with_adapter, &merged_logits) / scale;
    let d_ours = max_diff(&with_adapter, &ours_adapted) / scale;
    let d_plain = max_diff(&with_adapter, &plain) / scale;
    let name = arch.name();
    eprintln!(
        "{name}: adapter vs merged {d_merged:.2e}, vs ours {d_ours:.2e}, vs plain base {d_plain:.2e}"
    );
    // Both llama.cpp's: how close depends on the trained values (ggml's f32
    // order): measured 1.9e-6 to 1.0e-4 over the four architectures and two
    // runs whose adapters differ in the last bits.
    assert!(d_merged < 2e-4, "{name}: {d_merged}");
    // Ours computes the delta as (x A^T) B^T in f32, ggml as B (A x) with its
    // own kernels: measured 4.9e-4 (llama) after six large steps.
    assert!(d_ours < 1e-3, "{name}: {d_ours}");
    assert!(
        d_plain > 1e-3,
        "{name}: the adapter changes nothing: {d_plain}"
    );
}

#[test]
fn a_wrongly_oriented_adapter_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = tiny(dir.path());
    // A as (in, r) and B as (r, out) in row-major terms: the orientation PEFT does not use.
    let bad = dir.path().join("transposed.gguf");
    let (d, r) = (64u64, 4u64);
    let mut w = Writer::new();
    w.kv("general.architecture", Value::Str("llama".into()))
        .kv("general.type", Value::Str("adapter".into()))
        .kv("adapter.type", Value::Str("lora".into()))
        .kv("adapter.lora.alpha", Value::F32(8.0))
        .tensor_f32(
            "blk.0.attn_q.weight.lora_a",
            &[r, d],
            &vec![0.1; (d * r) as usize],
        )
        .tensor_f32(
            "blk.0.attn_q.weight.lora_b",
            &[d, r],
            &vec![0.1; (d * r) as usize],
        );
    w.write(&bad).unwrap();
    let mut base = Direct::open(&path, false, 2).unwrap();
    let err = base.set_adapter(&bad).unwrap_err().to_string();
    assert!(err.contains("transposed.gguf"), "{err}");
    assert!(
        err.contains("input size") || err.contains("output size"),
        "{err}"
    );
}
