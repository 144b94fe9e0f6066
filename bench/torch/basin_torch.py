#!/usr/bin/env python3
"""PyTorch (CPU) as Basin's peer: the same models, optimizer and batches as Basin, driven from Node.

Used by `basin bench train-step`, `basin bench matmul` (timing column) and by the parity test tier
(test/torch/): a long-lived subprocess that reads one JSON command per line on stdin and answers one JSON
object per line on stdout, so the Node side can alternate its own steps with PyTorch's (the same ABBA order as
the TF.js peer) and keep one warm process for a whole run. Tensors travel as safetensors files written by the
Node side (src/files/safetensors.ts); results that are tensors are written back as safetensors.

The models mirror src/engine/nn/models.ts and layers.ts parameter by parameter (same names, same layouts):
  Linear     y = x·Wᵀ + b, W [out, in] (torch.nn.functional.linear's layout)
  LayerNorm  eps from the spec (Basin: 1e-5), biased variance (as torch.nn.functional.layer_norm)
  GELU       the tanh approximation (kernels/elementwise.wgsl gelu_f) = F.gelu(approximate='tanh')
  attention  causal, softmax(q·kᵀ/√hd)·v per head, head h = columns h·hd … (h+1)·hd − 1 (ops/attention.ts)
  block      pre-LayerNorm: x + attn(ln1(x)), then x + mlp(ln2(x)); dropout is not modelled (specs use 0)
  loss       mean cross-entropy over rows whose target is not −1 (loss/cross-entropy.ts)
  AdamW      torch.optim.AdamW with the decay flags of Basin's parameter store (one group with λ, one with 0)
             and clip_grad_norm_ (min(1, max/(‖g‖ + 1e-6)), as kernels/optim.wgsl)
Commands: info | model | batch | step | grads | weights | mm_load | mm_batch | mm_result | quit.
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64, "F64": torch.float64}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        if end == start:
            t = torch.zeros(info["shape"], dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(data[base + start : base + end]), dtype=dtype).reshape(info["shape"])
        out[name] = t
    return out


def write_safetensors(path, tensors):
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def blas_info():
    """Which BLAS library this process has mapped (Debian's torch links libblas.so.3, an alternatives link:
    the reference BLAS is ~50x slower than OpenBLAS). Call after a matmul so the library is loaded."""
    a = torch.ones(64, 64)
    (a @ a).sum().item()
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(p)
                if "blas" in base or "lapack" in base or "mkl" in base:
                    libs.add(os.path.realpath(p))
    except OSError:
        pass
    libs = sorted(libs)
    joined = " ".join(libs)
    if "openblas" in joined:
        kind = "openblas" + ("-pthread" if "pthread" in joined else "-openmp" if "openmp" in joined else "")
    elif "mkl" in joined:
        kind = "mkl"
    elif "blis" in joined:
        kind = "blis"
    elif libs:
        kind = "reference"
    else:
        kind = "unknown"
    return {"kind": kind, "libraries": libs}


class Transformer(torch.nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def loss(self, p, inputs, targets):
        s = self.spec
        B, T = inputs.shape
        D, H = s["dModel"], s["heads"]
        hd = D // H
        eps = 1e-5
        x = p["tok.weight"][inputs.long()] + p["pos.weight"][:T]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        for i in range(s["layers"]):
            b = f"blocks.{i}."
            h = F.layer_norm(x, (D,), p[b + "ln1.weight"], p[b + "ln1.bias"], eps)
            q = F.linear(h, p[b + "attn.q.weight"], p[b + "attn.q.bias"]).view(B, T, H, hd).transpose(1, 2)
            k = F.linear(h, p[b + "attn.k.weight"], p[b + "attn.k.bias"]).view(B, T, H, hd).transpose(1, 2)
            v = F.linear(h, p[b + "attn.v.weight"], p[b + "attn.v.bias"]).view(B, T, H, hd).transpose(1, 2)
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, D)
            x = x + F.linear(y, p[b + "attn.o.weight"], p[b + "attn.o.bias"])
            h = F.layer_norm(x, (D,), p[b + "ln2.weight"], p[b + "ln2.bias"], eps)
            h = F.gelu(F.linear(h, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"]), approximate="tanh")
            x = x + F.linear(h, p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
        x = F.layer_norm(x, (D,), p["ln_f.weight"], p["ln_f.bias"], eps).reshape(B * T, D)
        logits = F.linear(x, p["head.weight"], p["head.bias"])
        return F.cross_entropy(logits, targets.long().reshape(-1), ignore_index=-1)


class Mlp(torch.nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def loss(self, p, features, targets):
        s = self.spec
        n = len(s["hidden"])
        h = features
        for i in range(n):
            h = F.linear(h, p[f"layers.{i}.weight"], p[f"layers.{i}.bias"])
            h = F.relu(h) if s.get("activation", "relu") == "relu" else F.gelu(h, approximate="tanh")
        logits = F.linear(h, p[f"layers.{n}.weight"], p[f"layers.{n}.bias"])
        return F.cross_entropy(logits, targets.long().reshape(-1), ignore_index=-1)


class State:
    def __init__(self):
        self.model = None
        self.params = {}
        self.order = []
        self.opt = None
        self.clip = 0.0
        self.batches = {}
        self.mm = None


def cmd_model(st, c):
    spec = c["spec"]
    st.model = Transformer(spec) if spec["type"] == "transformer" else Mlp(spec)
    w = read_safetensors(c["weights"])
    st.order = list(c.get("order") or w.keys())
    st.params = {n: w[n].clone().float().requires_grad_(True) for n in st.order}
    o = c["opt"]
    decay = set(c.get("decay", []))
    groups = [
        {"params": [st.params[n] for n in st.order if n in decay], "weight_decay": o.get("weightDecay", 0.0)},
        {"params": [st.params[n] for n in st.order if n not in decay], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    st.opt = torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))), eps=o.get("eps", 1e-8))
    st.clip = float(o.get("clip", 0.0))
    return {"params": sum(t.numel() for t in st.params.values()), "tensors": len(st.order)}


def cmd_batch(st, c):
    t = read_safetensors(c["file"])
    x = t["features"] if "features" in t else t["inputs"]
    st.batches[c["name"]] = (x, t["targets"])
    return {"rows": int(t["targets"].numel())}


def forward_backward(st, name):
    x, y = st.batches[name]
    st.opt.zero_grad(set_to_none=False)
    loss = st.model.loss(st.params, x, y)
    loss.backward()
    return loss


def cmd_step(st, c):
    t0 = time.perf_counter()
    if "lr" in c:
        for g in st.opt.param_groups:
            g["lr"] = c["lr"]
    loss = forward_backward(st, c["batch"])
    norm = None
    if st.clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(list(st.params.values()), st.clip))
    st.opt.step()
    value = loss.item()
    ms = (time.perf_counter() - t0) * 1000
    return {"loss": value, "ms": ms, "grad_norm": norm}


def cmd_grads(st, c):
    loss = forward_backward(st, c["batch"])
    write_safetensors(c["out"], {n: st.params[n].grad for n in st.order})
    return {"loss": loss.item()}


def cmd_weights(st, c):
    write_safetensors(c["out"], {n: st.params[n] for n in st.order})
    return {}


def cmd_mm_load(st, c):
    t = read_safetensors(c["file"])
    a, b = t["a"], t["b"]
    st.mm = {"a": a.t() if c.get("transA") else a, "b": b.t() if c.get("transB") else b, "last": None}
    return {}


def cmd_mm_batch(st, c):
    # The transposes are views: torch.matmul hands BLAS the transposed layout, as Basin's kernel reads it.
    a, b = st.mm["a"], st.mm["b"]
    n = int(c.get("n", 1))
    t0 = time.perf_counter()
    out = None
    for _ in range(n):
        out = torch.matmul(a, b)
    ms = (time.perf_counter() - t0) * 1000
    st.mm["last"] = out
    return {"ms_per_product": ms / n}


def cmd_mm_result(st, c):
    write_safetensors(c["out"], {"c": st.mm["last"].contiguous()})
    return {}


def cmd_info(st, c):
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "blas": blas_info(),
    }


COMMANDS = {
    "info": cmd_info,
    "model": cmd_model,
    "batch": cmd_batch,
    "step": cmd_step,
    "grads": cmd_grads,
    "weights": cmd_weights,
    "mm_load": cmd_mm_load,
    "mm_batch": cmd_mm_batch,
    "mm_result": cmd_mm_result,
}


def main():
    torch.manual_seed(0)
    st = State()
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            c = json.loads(line)
            if c.get("cmd") == "quit":
                break
            r = COMMANDS[c["cmd"]](st, c)
            r["ok"] = True
        except Exception as e:  # answered, not raised: the Node side reports it as the peer's "why"
            r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(r) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
