"""Where the compile path spends its time, on the HeLx corpus: µs per system, or
instructions per system under callgrind (load-independent) with the functions they go to.

The HeLx specs (``TYCHO_HELX_CORPUS``, else ``../shared/corpus/helx-apps`` beside the
clone; ``examples/`` when it is absent) are compiled the way ``benches/dropin_bench.py``
does: the native path is ``tycho._native.compile_request``, the drop-in path
``System.parse`` then ``render`` of every object.

    python benches/compile_profile.py [--rounds N] [--path native|dropin]
    python benches/compile_profile.py --callgrind [--rounds N] [--path native|dropin] [--top K]

``--callgrind`` runs this script twice under ``valgrind --tool=callgrind`` (a warm-up
round only, then the warm-up and N rounds), prints the instructions per system (the
difference over the systems compiled) and ``callgrind_annotate --inclusive=yes`` of the
second run, and keeps the output file (``--out``). Build the extension with symbols for
readable names: ``CARGO_PROFILE_RELEASE_STRIP=false maturin develop --release``, or see
docs/compile-profile.md. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("DEV_PHASE", "prod")


def corpus_cases() -> list[tuple[str, dict]]:
    """The compose files the core compiles without their settings file."""
    import dropin_bench

    corpus = Path(os.environ.get("TYCHO_HELX_CORPUS") or HERE.parents[1] / "shared" / "corpus" / "helx-apps")
    folder = corpus / "app-specs"
    if not folder.is_dir():
        print(f"HeLx corpus not found at {corpus}; using examples/", file=sys.stderr)
        folder = HERE.parent / "examples"
    return dropin_bench.compilable(dropin_bench.composes(folder))


def runner(path: str):
    """One compile of a case on `path`."""
    import dropin_bench
    from tycho.config import Config

    config = Config()
    if path == "native":
        return lambda name, compose, services: dropin_bench.native(name, compose, services)
    return lambda name, compose, services: dropin_bench.dropin(config, name, compose, services)


def run_rounds(path: str, rounds: int) -> tuple[int, list[float]]:
    import dropin_bench

    cases = [(n, c, dropin_bench.services_of(c)) for n, c in corpus_cases()]
    one = runner(path)
    for case in cases:  # warm up: templates compiled, caches filled
        one(*case)
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        for case in cases:
            t = time.perf_counter()
            one(*case)
            times.append(time.perf_counter() - t)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    if rounds:
        # Kernel time callgrind does not count: a fresh stack segment per request faults
        # its pages in (src/render/mod.rs, with_total_budget).
        print(f"minor page faults per system: {faults / (rounds * len(cases)):.1f}", file=sys.stderr)
    return len(cases), times


def total_instructions(out_file: str) -> int:
    text = Path(out_file).read_text(errors="replace")
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if not m:
        raise SystemExit(f"no totals in {out_file}")
    return int(m.group(1))


def callgrind(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for rounds in (0, args.rounds):
            out = os.path.join(tmp, f"callgrind.{rounds}")
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   sys.executable, __file__, "--inner", "--path", args.path, "--rounds", str(rounds)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            systems = int(proc.stdout.split()[0])
            files.append(out)
        base, full = (total_instructions(f) for f in files)
        per = (full - base) / (systems * args.rounds)
        print(f"{args.path}: {systems} systems x {args.rounds} rounds; "
              f"{per:,.0f} instructions per system (callgrind Ir, warm)")
        if args.out:
            Path(args.out).write_bytes(Path(full_file := files[1]).read_bytes())
            print(f"callgrind output: {args.out} (of {full_file})")
        annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", files[1]],
                                  capture_output=True, text=True, check=False)
        lines = annotate.stdout.splitlines()
        start = next((i for i, line in enumerate(lines) if "file:function" in line), 0)
        print("\n".join(lines[start:start + args.top + 2]))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--path", choices=("native", "dropin"), default="native")
    ap.add_argument("--callgrind", action="store_true", help="count instructions under callgrind")
    ap.add_argument("--top", type=int, default=50, help="functions shown by callgrind_annotate")
    ap.add_argument("--out", help="keep the callgrind output of the measured run here")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.callgrind:
        return callgrind(args)
    systems, times = run_rounds(args.path, args.rounds)
    if args.inner:
        print(systems)
        return 0
    print(f"{args.path}: {systems} systems x {args.rounds} rounds; mean {statistics.mean(times) * 1e6:.0f} µs, "
          f"median {statistics.median(times) * 1e6:.0f} µs per system")
    return 0


if __name__ == "__main__":
    sys.exit(main())
