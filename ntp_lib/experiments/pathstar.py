"""Part II experiment: train a model on the path-star task and report the paper's diagnostics.

    python -m ntp_lib.experiments pathstar --objective standard --scale cpu
    python -m ntp_lib.experiments pathstar --objective teacherless --layers 4 --width 128 --device cuda

Prints one JSON line with ``train_exact_match``, ``test_exact_match``, ``clever_hans_accuracy``
(positions 3..l, as the reference code counts), ``clever_hans_accuracy_no_goal`` (3..l-1),
``indecipherable_accuracy`` (position 2), per-position accuracies, the history over training, the
configuration, the ``ntp_lib`` version and the machine. :func:`run_pathstar` is the same run as a
function (the notebooks call it).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import time
from typing import Any

import torch

import ntp_lib
from ntp_lib.models import MODEL_KINDS, build_model
from ntp_lib.pathstar import PathStar, check_model, evaluate, mask_target_inputs
from ntp_lib.runtime import check_positive_ints
from ntp_lib.train import TrainConfig, epoch_batches, train

OBJECTIVES = ("standard", "teacherless", "reverse", "masked")

#: The two scales. ``cpu`` is the book's default (minutes on a CPU), ``paper`` the README setting.
SCALES: dict[str, dict[str, Any]] = {
    "cpu": dict(degree=2, path_len=5, num_nodes=50, layers=2, width=64, heads=None, train_size=20_000,
                test_size=2_000, batch_size=256, lr=1e-3, epochs=80),
    "paper": dict(degree=2, path_len=5, num_nodes=50, layers=6, width=384, heads=6, train_size=200_000,
                  test_size=20_000, batch_size=256, lr=5e-4, epochs=100),
}


def machine() -> dict[str, Any]:
    """Where a run happened: platform, CPU count, torch version and threads, GPU name if any."""
    info = {"platform": platform.platform(), "processor": platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_count": __import__("os").cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_pathstar(objective: str = "standard", model: str = "gpt", degree: int = 2, path_len: int = 5,
                 num_nodes: int = 50, layers: int = 2, width: int = 64, heads: int | None = None,
                 train_size: int = 20_000, test_size: int = 2_000, batch_size: int = 256, lr: float = 1e-3,
                 epochs: float = 80, steps: int | None = None, evals: int = 10, mask_prob: float = 0.5,
                 seed: int = 0, device: str = "cpu", eval_size: int = 2_000,
                 progress: bool = False, return_model: bool = False) -> dict[str, Any]:
    """Train on ``train_size`` fresh graphs of G(degree, path_len, num_nodes) and evaluate on
    ``test_size`` held-out graphs (a different seed). ``steps`` overrides ``epochs``.

    Returns a dict: the final metrics (``train_*`` on up to ``eval_size`` training graphs, ``test_*``
    on the test set), ``history`` (``evals`` evaluations over training) and ``config``; with
    ``return_model=True`` also ``model``, ``task`` and the held-out ``test_data`` (not JSON-able).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if model not in MODEL_KINDS:
        raise ValueError(f"model must be one of {MODEL_KINDS}, got {model!r}")
    check_positive_ints(train_size=train_size, test_size=test_size, batch_size=batch_size, evals=evals)
    config = dict(objective=objective, model=model, degree=degree, path_len=path_len, num_nodes=num_nodes,
                  layers=layers, width=width, heads=heads, train_size=train_size, test_size=test_size,
                  batch_size=batch_size, lr=lr, epochs=epochs, steps=steps, evals=evals, seed=seed,
                  mask_prob=mask_prob if objective == "masked" else None)
    task = PathStar(degree, path_len, num_nodes)
    dev = ntp_lib.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(seed)
    net = build_model(model, task.vocab_size, task.seq_len - 1, layers, width, heads)
    check_model(net, task)
    data_objective = "standard" if objective == "masked" else objective
    train_data = task.sample(train_size, seed=2 * seed + 1)
    test_data = task.sample(test_size, seed=2 * seed + 2)
    x_tr, y_tr = (t.to(dev) for t in task.make_dataset(train_data["tokens"], data_objective))
    x_te, y_te = (t.to(dev) for t in task.make_dataset(test_data["tokens"], data_objective))
    n_eval = min(eval_size, train_size)
    batch_size = min(batch_size, train_size)
    indices = epoch_batches(train_size, batch_size, seed=seed)
    per_epoch = indices.steps_per_epoch
    total = int(steps) if steps is not None else max(1, round(epochs * per_epoch))
    eval_every = max(1, total // evals)

    def get_batch(step: int, g: torch.Generator):
        idx = indices(step).to(dev)
        x, y = x_tr[idx], y_tr[idx]
        if objective == "masked":
            x = mask_target_inputs(task, x, mask_prob, g)
        return x, y

    def callback(step: int, m: torch.nn.Module) -> dict[str, Any]:
        tr = evaluate(m, task, x_tr[:n_eval], y_tr[:n_eval], data_objective)
        te = evaluate(m, task, x_te, y_te, data_objective)
        return {"epoch": round(step / per_epoch, 3),
                **{f"train_{k}": v for k, v in tr.items()}, **{f"test_{k}": v for k, v in te.items()}}

    cfg = TrainConfig(steps=total, lr=lr, warmup_steps=min(100, total // 10), min_lr_ratio=0.1,
                      eval_every=eval_every, log_every=max(1, eval_every // 4), seed=seed, progress=progress)
    t0 = time.perf_counter()
    history = train(net, cfg, get_batch, callback=callback, device=dev)
    seconds = time.perf_counter() - t0
    evals_done = [h for h in history if "test_exact_match" in h]
    final = evals_done[-1]
    tokens = total * batch_size * (task.seq_len - 1)
    result = {k: v for k, v in final.items() if k.startswith(("train_", "test_"))}
    result.update({
        "clever_hans_accuracy": final["test_clever_hans_accuracy"],
        "clever_hans_accuracy_no_goal": final["test_clever_hans_accuracy_no_goal"],
        "indecipherable_accuracy": final["test_indecipherable_accuracy"],
        "chance": 1.0 / degree,
        "steps": total, "epochs_done": round(total / per_epoch, 3), "num_params": net.num_params(),
        "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
        "loss_curve": [[h["step"], round(h["loss"], 5)] for h in history],
        "history": [{k: v for k, v in h.items() if k != "tokens_per_s"} for h in evals_done],
        "config": config, "ntp_lib_version": ntp_lib.__version__, "machine": machine(),
    })
    if return_model:
        result.update(model=net, task=task, test_data=test_data)
    return result


def _run(args: argparse.Namespace) -> dict[str, Any]:
    params = dict(SCALES[args.scale])
    for key in ("degree", "path_len", "num_nodes", "layers", "width", "heads", "train_size", "test_size",
                "batch_size", "lr", "epochs"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    ntp_lib.setup(seed=args.seed, threads=args.threads, figures=False)
    result = run_pathstar(objective=args.objective, model=args.model, steps=args.steps, evals=args.evals,
                          mask_prob=args.mask_prob, seed=args.seed, device=args.device, **params)
    result["command"] = shlex.join(["python", "-m", "ntp_lib.experiments", *getattr(args, "argv", ["pathstar"])])
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pathstar", help="Part II: path-star task (Bachmann & Nagarajan 2024)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--objective", choices=OBJECTIVES, default="standard",
                   help="standard = teacher forcing; masked = token masking (Frydenlund 2025)")
    p.add_argument("--model", choices=MODEL_KINDS, default="gpt")
    p.add_argument("--scale", choices=tuple(SCALES), default="cpu")
    p.add_argument("--degree", type=int)
    p.add_argument("--path-len", dest="path_len", type=int)
    p.add_argument("--num-nodes", dest="num_nodes", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--train-size", dest="train_size", type=int)
    p.add_argument("--test-size", dest="test_size", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--epochs", type=float)
    p.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--evals", type=int, default=10, help="evaluations over training")
    p.add_argument("--mask-prob", dest="mask_prob", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(run=_run)
