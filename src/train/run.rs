//! The training jobs behind `twin dataset build`, `twin train` and
//! `twin adapters`: they tie the store, the dataset, the trainer and the
//! registry together and report through the one job protocol (a training step
//! is a progress event with `loss`, `lr`, `grad_norm`, `tokens_per_s`,
//! `val_loss` metrics).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dataset::{self, Options, Stats, Strategy};
use super::lora::Lora;
use super::model::Model;
use super::registry::{self, AdapterRecord, RunRecord, RunStatus};
use super::trainer::{self, Control, RunConfig, StepMetrics};
use crate::config::Config;
use crate::jobs::{Cancelled, JobCtx, Level, Summary};
use crate::paths::Paths;
use crate::store::Store;

/// Where training keeps its files, and what it trains on.
#[derive(Debug, Clone)]
pub struct Setup {
    pub base: PathBuf,
    pub datasets_dir: PathBuf,
    pub adapters_dir: PathBuf,
    pub runs_dir: PathBuf,
    pub dataset: Options,
    pub run: RunConfig,
}

impl Setup {
    /// From the config; `base` overrides `train.base` / `chat.model`.
    pub fn new(config: &Config, paths: &Paths, models_dir: &Path) -> Result<Setup, String> {
        let t = &config.train;
        let strategies = t
            .strategies
            .iter()
            .map(|s| Strategy::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let run = RunConfig::from_config(t);
        if let Some(bad) = run.lora.unknown_target() {
            return Err(format!(
                "train.targets: unknown projection `{bad}`; use attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down"
            ));
        }
        let base = if t.base.is_empty() {
            &config.chat.model
        } else {
            &t.base
        };
        let [datasets_dir, adapters_dir, runs_dir] = Setup::dirs(paths);
        Ok(Setup {
            base: resolve(base, models_dir),
            datasets_dir,
            adapters_dir,
            runs_dir,
            dataset: Options {
                strategies,
                max_tokens: t.max_tokens.max(16) as usize,
                validation: t.validation,
                system_prompt: config.chat.system_prompt.clone(),
                seed: t.seed.max(0) as u64,
                never_train: config.privacy.never_train.clone(),
            },
            run,
        })
    }
}

impl Setup {
    /// Every folder training writes into: sets, adapters, runs.
    pub fn dirs(paths: &Paths) -> [PathBuf; 3] {
        [
            paths.data_dir.join("train").join("datasets"),
            paths.data_dir.join("adapters"),
            Setup::runs_dir(paths),
        ]
    }

    /// Where runs keep their checkpoints and evaluation reports.
    pub fn runs_dir(paths: &Paths) -> PathBuf {
        paths.state_dir.join("train").join("runs")
    }
}

/// A model given by file name lives in the models folder.
pub fn resolve(name: &str, models_dir: &Path) -> PathBuf {
    let p = PathBuf::from(name);
    if p.is_absolute() || name.contains('/') {
        p
    } else {
        models_dir.join(p)
    }
}

fn check_base(base: &Path) -> anyhow::Result<()> {
    if !base.is_file() {
        anyhow::bail!(
            "no base model at {}: fetch one with `bash scripts/fetch-models.sh`, or set train.base (or pass --base) to a .gguf file",
            base.display()
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct DatasetSummary {
    pub hash: String,
    pub path: PathBuf,
    pub model: PathBuf,
    pub stats: Stats,
    pub preview: Vec<String>,
}

impl fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(f, "dataset {} ({})", self.hash, self.path.display())?;
        writeln!(
            f,
            "  {} training and {} validation examples from {} + {} conversations ({} windows)",
            s.train_examples, s.val_examples, s.train_conversations, s.val_conversations, s.windows
        )?;
        let by: Vec<String> = s.samples.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "  by strategy: {}", by.join(", "))?;
        write!(
            f,
            "  {} tokens, {} learned; {} duplicates and {} too long dropped; {} PII values scrubbed",
            s.tokens, s.learned_tokens, s.duplicates, s.too_long, s.scrubbed
        )
    }
}

impl Summary for DatasetSummary {}

/// `twin dataset build`.
pub fn build_dataset(store: &Store, setup: &Setup, ctx: &JobCtx) -> anyhow::Result<DatasetSummary> {
    check_base(&setup.base)?;
    let set = dataset::build(store, &setup.base, &setup.datasets_dir, &setup.dataset, ctx)?;
    if set.train.is_empty() {
        ctx.log(
            Level::Warn,
            "no training examples: the store has no conversation windows where you reply to someone; import chats (`twin ingest`) and confirm who you are (`twin ingest --me NAME`)",
        );
    }
    Ok(DatasetSummary {
        path: setup.datasets_dir.join(format!("{}.json", set.hash)),
        hash: set.hash,
        model: set.model,
        stats: set.stats,
        preview: set.preview,
    })
}

#[derive(Debug, Serialize)]
pub struct TrainSummary {
    pub run: String,
    pub adapter: Option<AdapterRecord>,
    pub dataset: String,
    pub base: PathBuf,
    pub resumed_from: u64,
    pub steps: u64,
    pub parameters: usize,
    pub first_loss: Option<f64>,
    pub final_loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub tokens_per_s: f64,
    pub curve: Vec<StepMetrics>,
}

impl fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
        writeln!(
            f,
            "run {}: {} steps on dataset {} ({} LoRA parameters), {:.0} tokens/s",
            self.run, self.steps, self.dataset, self.parameters, self.tokens_per_s
        )?;
        writeln!(
            f,
            "  loss {} -> {}, validation loss {}",
            opt(self.first_loss),
            opt(self.final_loss),
            opt(self.val_loss)
        )?;
        match &self.adapter {
            Some(a) => write!(
                f,
                "  adapter {} at {}; use it with `twin adapters activate {}`",
                a.id,
                a.path.display(),
                a.id
            ),
            None => write!(f, "  no adapter yet"),
        }
    }
}

