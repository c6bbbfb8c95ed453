"""Part III: the softmax bottleneck, its metrics and the heads that live with it.

After Yang et al. (ICLR 2018), "Breaking the Softmax Bottleneck", and Godey, de la Clergerie &
Sagot (COLM 2024, arXiv:2404.07647), "Why do small language models underperform?".

Shape letters: N representations (contexts), d hidden size, V vocabulary, r head rank,
K mixture components, C contexts of a synthetic or n-gram target.

One module per idea, every public name re-exported here (``bn.anisotropy`` and
``from ntp_lib.bottleneck import anisotropy`` both work):

- :mod:`ntp_lib.bottleneck.metrics`    metrics (NumPy arrays or torch tensors in, Python floats out):
  ``anisotropy`` (Godey et al. §4.2) and ``layer_anisotropy``, ``singular_entropy`` (§4.3) and
  ``singular_distribution`` (the spectrum of the paper's Figure 4), ``head_spectrum`` (all of them from
  one SVD), ``w_error`` and ``w_error_curve`` (§5.2), ``effective_rank`` (Roy & Vetterli 2007),
  ``numerical_rank``, ``singular_values``
- :mod:`ntp_lib.bottleneck.heads`      heads on frozen features (``forward(h) -> log-probabilities``):
  ``FullHead``, ``LowRankHead`` (W = A B, Godey et al. §5.1), ``MixtureOfSoftmaxes`` (Yang et al.
  §3.3); ``ContextModel`` gives each of C synthetic contexts a free vector; rank-r truncations of a
  pretrained head, untrained: ``truncated_head``, ``truncated_head_losses``, and the features' energy
  along the head's singular directions, ``feature_energy``
- :mod:`ntp_lib.bottleneck.synthetic`  targets with a chosen spectrum (``spectrum_logits``, Godey et al.
  Theorem 5.3) and ``fit_distributions`` of a head to them (``soft_cross_entropy``, ``entropy``);
  the rank bound measured: ``power_spectrum``, ``rank_experiment``, ``mos_experiment``
- :mod:`ntp_lib.bottleneck.small_lm`   small LMs on the offline corpus (Godey et al. §4, §5.1):
  ``train_small_lm`` tracing ``lm_metrics``; heads refitted on frozen features: ``frozen_features``,
  ``fit_head``, ``head_loss``, ``rank_heads``; every layer of a pretrained causal LM on fixed
  windows: ``causal_lm_states``
- :mod:`ntp_lib.bottleneck.scaling`    saturation (Godey et al. §3): ``SCALING_LAW``,
  ``scaling_law_loss``, ``PYTHIA_TOKENS_PER_STEP``

The loaders of pretrained weights live in :mod:`ntp_lib.models`, beside ``load_pretrained``, and are
re-exported here too: ``PYTHIA_SIZES``, ``pythia_revisions``, ``pythia``, ``lm_head_weight``,
``minilm_path``, ``load_minilm``, ``load_minilm_tokenizer``, ``smollm2_path``, ``load_smollm2``,
``load_smollm2_tokenizer``.

>>> import numpy as np
>>> round(anisotropy(np.array([[1.0, 0.0], [1.0, 0.1], [1.0, -0.1]])), 3)
0.99
>>> round(w_error(np.diag([3.0, 4.0]), 1), 3)   # keep sigma=4, drop sigma=3: 3 / 5
0.6
"""

from ntp_lib.bottleneck.heads import (
    ContextModel,
    FullHead,
    LowRankHead,
    MixtureOfSoftmaxes,
    feature_energy,
    truncated_head,
    truncated_head_losses,
)
from ntp_lib.bottleneck.metrics import (
    anisotropy,
    effective_rank,
    head_spectrum,
    layer_anisotropy,
    numerical_rank,
    singular_distribution,
    singular_entropy,
    singular_values,
    w_error,
    w_error_curve,
)
from ntp_lib.bottleneck.scaling import PYTHIA_TOKENS_PER_STEP, SCALING_LAW, scaling_law_loss
from ntp_lib.bottleneck.small_lm import (
    causal_lm_states,
    fit_head,
    frozen_features,
    head_loss,
    lm_metrics,
    rank_heads,
    train_small_lm,
)
from ntp_lib.bottleneck.synthetic import (
    entropy,
    fit_distributions,
    mos_experiment,
    power_spectrum,
    rank_experiment,
    soft_cross_entropy,
    spectrum_logits,
)
from ntp_lib.models import (
    PYTHIA_SIZES,
    lm_head_weight,
    load_minilm,
    load_minilm_tokenizer,
    load_smollm2,
    load_smollm2_tokenizer,
    minilm_path,
    pythia,
    pythia_revisions,
    smollm2_path,
)

__all__ = [
    # metrics
    "anisotropy", "singular_values", "singular_entropy", "effective_rank", "w_error_curve", "w_error",
    "numerical_rank", "layer_anisotropy", "singular_distribution", "head_spectrum",
    # heads
    "FullHead", "LowRankHead", "MixtureOfSoftmaxes", "ContextModel", "truncated_head", "truncated_head_losses",
    "feature_energy",
    # synthetic targets
    "spectrum_logits", "soft_cross_entropy", "entropy", "fit_distributions",
    "power_spectrum", "rank_experiment", "mos_experiment",
    # small LMs and their heads
    "lm_metrics", "train_small_lm", "frozen_features", "fit_head", "head_loss", "rank_heads", "causal_lm_states",
    # saturation
    "SCALING_LAW", "scaling_law_loss", "PYTHIA_TOKENS_PER_STEP",
    # pretrained weights (ntp_lib.models)
    "PYTHIA_SIZES", "pythia_revisions", "pythia", "lm_head_weight", "minilm_path", "load_minilm",
    "load_minilm_tokenizer", "smollm2_path", "load_smollm2", "load_smollm2_tokenizer",
]
