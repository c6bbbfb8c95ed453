"""A compact causal transformer in one file (after Karpathy's nanoGPT), used by Parts II and III.

Shape letters, fixed throughout: B batch, T time (sequence length), C channels (``n_embd``),
nh heads, hs head size (C // nh), V vocabulary.

Architecture (as in the path-star reference code): pre-LayerNorm blocks, learned absolute
positions, GELU MLP of width 4C, dropout 0 by default, input and output embeddings tied.

>>> import torch
>>> from ntp_lib.gpt import GPT, GPTConfig
>>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
>>> logits, loss = model(torch.zeros(3, 5, dtype=torch.long))    # (B, T) = (3, 5)
>>> tuple(logits.shape)                                          # (B, T, V)
(3, 5, 11)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ntp_lib.runtime import check_positive_ints, config_from_dict

IGNORE_INDEX = -100  # label value that the cross-entropy skips (PyTorch's convention)


@dataclass
class GPTConfig:
    vocab_size: int = 64     # V: number of token ids
    block_size: int = 64     # longest sequence the position table covers
    n_layer: int = 2         # number of transformer blocks
    n_head: int = 2          # attention heads per block
    n_embd: int = 64         # C: width of the residual stream
    dropout: float = 0.0     # dropout everywhere (0 in the book: deterministic and small data)
    bias: bool = True        # biases in Linear and LayerNorm layers
    tie_weights: bool = True  # share the token embedding with the LM head (as GPT-2)

    def __post_init__(self) -> None:
        check_positive_ints("GPTConfig.", vocab_size=self.vocab_size, block_size=self.block_size,
                            n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """Build a config from a dict, refusing unknown keys (a typo should not pass silently)."""
        return config_from_dict(cls, d)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # PyTorch picks the attention kernel for the device (no kernel is forced here).
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer: token + position embeddings, ``n_layer`` blocks, final LN, LM head."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections: keeps the residual stream's variance flat in depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of parameters (a tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def check_ids(self, idx: torch.Tensor) -> None:
        """Raise ValueError for ids outside [0, V) or sequences longer than ``block_size``."""
        check_ids(idx, self.config.vocab_size, self.config.block_size)

    def hidden_states(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Residual stream after the embeddings and after each block; the last entry is after ``ln_f``.

        Returns ``n_layer + 2`` tensors of shape (B, T, C).
        """
        self.check_ids(idx)
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        states.append(self.ln_f(x))
        return states

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) and, if ``targets`` (B, T) is given, the mean cross-entropy over
        positions whose target is not ``IGNORE_INDEX``."""
        h = self.hidden_states(idx)[-1]  # (B, T, C)
        logits = self.lm_head(h)         # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss

    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Autoregressive decoding: append ``max_new_tokens`` tokens to ``idx`` (B, T).

        ``temperature=0`` is greedy (argmax); otherwise sample from softmax(logits / temperature).
        Each new token is predicted from the model's *own* previous outputs (no teacher forcing).
        The context is cropped to the last ``block_size`` tokens. See :func:`generate`.
        """
        return generate(self, idx, max_new_tokens, temperature, generator, block_size=self.config.block_size)


def check_ids(idx: torch.Tensor, vocab_size: int, block_size: int | None = None) -> None:
    """Raise ValueError unless ``idx`` is (B, T) with ids in [0, vocab_size) and, if given, T <= block_size."""
    if idx.dim() != 2:
        raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
    T = idx.shape[1]
    if block_size is not None and T > block_size:
        raise ValueError(f"sequence length {T} exceeds block_size={block_size}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), "
                         f"got min {int(idx.min())}, max {int(idx.max())}")


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             generator: torch.Generator | None = None, block_size: int | None = None) -> torch.Tensor:
    """Autoregressive decoding with any book model ``model(idx) -> (logits, loss)``: the one decoding loop.

    Appends ``max_new_tokens`` tokens to ``idx`` (B, T) and returns (B, T + max_new_tokens).
    ``temperature=0`` is greedy (argmax); otherwise sample from softmax(logits / temperature) with
    ``generator``. With ``block_size`` the model sees only the last ``block_size`` tokens.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    for _ in range(max_new_tokens):
        context = idx if block_size is None else idx[:, -block_size:]
        logits, _ = model(context)
        logits = logits[:, -1, :]  # (B, V): the next-token distribution
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = F.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        idx = torch.cat([idx, nxt], dim=1)
    return idx