impl Summary for TrainSummary {}

/// `twin train`: train on the latest dataset, export and register the adapter.
pub fn train(
    store: &Store,
    setup: &Setup,
    resume: bool,
    ctx: &JobCtx,
) -> anyhow::Result<TrainSummary> {
    check_base(&setup.base)?;
    let record = dataset::latest(store)?.ok_or_else(|| {
        anyhow::anyhow!("no training set yet: build one with `twin dataset build`")
    })?;
    if record.model != setup.base {
        anyhow::bail!(
            "the latest training set was tokenized for {}, not {}; run `twin dataset build` again for this base",
            record.model.display(),
            setup.base.display()
        );
    }
    let data = dataset::load(&record.path)?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut run = if resume {
        let mut runs = registry::runs(store)?;
        runs.sort_by_key(|r| r.started_ms);
        let last = runs
            .into_iter()
            .rev()
            .find(|r| r.status != RunStatus::Done && trainer::checkpoint_step(&r.dir).is_some())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no stopped run with a checkpoint to resume; start one with `twin train`"
                )
            })?;
        if last.base != setup.base {
            anyhow::bail!(
                "run {} trained {}, not {}; resume it with --base {}",
                last.id,
                last.base.display(),
                setup.base.display(),
                last.base.display()
            );
        }
        last
    } else {
        let id = format!("r{now}");
        RunRecord {
            dir: setup.runs_dir.join(&id),
            id,
            base: setup.base.clone(),
            dataset_hash: record.hash.clone(),
            config: setup.run.clone(),
            status: RunStatus::Running,
            curve: Vec::new(),
            adapter: None,
            started_ms: now,
            updated_ms: now,
            tokens_per_s: 0.0,
        }
    };
    let config = run.config.clone();
    run.status = RunStatus::Running;
    registry::put_run(store, &run)?;

    ctx.log(Level::Info, format!("loading {}", setup.base.display()));
    let device = super::device();
    let model = Model::load(&setup.base, &device)?;
    let lora = Lora::new(&model, &config.lora, config.seed)?;
    ctx.log(
        Level::Info,
        format!(
            "{} ({} layers) on {}: {} LoRA parameters (r {}, alpha {}), {} training / {} validation examples, {} steps",
            model.config.architecture,
            model.config.n_layer,
            if device.is_cpu() { "CPU" } else { "GPU" },
            lora.parameters(),
            config.lora.rank,
            config.lora.alpha,
            data.train.len(),
            data.val.len(),
            config.steps
        ),
    );
    if resume {
        ctx.log(
            Level::Info,
            format!(
                "resuming run {} from step {}",
                run.id,
                trainer::checkpoint_step(&run.dir).unwrap_or(0)
            ),
        );
    }
    let outcome = trainer::train_sealed(
        &model,
        &lora,
        &data.train,
        &data.val,
        &config,
        &record.hash,
        &run.dir,
        resume,
        &store.sealer(),
        |m| {
            let mut metrics = vec![
                ("loss", m.loss),
                ("lr", m.lr),
                ("grad_norm", m.grad_norm),
                ("tokens_per_s", m.tokens_per_s),
            ];
            if let Some(v) = m.val_loss {
                metrics.push(("val_loss", v));
            }
            ctx.measure(m.step, Some(m.steps), "steps", &metrics);
            if ctx.is_cancelled() {
                Control::Stop
            } else {
                Control::Continue
            }
        },
    );
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.updated_ms = chrono::Utc::now().timestamp_millis();
            registry::put_run(store, &run)?;
            return Err(e.into());
        }
    };
    run.curve = outcome.curve.clone();
    run.tokens_per_s = outcome.tokens_per_s;
    run.updated_ms = chrono::Utc::now().timestamp_millis();
    if !outcome.finished {
        run.status = RunStatus::Stopped;
        registry::put_run(store, &run)?;
        ctx.log(
            Level::Info,
            format!(
                "stopped; `twin train --resume` continues from step {}",
                trainer::checkpoint_step(&run.dir).unwrap_or(0)
            ),
        );
        return Err(Cancelled.into());
    }
    let id = format!("a{}", chrono::Utc::now().timestamp_millis());
    let path = setup.adapters_dir.join(format!("{id}.gguf"));
    let name = format!("twin LoRA {id} (run {})", run.id);
    super::adapter::export_sealed(
        &lora,
        &model.config.architecture,
        &name,
        &path,
        &store.sealer(),
    )?;
    let adapter = AdapterRecord {
        id: id.clone(),
        path,
        base: setup.base.clone(),
        base_hash: registry::file_hash(&setup.base)?,
        dataset_hash: record.hash.clone(),
        config: config.clone(),
        steps: config.steps,
        final_loss: outcome.curve.last().map(|m| m.loss),
        val_loss: outcome.final_val_loss,
        run: run.id.clone(),
        parent: None,
        created_ms: chrono::Utc::now().timestamp_millis(),
        active: false,
        stale: false,
        stale_reason: None,
    };
    registry::add_adapter(store, &adapter)?;
    run.status = RunStatus::Done;
    run.adapter = Some(id);
    registry::put_run(store, &run)?;
    Ok(TrainSummary {
        run: run.id,
        dataset: record.hash,
        base: setup.base.clone(),
        resumed_from: outcome.resumed_from,
        steps: config.steps,
        parameters: outcome.parameters,
        first_loss: outcome.curve.first().map(|m| m.loss),
        final_loss: outcome.curve.last().map(|m| m.loss),
        val_loss: outcome.final_val_loss,
        tokens_per_s: outcome.tokens_per_s,
        curve: outcome.curve,
        adapter: Some(adapter),
    })
}

