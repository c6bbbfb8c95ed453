"""Metrics of the softmax bottleneck: how much of its rank a head or a set of representations uses.

Godey, de la Clergerie & Sagot, *Why do small language models underperform? Studying language model
saturation via the softmax bottleneck* (COLM 2024, arXiv:2404.07647). NumPy arrays or torch tensors
in, Python floats out:

- :func:`anisotropy`: mean pairwise cosine similarity of a set of representations (Godey et al. §4.2),
  in O(N d) time and memory; :func:`layer_anisotropy` applies it to each layer of a model;
- :func:`singular_entropy`: KL divergence from the uniform distribution of the normalized singular
  values of a head (Godey et al. §4.3); :func:`singular_distribution` is that normalized spectrum
  (what the paper's Figure 4 plots across checkpoints), and :func:`head_spectrum` gives all of these
  from one SVD;
- :func:`w_error` and :func:`w_error_curve`: the Eckart-Young-Mirsky residual of the best rank-d
  approximation over the Frobenius norm (Godey et al. §5.2);
- :func:`effective_rank` (Roy & Vetterli 2007), :func:`numerical_rank` and :func:`singular_values`.

Shape letters: N representations, d hidden size, V vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ntp_lib.runtime import as_finite_array, check_int

# --------------------------------------------------------------------------- input checks

def _check_rank(d: Any, k: int, name: str = "d") -> int:
    return check_int(name, d, low=0, high=k, why="min(V, d) of the matrix")


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
    X = as_finite_array("X", X, 2, min_rows=2)
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"X has {int((norms == 0).sum())} zero rows: cosine similarity is undefined")
    s = (X / norms[:, None]).sum(axis=0)
    n = X.shape[0]
    return float((s @ s - n) / (n * n - n))


def singular_values(W: Any) -> np.ndarray:
    """Singular values of ``W`` (V, d) in decreasing order, shape (min(V, d),)."""
    return np.linalg.svd(as_finite_array("W", W, 2), compute_uv=False)


def _spectrum_distribution(sigma: np.ndarray, normalization: str) -> np.ndarray:
    allowed = ("sigma", "sigma2")
    if normalization not in allowed:
        raise ValueError(f"normalization must be one of {allowed}, got {normalization!r}")
    w = sigma if normalization == "sigma" else sigma ** 2
    total = w.sum()
    if total <= 0:
        raise ValueError("the matrix is zero: its singular-value distribution is undefined")
    return w / total


def singular_distribution(W: Any, normalization: str = "sigma") -> np.ndarray:
    """The normalized singular values p (k,) of ``W`` (V, d), decreasing, summing to 1; k = min(V, d).

    p_i = sigma_i / sum_j sigma_j (``normalization="sigma"``, the book's choice for the singular
    entropy) or sigma_i^2 / sum_j sigma_j^2 (``"sigma2"``). Plotted against i on a log scale across
    checkpoints, this is the kind of plot of Godey et al.'s Figure 4: a flat curve is a head that uses
    all its directions, a curve that drops after i = 1 is a head collapsed onto one direction.

    >>> singular_distribution(np.diag([3.0, 1.0])).round(2).tolist()
    [0.75, 0.25]
    """
    return _spectrum_distribution(singular_values(W), normalization)


def _entropy(p: np.ndarray) -> float:
    """H(p) = -sum_i p_i log p_i (0 log 0 = 0)."""
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def head_spectrum(W: Any, normalization: str = "sigma") -> dict[str, Any]:
    """Everything this module says about a head ``W`` (V, d), from one SVD (which costs seconds for a
    49,152 x 576 head).

    Returns:
        a dict with ``sigma`` (k,) the singular values, decreasing; ``p`` (k,) the
        :func:`singular_distribution`; ``singular_entropy`` and ``effective_rank`` (floats, as
        :func:`singular_entropy` and :func:`effective_rank` give them); ``log_k`` = log min(V, d),
        the largest possible singular entropy.
    """
    sigma = singular_values(W)
    p = _spectrum_distribution(sigma, normalization)
    h = _entropy(p)
    return {"sigma": sigma, "p": p, "singular_entropy": float(math.log(len(p)) - h),
            "effective_rank": float(np.exp(h)), "log_k": float(math.log(len(p)))}


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
    p = singular_distribution(W, normalization)
    return float(math.log(len(p)) - _entropy(p))


def effective_rank(W: Any, normalization: str = "sigma") -> float:
    """exp(H(p)) of the normalized singular values (Roy & Vetterli 2007), a number in [1, min(V, d)].

    It is ``k * exp(-singular_entropy(W))``: the two metrics carry the same information.

    >>> round(effective_rank(np.eye(5)), 3)
    5.0
    """
    return float(np.exp(_entropy(singular_distribution(W, normalization))))


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
