"""One training loop for every objective in the book (after minGPT's trainer).

The loop knows nothing about the task: it takes a model, a :class:`TrainConfig` and a
``get_batch(step, generator)`` function returning ``(x, y)`` tensors, and optionally a
``loss_fn(model, x, y)`` (default: the model's own cross-entropy) and a ``callback``
called every ``eval_every`` steps. Batches are drawn from a generator seeded by
``(seed, step)``, so a run resumed from a checkpoint continues exactly as if it had never stopped.

Schedule: linear warmup for ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr``,
counted in optimizer steps (not samples: a quirk of the path-star reference code).

>>> import torch
>>> from ntp_lib.gpt import GPT, GPTConfig
>>> from ntp_lib.train import TrainConfig, train
>>> model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=8))
>>> data = torch.randint(0, 5, (32, 5), generator=torch.Generator().manual_seed(0))
>>> get_batch = lambda step, g: (data[:, :-1], data[:, 1:])
>>> history = train(model, TrainConfig(steps=3, warmup_steps=1, progress=False), get_batch)
>>> [h["step"] for h in history]
[1, 2, 3]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ntp_lib.runtime import check_int, check_number, config_from_dict, progress

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainConfig:
    steps: int = 1000              # optimizer steps in total
    lr: float = 1e-3               # peak learning rate
    warmup_steps: int = 100        # linear warmup from 0 to lr
    min_lr_ratio: float = 0.1      # cosine decays to min_lr_ratio * lr at the last step
    weight_decay: float = 0.0      # AdamW decoupled weight decay (the reference code uses none)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0  # clip the global gradient norm; None to skip
    seed: int = 0                  # seeds batch order: batch k comes from Generator(seed * 1_000_003 + k)
    eval_every: int = 0            # call the callback every eval_every steps (0: only at the end)
    log_every: int = 1             # record the training loss every log_every steps
    checkpoint: str | None = None  # file to save to (and resume from, if it exists)
    checkpoint_every: int = 0      # save every this many steps (0: only at the end)
    progress: bool = True          # a tqdm bar on stderr (silent under CI)

    def __post_init__(self) -> None:
        check_int("TrainConfig.steps", self.steps, low=0)
        check_number("TrainConfig.lr", self.lr, low=0.0, low_open=True)
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        for name in ("eval_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build a config from a dict, refusing unknown keys (a typo should not pass silently)."""
        return config_from_dict(cls, d)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate before optimizer step ``step`` (0-based): linear warmup, then cosine decay."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress_frac = min(1.0, (step - cfg.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress_frac))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def batch_generator(cfg: TrainConfig, step: int) -> torch.Generator:
    """The generator that draws the batch of optimizer step ``step``: a function of (seed, step) only."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)


def epoch_batches(num_examples: int, batch_size: int, seed: int = 0) -> Callable[[int], torch.Tensor]:
    """Index sampler that walks through shuffled epochs: ``indices(step)`` -> LongTensor (batch_size,).

    Epoch e is a permutation seeded by (seed, e); the last incomplete batch of an epoch is dropped.

    >>> indices = epoch_batches(10, 4, seed=0)
    >>> sorted(indices(0).tolist() + indices(1).tolist()) == sorted(set(indices(0).tolist() + indices(1).tolist()))
    True
    """
    if num_examples < 1 or batch_size < 1:
        raise ValueError(f"need num_examples >= 1 and batch_size >= 1, got {num_examples}, {batch_size}")
    batch_size = min(batch_size, num_examples)
    per_epoch = num_examples // batch_size
    cache: dict[int, torch.Tensor] = {}

    def indices(step: int) -> torch.Tensor:
        epoch, k = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = torch.randperm(num_examples, generator=torch.Generator().manual_seed(
                seed * 1_000_003 + epoch))
        return cache[epoch][k * batch_size:(k + 1) * batch_size]

    indices.steps_per_epoch = per_epoch  # type: ignore[attr-defined]
    return indices


def default_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's own loss: ``model(x, y)`` must return ``(logits, loss)``."""
    return model(x, y)[1]


def train(model: torch.nn.Module, cfg: TrainConfig,
          get_batch: Callable[[int, torch.Generator], Batch],
          loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = default_loss,
          callback: Callable[[int, torch.nn.Module], dict[str, Any] | None] | None = None,
          device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Train ``model`` in place with AdamW; return the history, one dict per logged step.

    Each history row has ``step`` (1-based), ``loss``, ``lr``, ``tokens_per_s`` and, at evaluation
    steps, whatever ``callback(step, model)`` returned. A checkpoint (model, optimizer, step,
    history, config) is written to ``cfg.checkpoint`` if set, and training resumes from it.
    """
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
    history: list[dict[str, Any]] = []
    start = 0
    if cfg.checkpoint and os.path.exists(cfg.checkpoint):
        state = torch.load(cfg.checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]

    def save(step: int) -> None:
        if cfg.checkpoint:
            os.makedirs(os.path.dirname(os.path.abspath(cfg.checkpoint)), exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "history": history, "config": asdict(cfg)}, cfg.checkpoint)

    bar = progress(range(start, cfg.steps), total=cfg.steps, initial=start,
                   **({} if cfg.progress else {"disable": True}))
    tokens, t0 = 0, time.perf_counter()
    for step in bar:
        model.train()
        for group in opt.param_groups:  # set the scheduled learning rate
            group["lr"] = lr_at(step, cfg)
        x, y = get_batch(step, batch_generator(cfg, step))
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model, x, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step + 1}; lower TrainConfig.lr "
                                     f"(now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        tokens += x.numel()
        done = step + 1
        row: dict[str, Any] | None = None
        if cfg.log_every and done % cfg.log_every == 0:
            row = {"step": done, "loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
        is_eval = callback is not None and (done == cfg.steps or (cfg.eval_every and done % cfg.eval_every == 0))
        if is_eval:
            model.eval()
            extra = callback(done, model) or {}
            row = {"step": done, "loss": loss.item(), "lr": opt.param_groups[0]["lr"], **(row or {}), **extra}
        if row is not None:
            row["tokens_per_s"] = tokens / max(time.perf_counter() - t0, 1e-9)
            history.append(row)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
            save(done)
    model.eval()
    if cfg.steps > start:
        save(cfg.steps)
    return history