/// What `twin adapters` does.
#[derive(Debug, Clone)]
pub enum AdaptersCmd {
    List,
    Activate(String),
    Deactivate,
    Delete(String),
}

#[derive(Debug, Serialize)]
pub struct AdaptersSummary {
    pub adapters: Vec<AdapterRecord>,
    pub active: Option<String>,
    /// What this command changed, in words.
    pub changed: Option<String>,
}

impl fmt::Display for AdaptersSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.changed {
            writeln!(f, "{c}")?;
        }
        if self.adapters.is_empty() {
            return write!(f, "no adapters yet: `twin train` makes one");
        }
        for a in &self.adapters {
            writeln!(
                f,
                "{} {}  {} steps, loss {}, val {}{}  {}",
                if a.active { "*" } else { " " },
                a.id,
                a.steps,
                a.final_loss.map_or("-".into(), |v| format!("{v:.3}")),
                a.val_loss.map_or("-".into(), |v| format!("{v:.3}")),
                if a.stale { "  stale" } else { "" },
                a.path.display()
            )?;
            if a.stale {
                writeln!(
                    f,
                    "    stale: {}; {}",
                    a.stale_reason
                        .as_deref()
                        .unwrap_or("trained on data you forgot"),
                    registry::RETRAIN_HINT
                )?;
            }
        }
        Ok(())
    }
}

impl Summary for AdaptersSummary {}

/// `twin adapters [list|activate ID|deactivate|delete ID]`.
pub fn adapters(store: &Store, cmd: &AdaptersCmd) -> anyhow::Result<AdaptersSummary> {
    let changed = match cmd {
        AdaptersCmd::List => None,
        AdaptersCmd::Activate(id) => {
            registry::activate(store, Some(id))?;
            Some(format!("adapter {id} is active: chat uses it"))
        }
        AdaptersCmd::Deactivate => {
            registry::activate(store, None)?;
            Some("no adapter is active: chat uses the bare model".into())
        }
        AdaptersCmd::Delete(id) => {
            let a = registry::delete(store, id)?;
            Some(format!("deleted adapter {id} ({})", a.path.display()))
        }
    };
    let adapters = registry::adapters(store)?;
    Ok(AdaptersSummary {
        active: adapters.iter().find(|a| a.active).map(|a| a.id.clone()),
        adapters,
        changed,
    })
}
