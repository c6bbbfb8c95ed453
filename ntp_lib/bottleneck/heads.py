"""Softmax heads on frozen features (``torch.nn.Module``, ``forward(h) -> log-probabilities``).

:class:`FullHead` (W of rank up to min(V, d)), :class:`LowRankHead` (W = A B of rank r, Godey,
de la Clergerie & Sagot, COLM 2024, arXiv:2404.07647, §5.1) and :class:`MixtureOfSoftmaxes`, which
escapes the rank bound (Yang et al., ICLR 2018, "Breaking the Softmax Bottleneck", §3.3);
:class:`ContextModel` gives each of C synthetic contexts a free vector, so that a head can be fitted
to a target distribution matrix (see :mod:`ntp_lib.bottleneck.synthetic`).

Rank-r heads without training, for a pretrained head too large to retrain on a CPU (V = 49,152):
:func:`truncated_head` factors a head so that its first r factors are its best rank-r truncation,
either of W itself (truncated SVD) or of the logits it produces on given features, and
:func:`truncated_head_losses` evaluates the cross-entropy of the truncations for several r;
:func:`feature_energy` says how much the features vary along each singular direction of the head.

Shape letters: N tokens, d hidden size, V vocabulary, r head rank, K mixture components, C contexts.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ntp_lib.bottleneck.metrics import _check_rank
from ntp_lib.runtime import as_finite_array, check_positive_ints


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


def _check_features_and_head(H, W) -> None:
    if H.dim() != 2 or W.dim() != 2 or H.shape[1] != W.shape[1]:
        raise ValueError(f"H must be (N, d) and W (V, d) with the same d, got {tuple(H.shape)} and {tuple(W.shape)}")


def truncated_head(W, fit_features=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors A (V, d) and B (d, d) of a head W (V, d), ordered so that A[:, :r] @ B[:r] is a rank-r
    truncation of W for every r (and A @ B = W).

    - ``fit_features=None``: the best rank-r approximation of W in Frobenius norm (Eckart-Young-Mirsky),
      W_r = W Q_r Q_r^T with Q the right singular vectors of W: the truncation whose error the
      W-error of Godey et al. §5.2 measures.
    - ``fit_features=H`` (N, d): the best rank-r approximation of the **logits** H W^T in Frobenius
      norm. With the features' second moment H^T H / N = L L^T (Cholesky), it is the truncated SVD of
      M = W L mapped back: W_r = M Q_r Q_r^T L^{-1}, Q the right singular vectors of M. This weighs
      each direction of W by how much the features vary along it.

    Both are rank-r heads, so either one's loss bounds from above the loss of the best rank-r head
    on the same tokens. Computed in float64 from the d x d matrix M^T M (cheap for any V); returned in
    W's dtype.

    Raises:
        ValueError: if W is not a finite (V, d) matrix, or fit_features not a finite (N, d) matrix of
            full column rank (N >= d).
    """
    Wt = torch.as_tensor(W).detach()
    W64 = torch.from_numpy(as_finite_array("W", Wt, 2))
    d = W64.shape[1]
    if fit_features is None:
        L = torch.eye(d, dtype=torch.float64)
    else:
        H = torch.from_numpy(as_finite_array("fit_features", fit_features, 2))
        if H.shape[1] != d or H.shape[0] < d:
            raise ValueError(f"fit_features must have shape (N, {d}) with N >= {d}, got {tuple(H.shape)}")
        L, info = torch.linalg.cholesky_ex(H.T @ H / H.shape[0])
        if int(info) != 0:
            raise ValueError("fit_features must have full column rank: its second moment is singular")
    M = W64 @ L                                           # (V, d)
    _, Q = torch.linalg.eigh(M.T @ M)                     # eigenvalues ascending: the right singular vectors of M
    Q = Q.flip(-1)
    A = M @ Q                                             # (V, d): U S of M's SVD
    # B = Q^T L^{-1}, so that A B = W L Q Q^T L^{-1} = W: B^T solves L^T X = Q.
    B = Q.T if fit_features is None else torch.linalg.solve_triangular(L.T, Q, upper=True).T
    return A.to(Wt.dtype), B.to(Wt.dtype)


