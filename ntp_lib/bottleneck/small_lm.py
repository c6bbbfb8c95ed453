"""Small language models and the softmax bottleneck: train one, trace its head, refit its head at rank r.

Godey, de la Clergerie & Sagot (COLM 2024, arXiv:2404.07647) at CPU scale:

- :func:`train_small_lm` trains a :class:`ntp_lib.gpt.GPT` with an untied head (as Pythia) on the
  offline corpus and traces :func:`lm_metrics` (validation loss, last-layer anisotropy §4.2, singular
  entropy of the head §4.3) through training;
- :func:`frozen_features`, :func:`fit_head` and :func:`head_loss` refit a head on the frozen final
  features; :func:`rank_heads` does it for heads W = A B of rank r (§5.1);
- :func:`causal_lm_states`: every layer's hidden states of a pretrained Hugging Face causal LM (such as
  :func:`ntp_lib.models.load_smollm2`) on evenly spaced windows of a token stream, window by window.

Shape letters: N tokens or positions, T block size, d hidden size, V vocabulary, r head rank.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ntp_lib.bottleneck.heads import FullHead, LowRankHead
from ntp_lib.bottleneck.metrics import anisotropy, head_spectrum
from ntp_lib.gpt import GPT, GPTConfig
from ntp_lib.lm import fixed_windows, random_crops
from ntp_lib.train import TrainConfig, train


@torch.no_grad()
def lm_metrics(model: GPT, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Validation loss, last-layer anisotropy (before and after the final LayerNorm), singular
    entropy and effective rank of the LM head: the quantities Godey et al. §4 trace through training.

    Also ``spectrum``: the head's normalized singular values p_i = sigma_i / sum_j sigma_j (d floats,
    decreasing; :func:`ntp_lib.bottleneck.metrics.singular_distribution`), what the paper's Figure 4
    plots at each checkpoint.
    """
    states = model.hidden_states(x)
    logits = model.lm_head(states[-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    head = head_spectrum(model.lm_head.weight)
    return {"val_loss": float(loss), "anisotropy": anisotropy(states[-1].reshape(-1, states[-1].shape[-1])),
            "anisotropy_pre_ln": anisotropy(states[-2].reshape(-1, states[-2].shape[-1])),
            "singular_entropy": head["singular_entropy"], "effective_rank": head["effective_rank"],
            "spectrum": head["p"].tolist()}


def train_small_lm(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, n_embd: int = 64,
                   n_layer: int = 2, n_head: int = 2, block_size: int = 64, batch_size: int = 16,
                   steps: int = 600, lr: float = 3e-3, eval_every: int = 50, n_eval: int = 32,
                   seed: int = 0) -> tuple[GPT, list[dict[str, Any]]]:
    """Train a small causal LM with an untied head (as Pythia) and trace :func:`lm_metrics`.

    ``train_loss`` is measured on ``n_eval`` fixed windows of the training stream, so that
    overfitting (train falls, validation rises) can be told apart from saturation.

    Metrics are recorded at step 0 and every ``eval_every`` steps: these are the run's "checkpoints".

    Returns:
        ``(model, history)``, one history row per evaluation: step, tokens, and the metrics of
        :func:`lm_metrics` (the head's normalized spectrum under ``spectrum``).
    """
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                    n_embd=n_embd, tie_weights=False)
    model = GPT(cfg)
    xv, yv = fixed_windows(val_ids, n_eval, block_size)
    xt, yt = fixed_windows(train_ids, n_eval, block_size)

    def record(step: int, m: GPT) -> dict[str, Any]:
        with torch.no_grad():
            train_loss = float(m(xt, yt)[1])
        row = {"step": step, "tokens": step * batch_size * block_size, "train_loss": train_loss,
               **lm_metrics(m, xv, yv)}
        return row

    model.eval()
    history = [record(0, model)]
    tcfg = TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20), eval_every=eval_every,
                       log_every=0, seed=seed, progress=False)
    rows = train(model, tcfg, random_crops(train_ids, block_size, batch_size),
                 callback=lambda step, m: record(step, m))
    history += [{k: r[k] for k in history[0]} for r in rows]
    return model, history


