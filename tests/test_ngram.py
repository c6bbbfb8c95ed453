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


# The controls of chapter 02: frequency alone, and context carrying no information.

def test_column_energy_curve_is_exact_for_one_hot_rows_and_never_below_the_svd():
    rng = np.random.default_rng(0)
    one_hot = sp.csr_matrix((np.ones(40), (np.arange(40), rng.integers(0, 9, 40))), shape=(40, 9))
    svd = bn.w_error_curve(np.linalg.svd(one_hot.toarray(), compute_uv=False), ngram.frobenius_norm(one_hot))
    np.testing.assert_allclose(ngram.column_energy_curve(one_hot), svd, atol=1e-12)
    shared = rng.dirichlet(np.ones(9), size=30)           # dense rows: columns far from orthogonal
    svd = bn.w_error_curve(np.linalg.svd(shared, compute_uv=False))
    columns = ngram.column_energy_curve(shared)
    assert np.all(columns >= svd - 1e-12) and columns[1] > svd[1] + 0.1
    with pytest.raises(ValueError, match="k must be an int in \\[1, 9\\]"):
        ngram.column_energy_curve(shared, k=10)


def test_context_free_matrix_keeps_the_counts_and_draws_from_the_unigram():
    counts = np.array([1, 3, 4000])
    unigram = np.array([0.5, 0.25, 0.25, 0.0])
    M = ngram.context_free_matrix(counts, unigram, seed=1)
    assert M.shape == (3, 4)
    np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0)
    np.testing.assert_allclose((M.toarray() * counts[:, None]) % 1, 0.0, atol=1e-9)  # whole draws
    assert M[:, 3].nnz == 0                                                        # never drawn
    np.testing.assert_allclose(M.toarray()[2], unigram, atol=0.03)
    assert (ngram.context_free_matrix(counts, unigram, seed=1) != M).nnz == 0      # seeded
    with pytest.raises(ValueError, match="counts must be a non-empty 1-D array of ints >= 1"):
        ngram.context_free_matrix(np.array([2, 0]), unigram)
    with pytest.raises(ValueError, match="unigram must be non-negative"):
        ngram.context_free_matrix(counts, [0.5, -0.5, 1.0])
    with pytest.raises(ValueError, match="unigram must be finite"):
        ngram.context_free_matrix(counts, [np.nan, 1.0])


def test_log_probability_matrix_is_centred_and_sees_contexts_that_differ():
    same = sp.csr_matrix(np.tile([0.5, 0.5, 0.0], (4, 1)))      # every context predicts the same
    counts = np.array([2, 2, 2, 2])
    prior = np.ones(3)
    np.testing.assert_allclose(ngram.log_probability_matrix(same, counts, prior), 0.0, atol=1e-12)
    differ = sp.csr_matrix([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]])
    L = ngram.log_probability_matrix(differ, counts, prior, strength=1.0)
    np.testing.assert_allclose(L.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(L.mean(axis=1), 0.0, atol=1e-12)
    assert np.linalg.matrix_rank(L, tol=1e-9) == 2                # 3 distinct rows, centred: rank 2
    with pytest.raises(ValueError, match="would have C\\*V = 12 entries"):
        ngram.log_probability_matrix(differ, counts, prior, max_entries=10)
    with pytest.raises(ValueError, match="prior must be 3 positive values"):
        ngram.log_probability_matrix(differ, counts, [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="strength must be"):
        ngram.log_probability_matrix(differ, counts, prior, strength=0.0)


def test_directions_above_null_compares_shares_of_energy():
    assert ngram.directions_above_null([5.0, 3.0, 2.5, 2.4], [4.0, 3.5, 1.0, 1.0]) == 1
    assert ngram.directions_above_null([10.0, 1.0], [2.0, 2.0]) == 1
    assert ngram.directions_above_null(10 * np.array([3.0, 1.0]), [3.0, 1.0]) == 0   # scale is not structure
    with pytest.raises(ValueError, match="sigma_null must be finite"):
        ngram.directions_above_null([1.0], [np.inf])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        ngram.directions_above_null([1.0, 1.0], [1.0])


def test_encode_takes_a_transformers_tokenizer_whole_and_without_special_tokens():
    from transformers import PreTrainedTokenizerFast

    bpe = ngram.train_bpe(TEXT, 300)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=ngram.train_bpe(TEXT, 300), bos_token="<s>")
    wrapped.backend_tokenizer.enable_truncation(max_length=5)  # a model's context: encode must not cut
    ids = ngram.encode(wrapped, TEXT)
    np.testing.assert_array_equal(ids, ngram.encode(bpe, TEXT))
    assert len(ids) > 5 and wrapped.backend_tokenizer.truncation is not None  # the tokenizer is left as it was


def test_ngram_spectrum_of_given_ids_and_its_column_summary():
    ids = ngram.encode(ngram.train_bpe(TEXT, 300), TEXT)
    out = ngram.ngram_spectrum(300, 2, 1, 5, ids=ids)
    assert out["tokens"] == len(ids) and out["vocab_size"] == 300
    M, _, _ = ngram.ngram_matrix(ids, 2, 300)
    assert out["contexts"] == M.shape[0] and out["next_tokens"] == len(np.unique(ids[2:]))
    full = ngram.column_energy_curve(M)
    assert out["column_d_half_all"] == ngram.rank_for_w_error(full, 0.5)
    assert out["column_w_error"] == pytest.approx(full[:6].tolist())
    assert out["column_w_error_all"] == pytest.approx(full[:out["next_tokens"] + 1].tolist())
    assert np.all(full[out["next_tokens"]:] == 0)
