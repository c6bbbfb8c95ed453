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
