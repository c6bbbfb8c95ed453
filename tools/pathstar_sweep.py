"""Run a list of path-star experiments in parallel on one GPU; each writes its JSON line to a file.

    python tools/pathstar_sweep.py OUTDIR JOBS_FILE [PARALLEL]
    python tools/pathstar_sweep.py --merge OUTDIR MERGED.json

JOBS_FILE holds one line per run: ``NAME ARGS...`` (ARGS passed to ``python -m ntp_lib.experiments
pathstar``). The recorded JSON files keep the exact command in their ``command`` field.
"""

import json
import os
import shlex
import subprocess
import sys
import time


def main() -> None:
    out, jobs_file = sys.argv[1], sys.argv[2]
    parallel = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    jobs = [line.split(None, 1) for line in open(jobs_file) if line.strip() and not line.startswith("#")]
    os.makedirs(out, exist_ok=True)
    running: list[tuple[str, subprocess.Popen, float]] = []
    t0 = time.time()
    while jobs or running:
        while jobs and len(running) < parallel:
            name, args = jobs.pop(0)
            cmd = [sys.executable, "-m", "ntp_lib.experiments", "pathstar", *shlex.split(args)]
            f = open(os.path.join(out, name + ".json"), "w")
            e = open(os.path.join(out, name + ".err"), "w")
            running.append((name, subprocess.Popen(cmd, stdout=f, stderr=e), time.time()))
        for item in list(running):
            name, proc, start = item
            if proc.poll() is not None:
                err = open(os.path.join(out, name + ".err")).read()[-500:] if proc.returncode else ""
                print(f"{name}: rc={proc.returncode} {time.time() - start:.0f}s {err}", flush=True)
                running.remove(item)
        time.sleep(1)
    print(f"all done in {time.time() - t0:.0f}s", flush=True)


def merge(out: str, target: str) -> None:
    """Merge the per-run JSON files of ``out`` into one file ``{name: result}`` (runs that failed are left out)."""
    merged = {}
    for fname in sorted(os.listdir(out)):
        if fname.endswith(".json"):
            try:
                merged[fname[:-5]] = json.load(open(os.path.join(out, fname)))
            except ValueError:
                pass
    json.dump(merged, open(target, "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    if sys.argv[1] == "--merge":
        merge(sys.argv[2], sys.argv[3])
    else:
        main()
