"""One choice of CPU floating-point kernels, so the book's numbers are the same on every x86-64 CPU.

NumPy's OpenBLAS, PyTorch's vectorised ATen kernels, MKL and oneDNN each pick their kernels from the
CPU they run on (AVX-512 on one machine, AVX2 on the next): same code, same seeds, different last
digits, and after a few thousand training steps, different printed numbers. Every x86-64 CPU sold
since 2015 has AVX2, so the book pins the kernels to AVX2 (and MKL to its vendor-neutral path)
whenever its outputs are produced or checked (``make test``, ``tools/run_notebook.py``). The variables
must be in the environment before NumPy or torch is imported, which is why this module imports
neither, and why it can be run as a script that prints them for the Makefile::

    python ntp_lib/kernels.py            # OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ...
    python ntp_lib/kernels.py --other    # a different, older choice (what another CPU looks like)

Readers never need this: their notebooks run with whatever their CPU offers, and the printed numbers
are rounded to what a training run reproduces; a reader's last digit can still differ from the page.

>>> PINNED["OPENBLAS_CORETYPE"], PINNED["ATEN_CPU_CAPABILITY"]
('Haswell', 'avx2')
>>> sorted(OTHER) == sorted(PINNED)
True
"""

from __future__ import annotations

import os
import sys

#: The kernels every committed output is produced and checked with. Each variable was seen to change
#: results when set to another value (NumPy 2.4 and torch 2.13 on an AVX2 machine; see the tests):
#: OPENBLAS_CORETYPE: NumPy's and SciPy's OpenBLAS (matmul, SVD, lstsq), read at load time;
#: "Haswell" is the AVX2 kernel set, the one OpenBLAS also runs on AMD Zen.
#: ATEN_CPU_CAPABILITY: torch's vectorised kernels (softmax, layer norm, GELU, sums).
#: MKL_CBWR: torch's x86 matrix products run in MKL, which picks a code path by CPU vendor and model;
#: "COMPATIBLE" is the one path MKL runs alike on Intel and AMD (and what it runs on AMD anyway).
#: ONEDNN_MAX_CPU_ISA: oneDNN's highest instruction set (torch's GELU and fused paths).
PINNED: dict[str, str] = {
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}

#: A second, different choice (SSE/AVX-era kernels, no vectorised ATen): in ``make test`` the
#: numerically sensitive notebooks must also pass nbval under it, which is what a CPU other than the
#: one that wrote the outputs looks like.
OTHER: dict[str, str] = {
    "OPENBLAS_CORETYPE": "Sandybridge",
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "AVX",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
}


def pin(env: dict[str, str] | None = None, choice: dict[str, str] = PINNED) -> dict[str, str]:
    """Set ``choice`` in ``env`` (default: ``os.environ``) and return it; a no-op for NumPy or torch
    already imported in this process, so call it before starting the kernels that must obey it."""
    env = os.environ if env is None else env
    env.update(choice)
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--other"]):
        print("usage: python ntp_lib/kernels.py [--other]", file=sys.stderr)
        return 2
    choice = OTHER if argv == ["--other"] else PINNED
    print(" ".join(f"{k}={v}" for k, v in choice.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
