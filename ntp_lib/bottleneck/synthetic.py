"""Synthetic targets for the softmax bottleneck: ideal logits of a chosen spectrum, and fitting them.

The "ideal representations" setting of Godey, de la Clergerie & Sagot (COLM 2024, arXiv:2404.07647),
Theorem 5.3: :func:`spectrum_logits` builds target logits L* (C, V) whose ideal head has a chosen
singular spectrum; :func:`fit_distributions` fits a model (free contexts + a head, see
:mod:`ntp_lib.bottleneck.heads`) to the target distributions softmax(L*) and returns the loss gap,
the mean KL(p* || q), measured with :func:`soft_cross_entropy` minus the floor :func:`entropy`.

Shape letters: C contexts, V vocabulary, k = len(spectrum).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn


def spectrum_logits(num_contexts: int, vocab_size: int, spectrum: Any,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ideal logits L* = U diag(s) Q^T (C, V) with a chosen singular spectrum s (k,), k <= min(C, V).

    U (C, k) and Q (V, k) have orthonormal columns, so the ideal representations U are orthonormal
    and the ideal head W* = Q diag(s) (V, k) has singular values exactly ``spectrum``: the setting
    of Godey et al.'s Theorem 5.3. The target next-token distributions are softmax(L*) row-wise.

    Returns:
        (logits (C, V), W_star (V, k)), float64.
    """
    s = torch.as_tensor(np.asarray(spectrum, dtype=np.float64))
    if s.dim() != 1 or s.numel() < 1 or not torch.isfinite(s).all():
        raise ValueError(f"spectrum must be a finite 1-D vector, got shape {tuple(s.shape)}")
    k = s.numel()
    if num_contexts < k or vocab_size < k:
        raise ValueError(f"need num_contexts >= len(spectrum) and vocab_size >= len(spectrum), got "
                         f"{num_contexts}, {vocab_size}, {k}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(num_contexts, k, generator=g, dtype=torch.float64))
    Q, _ = torch.linalg.qr(torch.randn(vocab_size, k, generator=g, dtype=torch.float64))
    W_star = Q * s
    return U @ W_star.T, W_star


def soft_cross_entropy(log_q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_v p_v log q_v, for targets ``p`` (N, V) and log-probabilities (N, V)."""
    return -(p * log_q).sum(-1).mean()


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean row entropy -sum_v p_v log p_v of a distribution matrix (N, V): the loss floor."""
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1).mean()


def fit_distributions(model: nn.Module, targets: torch.Tensor, steps: int = 1000, lr: float = 0.03,
                      seed: int = 0) -> float:
    """Fit ``model`` (context ids (C,) -> log-probabilities (C, V)) to target rows ``targets`` (C, V).

    Full-batch AdamW on the soft cross-entropy through :func:`ntp_lib.train.train` (warmup, cosine
    decay). Returns the final loss minus the targets' entropy: the mean KL(p* || q) >= 0, the
    "loss gap" of Godey et al. Theorem 5.3.
    """
    from ntp_lib.train import TrainConfig, train

    targets = torch.as_tensor(targets, dtype=torch.float32)
    if targets.dim() != 2 or not torch.isfinite(targets).all():
        raise ValueError(f"targets must be a finite (C, V) matrix, got shape {tuple(targets.shape)}")
    ids = torch.arange(targets.shape[0])
    cfg = TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20), seed=seed, log_every=0,
                      progress=False)
    train(model, cfg, lambda step, g: (ids, targets), loss_fn=lambda m, x, y: soft_cross_entropy(m(x), y))
    with torch.no_grad():
        return float(soft_cross_entropy(model(ids), targets) - entropy(targets))
