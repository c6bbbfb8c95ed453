"""ntp_lib: the shared code of the executable textbook *Next-Token Prediction, Live*.

One module per idea:

- :mod:`ntp_lib.runtime`        seeds, threads, determinism, figure defaults (``setup``), ``glue``,
  ``at_scale`` and ``online`` for notebooks, the shared input checks
- :mod:`ntp_lib.kernels`        one choice of CPU kernels, so outputs are the same on every x86-64 CPU
- :mod:`ntp_lib.recorded`       recorded results of runs too long for a notebook (package data)
- :mod:`ntp_lib.corpus`         the offline text corpus and its tokenizers (characters, byte-level BPE)
- :mod:`ntp_lib.gpt`            a compact causal transformer (nanoGPT-style, one file)
- :mod:`ntp_lib.train`          one training loop for every objective (AdamW, warmup + cosine)
- :mod:`ntp_lib.lm`             language-model batches, evaluation and entropy floors
- :mod:`ntp_lib.models`         Hugging Face models behind the book's interface; pretrained loaders
- :mod:`ntp_lib.implicit_bias`  Part I: the linear NTP model, NTP-SVM ``w_mm`` and ``w_star``
- :mod:`ntp_lib.pathstar`       Part II: the path-star task, its diagnostics, one run (``PathStarConfig``)
- :mod:`ntp_lib.bottleneck`     Part III: softmax-bottleneck metrics, heads, synthetic targets, small LMs
- :mod:`ntp_lib.ngram`          Part III: sparse n-gram next-token matrices and their spectra
- :mod:`ntp_lib.grading`        the checkers of the graded exercises (a student's answer against the library)
- :mod:`ntp_lib.experiments`    the command line (``python -m ntp_lib.experiments``): calls the library,
  prints JSON; neither the library nor a chapter imports it

Submodules are imported lazily so that ``import ntp_lib`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from ntp_lib.runtime import at_scale, device, glue, online, setup

__version__ = "0.1.0"

__all__ = ["__version__", "setup", "device", "glue", "at_scale", "online"]


def __getattr__(name: str) -> Any:  # PEP 562 lazy submodules: ntp_lib.gpt etc.
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"ntp_lib.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"ntp_lib.{name}":
            raise AttributeError(f"module 'ntp_lib' has no attribute {name!r}") from None
        raise
