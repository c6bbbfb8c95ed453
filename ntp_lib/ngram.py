"""n-gram next-token matrices and their spectra: how many dimensions does language need?

Godey et al. (COLM 2024) §5.2 estimate the rank a language-model head needs from the unsmoothed
5-gram matrix W (C, V): one row per 4-token context seen in a corpus, holding the empirical
next-token distribution of that context. If the ideal head is close to W, the W-error of W at d
(see :func:`ntp_lib.bottleneck.metrics.w_error_curve`) says how much a rank-d head must lose.

Shape letters: N tokens in the corpus, n context length (n-gram order minus one), C distinct
contexts kept, V vocabulary, k leading singular values.

The matrices are ``scipy.sparse`` CSR and are never densified; their leading singular values come
from ``scipy.sparse.linalg.svds``.

Two controls separate what the curve owes to token frequencies from what it owes to context:
:func:`column_energy_curve` (the curve M would have if its columns were orthogonal, a function of
the continuation counts alone) and :func:`context_free_matrix` (the same contexts and counts, with
continuations drawn from the unigram distribution). :func:`log_probability_matrix` builds the centred
log-probabilities a softmax head has to produce (Theorem 5.2's row space is that of log P, not of P).

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
from ntp_lib.runtime import as_finite_array, check_int, check_number, check_positive_ints


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


def column_energy_curve(M, k: int | None = None) -> np.ndarray:
    """The W-error curve (k + 1,) that M (C, V) would have if its columns were orthogonal.

    If M^T M were diagonal, the singular values of M would be its column norms
    ||M[:, x]||_2, and W-error(d) would keep the d largest of them. That is exact when every row is
    one-hot (distinct columns then share no row); then ||M[:, x]||^2 counts the contexts whose one
    observed continuation is x, a function of the continuation frequencies alone (Zipf's law), not
    of which contexts they follow. The curve is never below the SVD's (Ky Fan: the d largest diagonal
    entries of M^T M sum to at most its d largest eigenvalues); the gap between the two is what the
    sharing of continuations across contexts adds. Default k: all V columns.

    >>> import scipy.sparse as sp
    >>> M = sp.csr_matrix([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])  # one-hot rows
    >>> column_energy_curve(M).round(3).tolist()  # = the SVD's curve: sigma = sqrt(2), 1
    [1.0, 0.577, 0.0, 0.0]
    """
    from ntp_lib.bottleneck.metrics import w_error_curve

    squares = M.multiply(M) if sp.issparse(M) else np.asarray(M, dtype=np.float64) ** 2
    energy = np.sqrt(np.sort(np.asarray(squares.sum(axis=0)).ravel())[::-1])
    k = energy.size if k is None else check_int("k", k, low=1, high=energy.size, why="M has that many columns")
    return w_error_curve(energy[:k], frobenius_norm(M))


def context_free_matrix(counts, unigram, seed: int = 0) -> sp.csr_matrix:
    """The null model of an n-gram matrix: context carries no information about the next token.

    Row c is the empirical distribution of ``counts[c]`` i.i.d. draws from ``unigram``: the same
    contexts seen the same number of times as in the corpus, each continuation drawn from the
    corpus's next-token frequencies. Whatever structure its spectrum has is frequency and sampling
    noise; what real text has beyond it is context.

    Args:
        counts: (C,) ints >= 1, how often each context is seen (``ngram_matrix``'s third output).
        unigram: (V,) non-negative weights of the next tokens (normalised here).
        seed: seed of the draws.

    Returns:
        (C, V) CSR float64 with rows summing to 1.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer) or counts.min() < 1:
        raise ValueError(f"counts must be a non-empty 1-D array of ints >= 1, got shape {counts.shape}, "
                         f"dtype {counts.dtype}")
    p = as_finite_array("unigram", unigram, 1)
    if p.min() < 0 or p.sum() <= 0:
        raise ValueError(f"unigram must be non-negative with a positive sum, got min {p.min()}, sum {p.sum()}")
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(counts.size), counts)
    tokens = rng.choice(p.size, size=rows.size, p=p / p.sum())
    M = sp.csr_matrix((np.ones(rows.size), (rows, tokens)), shape=(counts.size, p.size))
    M.sum_duplicates()
    return sp.csr_matrix(M.multiply(1.0 / counts[:, None]))


def log_probability_matrix(M, counts, prior, strength: float = 16.0, max_entries: int = 50_000_000
                           ) -> np.ndarray:
    """Centred smoothed log-probabilities (C, V) of an n-gram matrix: the logits a head must produce.

    Unsmoothed rows have log 0 for every continuation never seen, so each row is smoothed towards
    ``prior`` with ``strength`` pseudo-counts (a Dirichlet prior):
    log P[c, x] = log((counts[c] M[c, x] + strength prior[x]) / (counts[c] + strength)).
    Each row's mean is then subtracted (a softmax ignores a constant per row, the all-ones direction of
    Theorem 5.2) and each column's mean (a bias b of the head, logits W h + b, supplies it). A head of
    rank d plus a bias produces these logits exactly only if their rank is at most d.

    Args:
        M: (C, V) n-gram matrix, rows summing to 1.
        counts: (C,) context counts.
        prior: (V,) positive weights (normalised here), e.g. add-one unigram frequencies.
        strength: pseudo-counts > 0 of the prior.
        max_entries: refuse a dense result with more than this many entries (memory).

    Returns:
        dense (C, V) float64 with zero row and column means.
    """
    C, V = M.shape
    if C * V > max_entries:
        raise ValueError(f"the dense log-probability matrix would have C*V = {C * V:,} entries "
                         f"(> max_entries = {max_entries:,}); raise min_count to keep fewer contexts")
    counts = as_finite_array("counts", counts, 1)
    if counts.size != C or counts.min() < 1:
        raise ValueError(f"counts must be {C} values >= 1 (one per row of M), got {counts.size}, "
                         f"min {counts.min()}")
    q = as_finite_array("prior", prior, 1)
    if q.size != V or q.min() <= 0:
        raise ValueError(f"prior must be {V} positive values (one per column of M), got {q.size}, "
                         f"min {q.min()}")
    a = check_number("strength", strength, low=0.0, low_open=True)
    dense = M.toarray() if sp.issparse(M) else np.asarray(M, dtype=np.float64)
    L = np.log((counts[:, None] * dense + a * q / q.sum()) / (counts[:, None] + a))
    L -= L.mean(axis=1, keepdims=True)
    L -= L.mean(axis=0, keepdims=True)
    return L


