"""Saturation: the Chinchilla scaling law with Godey et al.'s fit, and the Pythia token count.

Godey, de la Clergerie & Sagot (COLM 2024, arXiv:2404.07647), §3: small Pythia models saturate, their
loss rising late in training above what the scaling law L(N, T) = E + A / N^alpha + B / T^beta
(Hoffmann et al. 2022) predicts. :data:`SCALING_LAW` holds the constants, :func:`scaling_law_loss`
evaluates the law, :data:`PYTHIA_TOKENS_PER_STEP` turns a Pythia step into tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Tokens per Pythia optimizer step (1024 sequences of 2048 tokens).
PYTHIA_TOKENS_PER_STEP = 2_097_152

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