@torch.no_grad()
def frozen_features(model: GPT, ids: torch.Tensor, n: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Final-layer features (n * T, d) of a frozen model and their next tokens (n * T,)."""
    x, y = fixed_windows(ids, n, block_size)
    h = model.hidden_states(x)[-1]
    return h.reshape(-1, h.shape[-1]), y.reshape(-1)


def fit_head(head: torch.nn.Module, H: torch.Tensor, y: torch.Tensor, steps: int = 300, lr: float = 1e-2,
             batch_size: int = 1024, seed: int = 0, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Train a head (features (N, d) -> log-probs (N, V)) on frozen features with :func:`ntp_lib.train.train`,
    on ``device`` (batches of H and y, kept where they are, are moved there one at a time)."""
    n = H.shape[0]

    def get_batch(step: int, g: torch.Generator):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        return H[idx], y[idx]

    cfg = TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20), log_every=0, seed=seed,
                      progress=False)
    train(head, cfg, get_batch, loss_fn=lambda m, a, b: F.nll_loss(m(a), b), device=device)
    return head


@torch.no_grad()
def head_loss(head: torch.nn.Module, H: torch.Tensor, y: torch.Tensor) -> float:
    """Mean next-token loss of a head on features H (N, d) with targets y (N,), computed where the head is."""
    dev = next(head.parameters()).device
    return float(F.nll_loss(head(H.to(dev)), y.to(dev)))


def rank_heads(model: GPT, train_ids: torch.Tensor, val_ids: torch.Tensor,
               ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64), n_train: int = 2048, n_val: int = 64,
               steps: int = 400, lr: float = 1e-2, seed: int = 0) -> dict[str, Any]:
    """Godey et al. §5.1 at CPU scale: heads W = A B of rank r on the frozen final features.

    Also reports the model's own head and a full-rank head retrained the same way (the fair
    reference for the low-rank heads: same data, same steps).
    """
    block = model.config.block_size
    d, V = model.config.n_embd, model.config.vocab_size
    Htr, ytr = frozen_features(model, train_ids, n_train, block)
    Hva, yva = frozen_features(model, val_ids, n_val, block)
    out: dict[str, Any] = {"ranks": list(ranks), "loss": [], "d": d, "vocab_size": V}
    with torch.no_grad():
        out["loss_own_head"] = float(F.cross_entropy(model.lm_head(Hva), yva))
    torch.manual_seed(seed)
    full = fit_head(FullHead(d, V), Htr, ytr, steps, lr, seed=seed)
    out["loss_full"] = head_loss(full, Hva, yva)
    for r in ranks:
        torch.manual_seed(seed)
        head = fit_head(LowRankHead(d, V, r), Htr, ytr, steps, lr, seed=seed)
        out["loss"].append(head_loss(head, Hva, yva))
    return out


@torch.no_grad()
def causal_lm_states(hf_model: torch.nn.Module, ids: torch.Tensor, n: int, block_size: int
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer's hidden states of a Hugging Face causal LM on ``n`` evenly spaced windows of ``ids``.

    The windows are :func:`ntp_lib.lm.fixed_windows` ``(ids, n, block_size)``. Each window goes through
    the model's base (``hf_model.base_model``, called with ``output_hidden_states=True``) on its own,
    so the head's (T, V) logits are never formed: for V = 49,152 they would dwarf the features.

    Returns:
        ``(states, targets)``: ``states`` a list of L + 1 tensors (n, T, d), the embeddings first and,
        for Llama-style models, the last one after the final norm (the features the head reads);
        ``targets`` (n, T), the next token of every position.
    """
    x, y = fixed_windows(ids, n, block_size)
    if int(x.max()) >= hf_model.config.vocab_size:
        raise ValueError(f"token ids must lie in [0, {hf_model.config.vocab_size}), got max {int(x.max())}")
    per_window = [hf_model.base_model(input_ids=w[None], output_hidden_states=True).hidden_states for w in x]
    states = [torch.cat([h[i] for h in per_window]) for i in range(len(per_window[0]))]
    return states, y
