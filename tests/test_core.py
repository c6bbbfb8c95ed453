"""Unit tests of the shared core: runtime, corpus, gpt, train, lm, models, the experiments CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ntp_lib
from ntp_lib.corpus import CharTokenizer, load_python_docs, words
from ntp_lib.gpt import GPT, IGNORE_INDEX, GPTConfig
from ntp_lib.lm import bigram_counts, conditional_entropy, evaluate, fit_bigram, random_crops
from ntp_lib.models import HFCausalLM
from ntp_lib.train import TrainConfig, epoch_batches, lr_at, train

ROOT_DIR = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8)


# ---------------------------------------------------------------- runtime
def test_setup_is_deterministic():
    ntp_lib.setup(seed=3)
    a = (np.random.rand(), torch.rand(1).item())
    info = ntp_lib.setup(seed=3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    assert info["seed"] == 3 and info["threads"] == 1


def test_setup_threads_auto_is_one_under_test_and_all_cores_for_a_reader(monkeypatch):
    for var in ("CI", "NTP_QUIET", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    try:
        assert ntp_lib.setup(seed=0, figures=False)["threads"] == before  # a reader: the libraries' default
        monkeypatch.setenv("NTP_QUIET", "1")
        assert ntp_lib.setup(seed=0, figures=False)["threads"] == 1
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 1.5}, {"threads": 0}, {"threads": "all"},
                                    {"threads": True}])
def test_setup_rejects_bad_input(kwargs):
    with pytest.raises(ValueError, match="seed|threads"):
        ntp_lib.setup(**kwargs)


def test_glue_without_myst_nb_displays_or_stays_silent(monkeypatch, capsys):
    """On Colab there is no MyST-NB: glue must not fail, and must not add an output when display=False."""
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb -> ImportError
    assert ntp_lib.glue("x", 1.5, display=False) is None
    assert capsys.readouterr().out == ""
    ntp_lib.glue("x", 1.5)  # outside IPython, display() prints the value
    assert "1.5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="glue name"):
        ntp_lib.glue("", 1)


def test_rounded_refuses_a_rounding_boundary():
    from ntp_lib.runtime import rounded

    assert rounded(0.5812, 2, slack=1e-3) == 0.58
    with pytest.raises(ValueError, match="rounding boundary"):
        rounded(0.575, 2, slack=1e-3)
    for bad in (dict(decimals=-1, slack=0.0), dict(decimals=2, slack=-1.0), dict(decimals=2, slack=float("nan"))):
        with pytest.raises(ValueError, match="decimals|slack"):
            rounded(0.5, **bad)
    with pytest.raises(ValueError, match="non-finite"):
        rounded(float("inf"), 2, slack=0.0)


def test_device():
    assert ntp_lib.device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer must be one of"):
        ntp_lib.device("tpu")


def test_lazy_submodules():
    assert ntp_lib.gpt.GPT is GPT
    with pytest.raises(AttributeError):
        ntp_lib.no_such_module  # noqa: B018


# ---------------------------------------------------------------- corpus
def test_python_docs_corpus_is_prose_and_stable():
    text = load_python_docs()
    assert len(text) > 100_000 and text == load_python_docs()
    assert "assignment statement" in text.lower()
    assert len(load_python_docs(max_chars=100)) == 100
    assert len(load_python_docs(prose_only=False)) > len(text)
    with pytest.raises(ValueError, match="max_chars"):
        load_python_docs(max_chars=0)


def test_python_docs_snapshot_is_fixed_and_checked(monkeypatch):
    """The corpus is the same bytes on every Python: the shipped snapshot, verified by its SHA-256."""
    from ntp_lib import corpus

    assert len(load_python_docs()) == 227_446 and len(load_python_docs(prose_only=False)) == 465_047
    assert isinstance(load_python_docs(source="interpreter"), str)  # the running Python's own copy
    with pytest.raises(ValueError, match="source must be one of"):
        load_python_docs(source="web")
    monkeypatch.setattr(corpus, "PYTHON_DOCS_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        load_python_docs()


def test_recorded_results_bad_input():
    from ntp_lib.recorded import load_recorded, load_recorded_file

    with pytest.raises(ValueError, match="part must be one of"):
        load_recorded("bottleneck")
    with pytest.raises(ValueError, match="no recorded results matching"):
        load_recorded("pathstar", "nothing*.json")
    with pytest.raises(ValueError, match="no recorded file"):
        load_recorded_file("pathstar", "missing.json")


# ---------------------------------------------------------------- CPU kernels
_FINGERPRINT = """
import hashlib, numpy as np, torch
torch.set_num_threads(1); torch.manual_seed(0)
x, w = torch.randn(64, 32), torch.randn(32, 256)
a = np.random.default_rng(0).standard_normal((96, 64))
parts = [torch.log_softmax(x @ w, -1), torch.nn.functional.gelu(x), torch.nn.functional.layer_norm(x, (32,))]
h = hashlib.sha256(b"".join(p.numpy().tobytes() for p in parts) + (a @ a.T).tobytes() + np.linalg.svd(a)[1].tobytes())
print(h.hexdigest()[:16])
"""


def _fingerprint(env: dict[str, str]) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", _FINGERPRINT], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True, timeout=300)
    return out.stdout.strip()


def test_kernel_choice_is_honoured_and_pinned_runs_repeat():
    """The pinned kernels give the same bits twice; the second choice (make test's other pass) really
    is a different computation, so passing nbval under it means the printed numbers survive one."""
    from ntp_lib import kernels

    pinned = _fingerprint(kernels.PINNED)
    assert _fingerprint(kernels.PINNED) == pinned
    assert _fingerprint(kernels.OTHER) != pinned, f"the kernel variables {sorted(kernels.OTHER)} changed nothing"
    out = subprocess.run([sys.executable, str(ROOT_DIR / "ntp_lib" / "kernels.py"), "--other"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == [f"{k}={v}" for k, v in kernels.OTHER.items()]


def test_char_tokenizer_round_trip_and_errors():
    tok = CharTokenizer.fit("hello world")
    assert tok.decode(tok.encode("low held")) == "low held"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("xyz")
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        tok.decode([8])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.fit("")


def test_words():
    assert words("Hello, World.") == ["hello", ",", "world", "."]


# ---------------------------------------------------------------- gpt
def test_gpt_shapes_and_loss():
    model = GPT(GPTConfig(**TINY))
    x = torch.randint(0, 7, (2, 5))
    logits, loss = model(x, x)
    assert logits.shape == (2, 5, 7) and loss.ndim == 0
    assert len(model.hidden_states(x)) == TINY["n_layer"] + 2
    assert model.lm_head.weight is model.wte.weight  # tied


def test_gpt_ignore_index_and_causality():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY)).eval()
    x = torch.randint(0, 7, (1, 6))
    y = torch.full_like(x, IGNORE_INDEX)
    y[0, -1] = 3
    logits, loss = model(x, y)
    assert math.isclose(loss.item(), -torch.log_softmax(logits[0, -1], -1)[3].item(), rel_tol=1e-5)
    x2 = x.clone()
    x2[0, -1] = (x[0, -1] + 1) % 7  # changing the last token must not change earlier logits
    assert torch.allclose(model(x2)[0][0, :-1], logits[0, :-1], atol=1e-6)


def test_gpt_generate_greedy_matches_argmax():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY)).eval()
    x = torch.randint(0, 7, (2, 3))
    out = model.generate(x, 2)
    assert out.shape == (2, 5) and torch.equal(out[:, :3], x)
    assert torch.equal(out[:, 3], model(x)[0][:, -1].argmax(-1))


@pytest.mark.parametrize("bad, match", [({"n_embd": 9}, "divisible"), ({"vocab_size": 0}, "vocab_size"),
                                        ({"dropout": 1.0}, "dropout")])
def test_gpt_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**TINY, **bad})


def test_gpt_config_refuses_unknown_keys():
    with pytest.raises(ValueError, match="unknown GPTConfig keys"):
        GPTConfig.from_dict({**TINY, "n_layers": 2})


def test_gpt_rejects_bad_ids():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model(torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


# ---------------------------------------------------------------- train
def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(100, cfg) == pytest.approx(0.1)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 100))


def test_epoch_batches_cover_each_epoch():
    idx = epoch_batches(10, 3, seed=1)
    assert idx.steps_per_epoch == 3
    first = torch.cat([idx(s) for s in range(3)])
    assert len(set(first.tolist())) == 9
    assert torch.equal(idx(0), epoch_batches(10, 3, seed=1)(0))


def _copy_task():
    data = torch.randint(0, 7, (64, 6), generator=torch.Generator().manual_seed(0))
    return lambda step, g: (data[:, :-1], data[:, :-1])  # predict the current token: learnable


def test_train_learns_and_resumes_exactly(tmp_path):
    cfg = TrainConfig(steps=30, lr=1e-2, warmup_steps=3, progress=False,
                      checkpoint=str(tmp_path / "run.pt"), checkpoint_every=10)
    torch.manual_seed(0)
    a = GPT(GPTConfig(**TINY))
    hist = train(a, TrainConfig(**{**cfg.__dict__, "checkpoint": None}), _copy_task())
    assert hist[-1]["loss"] < hist[0]["loss"] * 0.7

    task = _copy_task()

    def interrupted(step, g):
        if step == 10:
            raise KeyboardInterrupt  # the run dies after its step-10 checkpoint
        return task(step, g)

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(GPT(GPTConfig(**TINY)), cfg, interrupted)
    torch.manual_seed(1)  # a different init: everything must come from the checkpoint
    b = GPT(GPTConfig(**TINY))
    resumed = train(b, cfg, task)
    assert resumed[0]["step"] == 1 and resumed[-1]["step"] == 30  # history carried over
    for p, q in zip(b.parameters(), a.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_train_callback_and_bad_config():
    model = GPT(GPTConfig(**TINY))
    hist = train(model, TrainConfig(steps=4, eval_every=2, warmup_steps=1, progress=False), _copy_task(),
                 callback=lambda step, m: {"probe": step})
    assert [h.get("probe") for h in hist] == [None, 2, None, 4]
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"step": 3})


def test_train_raises_on_divergence():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(FloatingPointError, match="lower TrainConfig.lr"):
        train(model, TrainConfig(steps=2, warmup_steps=0, progress=False), _copy_task(),
              loss_fn=lambda m, x, y: torch.tensor(float("nan"), requires_grad=True))


# ---------------------------------------------------------------- lm
def test_entropy_floor_and_bigram_fit():
    ids = torch.tensor([0, 1, 2, 0, 1, 0, 2, 1, 0, 0, 2] * 5)
    h1 = conditional_entropy(ids, 1)
    logits, losses = fit_bigram(bigram_counts(ids, 3), steps=200, lr=0.3)
    assert losses[-1] > h1 - 1e-9 and losses[-1] - h1 < 0.01  # above the floor, close to it
    assert conditional_entropy(ids, 0) == pytest.approx(-sum(
        p * math.log(p) for p in (torch.bincount(ids) / len(ids)).tolist()))
    with pytest.raises(ValueError, match="context_len"):
        conditional_entropy(ids, -1)
    with pytest.raises(ValueError, match="square"):
        fit_bigram(torch.ones(2, 3))


def test_random_crops_and_evaluate():
    ids = torch.arange(50) % 7
    x, y = random_crops(ids, 8, 4)(0, torch.Generator().manual_seed(0))
    assert x.shape == (4, 8) and torch.equal(y[:, :-1], x[:, 1:])
    metrics = evaluate(GPT(GPTConfig(**TINY)), ids, 8)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["loss"] > 0
    with pytest.raises(ValueError, match="too short"):
        random_crops(ids[:5], 8, 4)


# ---------------------------------------------------------------- models
def test_hf_wrapper_on_a_tiny_gptneox_built_from_config(tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    model = HFCausalLM(GPTNeoXForCausalLM(cfg).eval())
    x = torch.randint(0, 11, (2, 5))
    logits, loss = model(x, x)
    assert logits.shape == (2, 5, 11) and torch.isfinite(loss)
    assert len(model.hidden_states(x)) == 2
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        model(torch.tensor([[11]]))
    model.hf.save_pretrained(tmp_path)  # load_pretrained reads a local folder the same way as a hub id
    from transformers import AutoModelForCausalLM
    again = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True)
    assert torch.allclose(again(input_ids=x).logits, logits, atol=1e-5)


# ---------------------------------------------------------------- experiments CLI
def test_experiments_cli_help():
    out = subprocess.run([sys.executable, "-m", "ntp_lib.experiments", "--help"], capture_output=True,
                         text=True, check=True)
    assert "EXPERIMENT" in out.stdout


def test_experiments_json_is_strict():
    from ntp_lib.experiments import _jsonable

    assert json.dumps(_jsonable({"a": np.float64(1.5), "b": float("nan"), "c": torch.tensor([1, 2])})) == \
        '{"a": 1.5, "b": null, "c": [1, 2]}'


def test_at_scale_and_online(monkeypatch):
    from ntp_lib import at_scale, online

    assert at_scale("paper", cpu=1, paper=2) == 2
    with pytest.raises(ValueError, match="SCALE must be one of"):
        at_scale("CPU", cpu=1, paper=2)
    with pytest.raises(ValueError, match="one value for each scale"):
        at_scale("cpu", cpu=1)
    monkeypatch.delenv("NTP_ONLINE", raising=False)
    assert online() is ("google.colab" in sys.modules)
    monkeypatch.setenv("NTP_ONLINE", "1")
    assert online() is True


def test_shared_input_checks():
    import torch

    from ntp_lib.runtime import as_finite_array, check_int, check_number

    assert as_finite_array("W", torch.ones(2, 3, requires_grad=True), 2).shape == (2, 3)
    for bad, message in (("abc", "numeric array"), ([1.0, 2.0], "2-D array"), ([[1.0, float("inf")]], "finite"),
                         (np.zeros((0, 3)), "non-empty")):
        with pytest.raises(ValueError, match=message):
            as_finite_array("W", bad, 2)
    with pytest.raises(ValueError, match="at least 2 row"):
        as_finite_array("X", [[1.0, 2.0]], 2, min_rows=2)
    assert check_int("k", np.int64(3), low=0, high=3) == 3
    for bad in (True, 2.0, -1, 4, "3"):
        with pytest.raises(ValueError, match="k must be an int in \\[0, 3\\]"):
            check_int("k", bad, low=0, high=3)
    assert check_number("p", 1, low=0.0, high=1.0) == 1.0
    for bad in (float("nan"), 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="p must be a finite number in \\[0.0, 1.0\\]"):
            check_number("p", bad, low=0.0, high=1.0)
