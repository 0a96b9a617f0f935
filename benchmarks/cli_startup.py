"""Start-up time of the command line: wall and CPU seconds of `geocorr --help` and friends.

Prints figures (median of N runs in fresh interpreters); no assertion. Usage:
    python benchmarks/cli_startup.py [--runs 5]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

CASES = [["--help"], ["--version"], ["metrics", "--help"], ["eval", "--help"], ["match", "--help"]]


def run(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one `python -m geocorr ARGV`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "geocorr", *argv], capture_output=True, check=True)
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':<24} {'wall s':>8} {'cpu s':>8}   (median of {args.runs})")
    for argv in CASES:
        walls, cpus = zip(*(run(argv) for _ in range(args.runs)), strict=True)
        print(f"{'geocorr ' + ' '.join(argv):<24} {statistics.median(walls):8.2f} {statistics.median(cpus):8.2f}")


if __name__ == "__main__":
    main()
