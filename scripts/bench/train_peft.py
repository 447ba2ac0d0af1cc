"""The PEFT side of scripts/bench-train: LoRA r16/alpha32 on the 7 projections
of the same GGUF (dequantized to f32 by transformers), trained on the same token
sequences as twin (its saved training set) in the same order (twin's epoch
permutation, re-derived here from the seed), batch 1, AdamW, loss on the same
mask, gradient clipping at 1.0. The first step warms up and is not timed, as on
twin's side. Prints one JSON object: tokens/s (real tokens through the model
per second of training), steps, tokens, seconds, threads."""
import json
import os
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

model_path, set_path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 42
threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
torch.manual_seed(seed)
torch.set_num_threads(threads)

M = (1 << 64) - 1


def permutation(n, seed, epoch):
    """twin's `trainer::permutation`: Fisher-Yates driven by SplitMix64."""
    state = (seed * 0x9E3779B9 + epoch) & M
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        z ^= z >> 31
        j = z % (i + 1)
        p[i], p[j] = p[j], p[i]
    return p


model = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(model_path), gguf_file=os.path.basename(model_path), torch_dtype=torch.float32
)
config = LoraConfig(
    r=16,
    lora_alpha=32,
    lora_dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    task_type="CAUSAL_LM",
)
model = get_peft_model(model, config)
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
examples = json.load(open(set_path))["train"]
n = len(examples)
perms = {}
tokens = 0
start = None
for step in range(steps):  # step 0 warms up and is not timed
    epoch = step // n
    perm = perms.setdefault(epoch, permutation(n, seed, epoch))
    e = examples[perm[step % n]]
    ids = torch.tensor([e["tokens"]])
    labels = torch.tensor([[t if m else -100 for t, m in zip(e["tokens"], e["mask"])]])
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    if step == 0:
        start = time.perf_counter()
    else:
        tokens += len(e["tokens"])
secs = time.perf_counter() - start
print(json.dumps({"tokens_per_s": tokens / secs, "steps": steps - 1, "tokens": tokens,
                  "seconds": secs, "threads": threads}))
