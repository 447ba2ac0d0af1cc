"""The PEFT side of scripts/bench-train: LoRA r16/alpha32 on the 7 projections
of the same GGUF (dequantized to f32 by transformers), trained on the same token
sequences as twin (its saved training set), batch 1, AdamW, loss on the same
mask. Prints tokens/s (real tokens through the model per second of training)."""
import json
import os
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

model_path, set_path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(42)
torch.set_num_threads(os.cpu_count() or 1)
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
tokens = 0
start = None
for step in range(steps + 1):  # step 0 warms up and is not timed
    e = examples[step % len(examples)]
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
print(tokens / (time.perf_counter() - start))
