"""Softmax heads on frozen features (``torch.nn.Module``, ``forward(h) -> log-probabilities``).

:class:`FullHead` (W of rank up to min(V, d)), :class:`LowRankHead` (W = A B of rank r, Godey,
de la Clergerie & Sagot, COLM 2024, arXiv:2404.07647, §5.1) and :class:`MixtureOfSoftmaxes`, which
escapes the rank bound (Yang et al., ICLR 2018, "Breaking the Softmax Bottleneck", §3.3);
:class:`ContextModel` gives each of C synthetic contexts a free vector, so that a head can be fitted
to a target distribution matrix (see :mod:`ntp_lib.bottleneck.synthetic`).

Shape letters: d hidden size, V vocabulary, r head rank, K mixture components, C contexts.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ntp_lib.bottleneck.metrics import _check_rank
from ntp_lib.runtime import check_positive_ints


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