@torch.no_grad()
def truncated_head_losses(H, y, W, ranks, fit_features=None, chunk_size: int = 1024) -> list[float]:
    """Mean cross-entropy (nats/token) of the rank-r truncations of a head W (V, d) on features H (N, d).

    For each r in ``ranks``: -1/N sum_n log softmax(h_n W_r^T)[y_n], with W_r of :func:`truncated_head`
    (``fit_features=None``: truncated SVD of W; ``fit_features=H_fit``: the truncation that best keeps
    the logits on H_fit). r = min(V, d) gives the full head's loss. Computed in chunks of
    ``chunk_size`` tokens, so no (N, V) matrix is formed; the logits of a chunk are
    ((H_c B^T)[:, :r]) (A[:, :r])^T, which costs O(chunk r V).

    Args:
        H: (N, d) features (the final layer's output, what the head reads), a tensor.
        y: (N,) next tokens, ints in [0, V).
        W: (V, d) the head.
        ranks: ranks r, each an int in [0, min(V, d)] (r = 0 gives log V, the uniform prediction).

    Returns:
        one loss per rank, in the order of ``ranks``.
    """
    H, y, W = torch.as_tensor(H), torch.as_tensor(y), torch.as_tensor(W).detach()
    _check_features_and_head(H, W)
    V, d = W.shape
    if y.shape != (H.shape[0],) or y.dtype.is_floating_point or int(y.min()) < 0 or int(y.max()) >= V:
        raise ValueError(f"y must be {H.shape[0]} token ids in [0, {V}), got shape {tuple(y.shape)}, "
                         f"dtype {y.dtype}, range [{int(y.min())}, {int(y.max())}]")
    ranks = [_check_rank(r, min(V, d), "rank") for r in ranks]
    check_positive_ints(chunk_size=chunk_size)
    A, B = truncated_head(W, fit_features)
    A, B = A.to(H.dtype), B.to(H.dtype)
    totals = [0.0] * len(ranks)
    for start in range(0, H.shape[0], chunk_size):
        P = H[start:start + chunk_size] @ B.T               # (chunk, d): coordinates along the ordered factors
        t = y[start:start + chunk_size]
        for i, r in enumerate(ranks):
            logits = P[:, :r] @ A[:, :r].T                  # (chunk, V)
            totals[i] += float(F.cross_entropy(logits, t, reduction="sum"))
    return [total / H.shape[0] for total in totals]


@torch.no_grad()
def feature_energy(H, W) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's singular values and the features' energy along each of its singular directions.

    With W = U diag(sigma) Q^T (V, d), the logits of a feature h are sum_i sigma_i (h . q_i) u_i, so the
    mean squared logit along direction i is sigma_i^2 e_i with e_i = mean_n (h_n . q_i)^2. Truncating W
    to its r largest sigma_i drops the directions i > r whatever e_i is: a poor truncation when the
    features are large exactly where sigma_i is small.

    Args:
        H: (N, d) features; W: (V, d) the head.

    Returns:
        ``(sigma, e)``, both (d,) float64, in the order of decreasing sigma (sum_i e_i = mean_n ||h_n||^2).
    """
    H64 = torch.from_numpy(as_finite_array("H", H, 2))
    W64 = torch.from_numpy(as_finite_array("W", W, 2))
    _check_features_and_head(H64, W64)
    eigenvalues, Q = torch.linalg.eigh(W64.T @ W64)      # ascending
    sigma = eigenvalues.flip(-1).clamp(min=0).sqrt()
    e = ((H64 @ Q.flip(-1)) ** 2).mean(dim=0)
    return sigma, e