def directions_above_null(sigma, sigma_null) -> int:
    """Leading directions in which a matrix has more structure than its null model.

    Horn's parallel analysis (1965), on spectra normalised to unit Frobenius norm: keep direction i
    while sigma[i] / ||sigma|| > sigma_null[i] / ||sigma_null|| and stop at the first that is not.
    Normalising compares the shares of energy, so a null whose noise is simply larger is not read as
    less structure. Pass whole spectra (all min(C, V) singular values, decreasing), e.g. of a matrix
    and of :func:`context_free_matrix`'s counterpart built the same way.

    >>> directions_above_null([3.0, 2.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0])  # shares .77 .51 .26 .26 vs .5
    2
    """
    s = as_finite_array("sigma", sigma, 1)
    z = as_finite_array("sigma_null", sigma_null, 1)
    if s.size != z.size or not (np.linalg.norm(s) > 0 and np.linalg.norm(z) > 0):
        raise ValueError(f"sigma and sigma_null must be non-zero spectra of the same length, got "
                         f"{s.size} and {z.size} values")
    s, z = s / np.linalg.norm(s), z / np.linalg.norm(z)
    below = np.nonzero(s <= z)[0]
    return int(below[0]) if below.size else int(s.size)


def rank_for_w_error(curve, level: float) -> int:
    """Smallest d with W-error(d) <= ``level``, from a curve of
    :func:`ntp_lib.bottleneck.metrics.w_error_curve`.

    Returns -1 if the curve (which may stop at k < min(C, V)) never gets that low.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level!r}")
    below = np.nonzero(np.asarray(curve) <= level)[0]
    return int(below[0]) if below.size else -1


def spectrum(M, k: int) -> dict[str, Any]:
    """Spectrum summary of a (C, V) matrix: its k leading singular values, W-error curve by the SVD and
    by :func:`column_energy_curve`, the rank at which each first reaches 0.5 (-1: not within k), and
    the share of one-hot rows. k is lowered to min(C, V) - 1 if needed (``svds``).

    More costs no SVD: ``next_tokens``, the number of non-zero columns (the distinct tokens ever seen
    after a context), a cap on the rank whatever V; ``column_w_error_all``, the column-norm curve over
    all of them (next_tokens + 1 values, the curve being 0 beyond), which is what the SVD's would be if
    the columns were orthogonal; and ``column_d_half_all``, the rank at which it reaches 0.5."""
    from ntp_lib.bottleneck.metrics import w_error_curve

    M = sp.csr_matrix(M, dtype=np.float64)
    k_eff = min(int(k), min(M.shape) - 1)
    sigma = top_singular_values(M, k_eff)
    curve = w_error_curve(sigma, frobenius_norm(M))
    columns = column_energy_curve(M)
    next_tokens = int(np.unique(M.indices).size)
    return {"contexts": int(M.shape[0]), "one_hot_rows": float(np.mean(np.diff(M.indptr) == 1)),
            "k": k_eff, "sigma": sigma.tolist(), "w_error": curve.tolist(), "d_half": rank_for_w_error(curve, 0.5),
            "column_w_error": columns[:k_eff + 1].tolist(), "column_d_half": rank_for_w_error(columns[:k_eff + 1], 0.5),
            "next_tokens": next_tokens, "column_w_error_all": columns[:next_tokens + 1].tolist(),
            "column_d_half_all": rank_for_w_error(columns, 0.5)}


def ngram_spectrum(vocab_size: int = 1024, context_length: int = 4, min_count: int = 1, k: int = 128,
                   prose_only: bool = False, text: str | None = None, shuffle_seed: int | None = None,
                   ids=None) -> dict[str, Any]:
    """:func:`spectrum` (d = 0..k) of the n-gram matrix of the offline corpus under a BPE tokenizer.

    The tokenizer is a byte-level BPE of ``vocab_size`` tokens trained on the text, unless ``ids``
    gives the corpus already tokenized (N,) by a tokenizer of your own, such as a pretrained model's
    (:func:`ntp_lib.corpus.encode`); ``vocab_size`` is then that tokenizer's vocabulary size, and
    ``text`` and ``prose_only`` are not used. With ``shuffle_seed`` the token ids are permuted (that
    seed) before counting: the shuffled-corpus control, with exactly the corpus's token frequencies
    and no context.
    """
    from ntp_lib.corpus import load_python_docs

    if ids is None:
        text = load_python_docs(prose_only=prose_only) if text is None else text
        ids = encode(train_bpe(text, vocab_size), text)
    ids = np.asarray(ids)
    if shuffle_seed is not None:
        ids = np.random.default_rng(shuffle_seed).permutation(ids)
    M, _, _ = ngram_matrix(ids, context_length, vocab_size, min_count)
    return {"vocab_size": vocab_size, "context_length": context_length, "min_count": min_count,
            "tokens": int(ids.size), **spectrum(M, k)}
