#!/usr/bin/env python3
"""Reference data for KernelsTests, made with gguf-py (an independent implementation of
ggml's block formats). Run with /work/venv-ref/bin/python; writes
Tests/Fixtures/kernels/dequant.json:

- "random": for every weight type, 2 blocks of random bytes (f16 scale fields replaced by
  finite values) base64-encoded, and gguf-py's dequantization of them;
- "model": first and last rows of real tensors of each type in the fetched models, by name,
  with gguf-py's dequantization (tests read the bytes from the GGUF themselves).
"""
import base64, json, os, sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.expanduser("~/.cache/steward/models")
rng = np.random.default_rng(1234)

# byte offsets of f16 fields inside each block (ggml-common.h)
F16_FIELDS = {
    T.Q4_0: (18, [0]), T.Q4_1: (20, [0, 2]), T.Q5_0: (22, [0]), T.Q5_1: (24, [0, 2]),
    T.Q8_0: (34, [0]), T.Q2_K: (84, [80, 82]), T.Q3_K: (110, [108]),
    T.Q4_K: (144, [0, 2]), T.Q5_K: (176, [0, 2]), T.Q6_K: (210, [208]),
}

def rand_blocks(t, n=2):
    size, fields = F16_FIELDS[t]
    raw = rng.integers(0, 256, size=size * n, dtype=np.uint8)
    for b in range(n):
        for off in fields:
            v = np.float16(rng.uniform(-0.05, 0.05)).view(np.uint16)
            raw[b * size + off] = v & 0xFF
            raw[b * size + off + 1] = v >> 8
    return raw

def fl(a):
    return [float(f"{x:.9g}") for x in np.asarray(a, dtype=np.float32).ravel()]

out = {"random": [], "model": []}
for t in F16_FIELDS:
    raw = rand_blocks(t)
    vals = dequantize(raw, t)
    out["random"].append({"type": t.name, "bytes": base64.b64encode(raw.tobytes()).decode(), "values": fl(vals)})

picks = [
    ("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct", ["blk.0.attn_q.weight", "token_embd.weight"]),
    ("gemma-3-270m/gemma-3-270m-Q4_K_M.gguf", "gemma-3-270m",
     ["blk.0.attn_k.weight", "blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.0.attn_v.weight"]),
]
for rel, model, names in picks:
    r = gguf.GGUFReader(os.path.join(MODELS, rel))
    by = {t.name: t for t in r.tensors}
    for name in names:
        t = by[name]
        rows = dequantize(t.data, t.tensor_type)  # shape (rows, cols)
        rows = rows.reshape(-1, int(t.shape[0]))
        out["model"].append({"model": model, "tensor": name, "type": t.tensor_type.name,
                             "rows": [0, rows.shape[0] - 1], "values": [fl(rows[0]), fl(rows[-1])]})

path = os.path.join(ROOT, "Tests/Fixtures/kernels/dequant.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote", path, os.path.getsize(path), "bytes")
