"""Unit tests of ntp_lib.ngram: n-gram matrices, BPE training, sparse spectra (offline)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from ntp_lib import bottleneck as bn
from ntp_lib import ngram

TEXT = "the cat sat on the mat. the dog sat on the log. " * 20


def test_ngram_matrix_counts_and_rows():
    ids = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2])
    M, contexts, counts = ngram.ngram_matrix(ids, 2, vocab_size=5)
    assert sp.issparse(M) and M.shape == (5, 5)  # contexts 01, 12, 20, 13, 30
    np.testing.assert_allclose(np.asarray(M.sum(1)).ravel(), 1.0)
    row = {tuple(c): i for i, c in enumerate(contexts.tolist())}[(0, 1)]
    assert counts[row] == 3
    np.testing.assert_allclose(M[row].toarray().ravel(), [0, 0, 2 / 3, 1 / 3, 0])


def test_min_count_drops_rare_contexts():
    ids = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2])
    M, contexts, counts = ngram.ngram_matrix(ids, 2, min_count=2)
    assert contexts.tolist() == [[0, 1]] and counts.tolist() == [3]
    with pytest.raises(ValueError, match="min_count"):
        ngram.ngram_matrix(ids, 2, min_count=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"ids": np.array([], dtype=int), "context_length": 1}, "empty"),
    ({"ids": np.array([1, 2, 3]), "context_length": 0}, "context_length"),
    ({"ids": np.array([1, 2, 3]), "context_length": 3}, "needs at least"),
    ({"ids": np.array([1, 2, 3]), "context_length": 1, "min_count": 0}, "min_count"),
    ({"ids": np.array([1, 2, 7]), "context_length": 1, "vocab_size": 5}, "lie in"),
    ({"ids": np.array([1.0, 2.0]), "context_length": 1}, "integers"),
])
def test_ngram_matrix_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ngram.ngram_matrix(**kwargs)


def test_bpe_is_deterministic_and_checks_input():
    a = ngram.encode(ngram.train_bpe(TEXT, 300), TEXT)
    b = ngram.encode(ngram.train_bpe(TEXT, 300), TEXT)
    np.testing.assert_array_equal(a, b)
    assert len(a) < len(TEXT)
    tok = ngram.train_bpe(TEXT, 300)
    assert tok.decode(a.tolist()) == TEXT
    with pytest.raises(ValueError, match="empty"):
        ngram.train_bpe("", 300)
    with pytest.raises(ValueError, match="vocab_size"):
        ngram.train_bpe(TEXT, 100)
    with pytest.raises(ValueError, match="empty"):
        ngram.encode(tok, "")


def test_sparse_top_singular_values_match_dense():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, size=3000)
    M, _, _ = ngram.ngram_matrix(ids, 1, 12)
    dense = np.linalg.svd(M.toarray(), compute_uv=False)
    np.testing.assert_allclose(ngram.top_singular_values(M, 5), dense[:5], rtol=1e-8)
    assert ngram.frobenius_norm(M) == pytest.approx(np.linalg.norm(M.toarray()))
    curve = bn.w_error_curve(ngram.top_singular_values(M, 5), ngram.frobenius_norm(M))
    np.testing.assert_allclose(curve, bn.w_error_curve(dense)[:6], rtol=1e-8)
    with pytest.raises(ValueError, match="k must be"):
        ngram.top_singular_values(M, 12)
    assert ngram.rank_for_w_error(curve, 1.0) == 0
    assert ngram.rank_for_w_error(curve, 0.0) == -1
    with pytest.raises(ValueError):
        ngram.rank_for_w_error(curve, 2.0)


def test_cli_ngram_spectrum(capsys):
    from ntp_lib.experiments import main

    assert main(["ngram-spectrum", "--vocab-size", "300", "--context-length", "1", "--k", "5"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["w_error"][0] == 1.0 and len(out["w_error"]) == 6


def test_cli_bad_context_length_exits_with_message(capsys):
    from ntp_lib.experiments import main

    with pytest.raises(SystemExit) as exc:
        main(["ngram-spectrum", "--vocab-size", "300", "--context-length", "0"])
    assert exc.value.code == 2
    assert "context_length must be an int >= 1" in capsys.readouterr().err
