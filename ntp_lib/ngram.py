"""n-gram next-token matrices and their spectra: how many dimensions does language need?

Godey et al. (COLM 2024) §5.2 estimate the rank a language-model head needs from the unsmoothed
5-gram matrix W (C, V): one row per 4-token context seen in a corpus, holding the empirical
next-token distribution of that context. If the ideal head is close to W, the W-error of W at d
(see :func:`ntp_lib.bottleneck.metrics.w_error_curve`) says how much a rank-d head must lose.

Shape letters: N tokens in the corpus, n context length (n-gram order minus one), C distinct
contexts kept, V vocabulary, k leading singular values.

The matrices are ``scipy.sparse`` CSR and are never densified; their leading singular values come
from ``scipy.sparse.linalg.svds``.

>>> import numpy as np
>>> M, contexts, counts = ngram_matrix(np.array([0, 1, 0, 1, 0, 2]), context_length=1, vocab_size=3)
>>> M.toarray().round(2).tolist()       # after 0: 1 twice, 2 once; after 1: 0 twice
[[0.0, 0.67, 0.33], [1.0, 0.0, 0.0]]
>>> contexts.tolist(), counts.tolist()
([[0], [1]], [3, 2])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from ntp_lib.corpus import encode, train_bpe  # the tokenizers live beside the corpora
from ntp_lib.runtime import check_int, check_positive_ints


def ngram_matrix(ids, context_length: int, vocab_size: int | None = None, min_count: int = 1
                 ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Unsmoothed next-token distributions of every ``context_length``-token context (Godey et al. §5.2).

    Row c of the result is P(next token | context c) estimated by counting, for each distinct
    context seen at least ``min_count`` times (as a context followed by a token). The paper's
    5-gram matrix is ``context_length=4``.

    Args:
        ids: token ids (N,), integers in [0, V).
        context_length: n >= 1 tokens of context.
        vocab_size: V (default: max id + 1).
        min_count: keep contexts seen at least this often (>= 1). Contexts seen once have one-hot rows,
            and many of them are what makes a small corpus look high-rank.

    Returns:
        ``(M, contexts, counts)``: M (C, V) CSR float64 with rows summing to 1, contexts (C, n) int64
        in lexicographic order, counts (C,) int64.

    Raises:
        ValueError: for an empty corpus, context_length < 1, min_count < 1, ids out of range, or a
            corpus shorter than context_length + 1 tokens.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"ids must be a non-empty 1-D array of token ids (the corpus is empty), "
                         f"got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    check_positive_ints(context_length=context_length, min_count=min_count)
    V = int(ids.max()) + 1 if vocab_size is None else vocab_size
    if int(ids.min()) < 0 or int(ids.max()) >= V:
        raise ValueError(f"ids must lie in [0, {V}), got min {int(ids.min())}, max {int(ids.max())}")
    n = int(context_length)
    if ids.size < n + 1:
        raise ValueError(f"the corpus has {ids.size} tokens; context_length={n} needs at least {n + 1}")
    ids = ids.astype(np.int64)
    # All windows (context, next token): (N - n, n + 1). Sort them lexicographically so equal
    # contexts are adjacent, then count.
    windows = np.lib.stride_tricks.sliding_window_view(ids, n + 1)
    windows, window_counts = np.unique(windows, axis=0, return_counts=True)
    ctx = windows[:, :n]
    new = np.ones(len(ctx), dtype=bool)
    new[1:] = np.any(ctx[1:] != ctx[:-1], axis=1)
    row_of_window = np.cumsum(new) - 1
    contexts = ctx[new]
    counts = np.bincount(row_of_window, weights=window_counts).astype(np.int64)
    keep = counts >= min_count
    if not keep.any():
        raise ValueError(f"no context is seen min_count={min_count} times; the most frequent is seen "
                         f"{int(counts.max())} times")
    new_row = np.cumsum(keep) - 1
    sel = keep[row_of_window]
    rows = new_row[row_of_window[sel]]
    probs = window_counts[sel] / counts[row_of_window[sel]]
    M = sp.csr_matrix((probs, (rows, windows[sel, n])), shape=(int(keep.sum()), V))
    return M, contexts[keep], counts[keep]


def frobenius_norm(M) -> float:
    """||M||_F of a sparse (or dense) matrix without densifying it."""
    if sp.issparse(M):
        return float(np.sqrt(M.multiply(M).sum()))
    return float(np.linalg.norm(np.asarray(M)))


def top_singular_values(M, k: int, seed: int = 0) -> np.ndarray:
    """The ``k`` largest singular values (k,) of a sparse matrix M (C, V), decreasing, by ``svds``.

    ARPACK needs k < min(C, V); its start vector is seeded so the result is reproducible.
    """
    C, V = M.shape
    k = check_int("k", k, low=1, high=min(C, V) - 1, why=f"svds needs k < min(C, V) = {min(C, V)}")
    data = M.data if sp.issparse(M) else np.asarray(M)
    if not np.all(np.isfinite(data)):
        raise ValueError("M must be finite")
    v0 = np.random.default_rng(seed).standard_normal(min(C, V))
    s = svds(sp.csr_matrix(M, dtype=np.float64), k=int(k), v0=v0, return_singular_vectors=False)
    return np.sort(s)[::-1]


def rank_for_w_error(curve, level: float) -> int:
    """Smallest d with W-error(d) <= ``level``, from a curve of
    :func:`ntp_lib.bottleneck.metrics.w_error_curve`.

    Returns -1 if the curve (which may stop at k < min(C, V)) never gets that low.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level!r}")
    below = np.nonzero(np.asarray(curve) <= level)[0]
    return int(below[0]) if below.size else -1


def ngram_spectrum(vocab_size: int = 1024, context_length: int = 4, min_count: int = 1, k: int = 128,
                   prose_only: bool = False, text: str | None = None) -> dict[str, Any]:
    """W-error curve (d = 0..k) of the n-gram matrix of the offline corpus under a BPE tokenizer."""
    from ntp_lib.bottleneck.metrics import w_error_curve
    from ntp_lib.corpus import load_python_docs

    text = load_python_docs(prose_only=prose_only) if text is None else text
    tok = train_bpe(text, vocab_size)
    ids = encode(tok, text)
    M, contexts, counts = ngram_matrix(ids, context_length, vocab_size, min_count)
    k_eff = min(k, min(M.shape) - 1)
    sigma = top_singular_values(M, k_eff)
    curve = w_error_curve(sigma, frobenius_norm(M))
    one_hot = float(np.mean(np.diff(M.indptr) == 1))
    return {"vocab_size": vocab_size, "context_length": context_length, "min_count": min_count,
            "tokens": int(ids.size), "contexts": int(M.shape[0]), "one_hot_rows": one_hot,
            "k": k_eff, "sigma": sigma.tolist(), "w_error": curve.tolist(),
            "d_half": rank_for_w_error(curve, 0.5)}
