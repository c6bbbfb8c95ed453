"""Training throughput of the path-star model on this machine, the fraction of matmul peak it reaches, and
(optionally) its speed against the reference implementation of Bachmann & Nagarajan (2024).

    python tools/pathstar_benchmark.py ntp_lib/data/pathstar/benchmark.json
    python tools/pathstar_benchmark.py OUT.json --reference PATH   # PATH: a checkout of the reference code

Everything is timed in one process on one torch thread (as the notebooks run), *interleaved*: after every
training step of the book's 2x64 GPT on G(2,5) at batch 256 (through ``ntp_lib.train``, clipping and
schedule included), the same process times a block of fp32 512x512 @ 512x512 products (this machine's
practical peak for the sizes involved) and, with ``--reference``, one training step of the reference
code's GPT on the same batch (AdamW, no clipping, fp32 on a CPU, as its train.py runs there). A machine's
load then slows all of them alike, and the medians give rates and ratios that mean something on a shared
machine. Training FLOPs are counted as 6 x (non-embedding parameters) per token plus the attention scores
(6 x n_layer x T x C per token) and the output layer (6 x C x V), the usual estimate (Kaplan et al., 2020).

The reference code is not part of this book: ``--reference`` imports ``models.gpt.GPT`` from the folder a
reader gives (github.com/gregorbachmann/Next-Token-Failures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import ntp_lib
from ntp_lib.gpt import IGNORE_INDEX
from ntp_lib.models import build_model
from ntp_lib.pathstar import PathStar
from ntp_lib.runtime import machine
from ntp_lib.train import TrainConfig, epoch_batches, train


def matmul_seconds(n: int = 512, reps: int = 4) -> float:
    """Seconds for one n x n @ n x n fp32 product (mean over ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return (time.perf_counter() - t0) / reps


def reference_step(path: str, task: PathStar, layers: int, width: int, x: torch.Tensor, y: torch.Tensor):
    """A function running one training step of the reference code's GPT on (x, y), and its commit."""
    sys.path.insert(0, path)
    from models.config import GPTConfig as RefConfig  # the reference code, from the reader's checkout
    from models.gpt import GPT as RefGPT

    T = task.seq_len - 1
    ref = RefGPT(RefConfig(block_size=T, vocab_size=task.vocab_size, n_layers=layers, n_heads=max(1, width // 64),
                           n_embd=width, use_flash=False, cache=False, teacherless_token=None))
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-4, weight_decay=0.0)
    y_ref = torch.where(y == IGNORE_INDEX, -1, y)  # the reference's ignore index

    def step() -> None:
        loss = ref(x, y_ref)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    try:
        commit = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return step, commit


def main(out: str, reference: str | None = None, steps: int = 30) -> dict:
    ntp_lib.setup(seed=0, threads=1, figures=False)
    task = PathStar(2, 5, 50)
    layers, width, batch = 2, 64, 256
    T = task.seq_len - 1
    x, y = task.make_dataset(task.sample(batch * steps, seed=1)["tokens"])
    model = build_model("gpt", task.vocab_size, T, layers, width)
    indices = epoch_batches(len(x), batch)
    ref_step, ref_commit = (reference_step(reference, task, layers, width, x[:batch], y[:batch])
                            if reference else (None, None))
    step_s, matmul_s, ref_s = [], [], []
    last = [time.perf_counter()]

    def between_steps(step: int, m: torch.nn.Module) -> None:
        step_s.append(time.perf_counter() - last[0])
        matmul_s.append(matmul_seconds())
        if ref_step is not None:
            t0 = time.perf_counter()
            ref_step()
            ref_s.append(time.perf_counter() - t0)
        last[0] = time.perf_counter()

    train(model, TrainConfig(steps=steps, warmup_steps=1, eval_every=1, progress=False),
          lambda s, g: (x[indices(s)], y[indices(s)]), callback=between_steps)
    skip = min(3, steps - 1)  # the first steps warm up allocators and caches
    step_med, mm_med = statistics.median(step_s[skip:]), statistics.median(matmul_s[skip:])
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("wte", "wpe")))
    flops_per_token = 6 * non_embedding + 6 * layers * T * width + 6 * width * task.vocab_size
    tokens_per_s = batch * T / step_med
    peak = 2 * 512**3 / mm_med
    result = {"tokens_per_s": round(tokens_per_s), "matmul_flops_per_s": round(peak),
              "train_flops_per_s": round(tokens_per_s * flops_per_token),
              "fraction_of_matmul_peak": round(tokens_per_s * flops_per_token / peak, 4),
              "flops_per_token": flops_per_token, "model": f"gpt {layers}x{width}", "task": str(task),
              "batch_size": batch, "steps": steps, "threads": torch.get_num_threads(), "timing": "interleaved medians",
              "command": " ".join(["python tools/pathstar_benchmark.py", out] + (["--reference", "PATH"] if reference
                                                                                 else [])),
              "machine": machine(), "ntp_lib_version": ntp_lib.__version__}
    if ref_step is not None:
        ref_med = statistics.median(ref_s[skip:])
        result.update(reference_tokens_per_s=round(batch * T / ref_med),
                      speedup_vs_reference=round(ref_med / step_med, 3),
                      reference_code="github.com/gregorbachmann/Next-Token-Failures", reference_commit=ref_commit)
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="where to write the JSON result")
    parser.add_argument("--reference", help="a checkout of github.com/gregorbachmann/Next-Token-Failures")
    parser.add_argument("--steps", type=int, default=30, help="training steps timed (default: 30)")
    args = parser.parse_args()
    main(args.out, args.reference, args.steps)
