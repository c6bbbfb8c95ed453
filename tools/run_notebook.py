"""Execute notebooks in place, the way their committed outputs must be produced.

    python tools/run_notebook.py chapters/02-pitfalls/*.ipynb

Runs each notebook top to bottom in a fresh kernel from the repository root's point of view
(working directory = the notebook's folder, as Jupyter Book and nbval do), with progress bars
silenced (NTP_QUIET=1, which also means one thread) and the CPU kernels pinned as in `make test`
(ntp_lib/kernels.py), then strips noise that makes diffs unreadable: per-cell execution timing,
widget state and kernel-specific metadata. Prints each notebook's wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ntp_lib import kernels

KEEP_CELL_METADATA = {"tags", "mystnb", "jupyter"}


def clean(nb: nbformat.NotebookNode) -> None:
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ["NTP_QUIET"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    kernels.pin()  # the kernel process inherits this environment
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    clean(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = parser.parse_args()
    for path in args.notebooks:
        if path.suffix != ".ipynb" or not path.exists():
            print(f"not a notebook: {path}", file=sys.stderr)
            return 2
        print(f"{path}: {run(path, args.timeout):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
