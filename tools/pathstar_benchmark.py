"""Training throughput of the path-star model on this machine, and the fraction of matmul peak it reaches.

    python tools/pathstar_benchmark.py ntp_lib/data/pathstar/benchmark.json

Measures (one torch thread, as the notebooks run): the fp32 matmul FLOP/s of a 512x512 @ 512x512
product (this machine's practical peak for the sizes involved), then 30 training steps of the book's
2x64 GPT on G(2,5) at batch 256 through ``ntp_lib.train``. Training FLOPs are counted as
6 x (non-embedding parameters) per token plus the attention scores (6 x n_layer x T x C per token,
forward and backward), the usual estimate (Kaplan et al., 2020).
"""

import json
import sys
import time

import torch

import ntp_lib
from ntp_lib.models import build_model
from ntp_lib.pathstar import PathStar
from ntp_lib.runtime import machine
from ntp_lib.train import TrainConfig, epoch_batches, train


def matmul_flops(n: int = 512, reps: int = 50) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def main(out: str) -> None:
    ntp_lib.setup(seed=0, figures=False)
    task = PathStar(2, 5, 50)
    layers, width, steps, batch = 2, 64, 30, 256
    x, y = task.make_dataset(task.sample(batch * steps, seed=1)["tokens"])
    model = build_model("gpt", task.vocab_size, task.seq_len - 1, layers, width)
    indices = epoch_batches(len(x), batch)
    peak = matmul_flops()
    t0 = time.perf_counter()
    train(model, TrainConfig(steps=steps, warmup_steps=1, progress=False), lambda s, g: (x[indices(s)], y[indices(s)]))
    seconds = time.perf_counter() - t0
    T = task.seq_len - 1
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("wte", "wpe")))
    flops_per_token = 6 * non_embedding + 6 * layers * T * width + 6 * width * task.vocab_size
    tokens_per_s = steps * batch * T / seconds
    result = {"tokens_per_s": round(tokens_per_s), "matmul_flops_per_s": round(peak),
              "train_flops_per_s": round(tokens_per_s * flops_per_token),
              "fraction_of_matmul_peak": round(tokens_per_s * flops_per_token / peak, 4),
              "flops_per_token": flops_per_token, "model": f"gpt {layers}x{width}", "task": str(task),
              "batch_size": batch, "steps": steps, "threads": torch.get_num_threads(),
              "command": "python tools/pathstar_benchmark.py " + out, "machine": machine(),
              "ntp_lib_version": ntp_lib.__version__}
    json.dump(result, open(out, "w"), indent=1, sort_keys=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
