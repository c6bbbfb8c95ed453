"""Tests of ntp_lib.models: one interface for the book's GPT, GPT-2 and Mamba built from configs."""

import pytest
import torch

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
