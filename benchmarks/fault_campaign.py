"""Fault campaign for ``geocorr train`` / ``eval`` (issue 17): kills, corruptions, planted pickles, full disk.

A small real run — GECO's LoRA on real PF-Willow pairs (``../shared/data``) with a tiny random DINOv2
saved as a transformers folder, 56 px, batch 2, 2 pairs per category, ``--max-steps`` 8, a checkpoint
every 2 steps — is trained once without faults (in a child process): its ``adapter.safetensors``
bytes are the reference. Then:

* kills: a child ``geocorr train`` gets SIGKILL at a random moment of its training (and, for the
  ``--save-kills`` trials, inside the n-th checkpoint or adapter write, half of the bytes written);
  it is resumed (``--resume`` when a checkpoint exists, else started again) until it exits 0 —
  some resumes are killed again. The final adapter must be byte-identical to the reference.
* corruptions of a run stopped at step 4: a random bit flipped anywhere in the newest checkpoint,
  the newest checkpoint truncated at a random length, ``log.jsonl`` torn at a random byte or ended
  with a partial line; then resumed to step 8 (in this process): byte-identical adapter, or a clear
  refusal (exit 2) — never exit 0 with other weights.
* planted pickles (their ``__reduce__`` creates a marker file) in every kind of file geocorr reads:
  checkpoints (current name and the former ``checkpoint.pt``), ``log.jsonl``, adapters (``.pth``,
  ``.safetensors``), the eval feature cache, saved predictions, a dataset's ``.mat`` annotation,
  cyclecorr weights, SemAlign3D class files, depth maps (``.npy``). The marker must never appear.
* full disk: ENOSPC raised half-way through the n-th checkpoint or the adapter write: exit 2 with one
  line, no temporary file left, the newest checkpoint intact; after "freeing space" the resume ends
  byte-identical to the reference.

Prints the counts: faults, runs resumed bit-exactly, clear refusals, files executed (must be 0),
silent wrong results (must be 0). Sizes are command-line options (defaults fit ~10 CPU minutes).

    python benchmarks/fault_campaign.py [--kills 12] [--save-kills 4] [--flips 12] ...
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

WILLOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "PF-dataset-WILLOW"
STEPS = 8

# A child `geocorr train` whose n-th checkpoint/adapter write is cut half-way by SIGKILL or ENOSPC.
CHILD = r"""
import errno, os, signal, sys
import geocorr.files as files
mode, at = os.environ.get("FAULT_MODE", ""), int(os.environ.get("FAULT_AT", "0"))
seen, write_all = [0], files._write_all
def faulty(fd, data):
    if b"geocorr-checkpoint" in data[:200000] or b"geocorr-lora" in data[:4096]:
        seen[0] += 1
        if seen[0] == at:
            write_all(fd, data[: len(data) // 2])
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device")
    write_all(fd, data)
files._write_all = faulty
import geocorr.training.trainer as trainer
fit = trainer.Trainer.fit
def marked_fit(self, resume=False):
    open(os.environ["FAULT_STARTED"], "w").close()  # tells the campaign that training begins
    return fit(self, resume)
trainer.Trainer.fit = marked_fit
from geocorr.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Tally:
    def __init__(self) -> None:
        self.faults = self.exact = self.refused = self.executed = self.silent = self.other = 0
        self.notes: list[str] = []

    def outcome(self, kind: str, ok: bool | None, note: str = "") -> None:
        """ok: True = byte-identical result, None = clear refusal, False = exit 0 with other weights."""
        if ok is True:
            self.exact += 1
        elif ok is None:
            self.refused += 1
        else:
            self.silent += 1
        if note:
            self.notes.append(f"{kind}: {note}")


def train_args(out: Path, backbone: Path, steps: int = STEPS) -> list[str]:
    return ["train", "--dataset", "pf-willow", "--root", str(WILLOW), "--backbone", str(backbone),
            "--image-size", "56", "--batch-size", "2", "--per-category", "2", "--max-steps", str(steps),
            "--checkpoint-every", "2", "--no-progress", "--out", str(out)]


def has_checkpoint(out: Path) -> bool:
    return out.is_dir() and any(p.name.startswith("checkpoint-") for p in out.iterdir())


def started_marker(out: Path) -> Path:
    return out.parent / f".{out.name}.started"


def child(args: list[str], fault: tuple[str, int] | None = None) -> subprocess.Popen:
    out = Path(args[args.index("--out") + 1])
    started_marker(out).unlink(missing_ok=True)
    env = {**os.environ, "FAULT_MODE": fault[0] if fault else "", "FAULT_AT": str(fault[1] if fault else 0),
           "FAULT_STARTED": str(started_marker(out))}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def run_to_end(out: Path, backbone: Path, rng: random.Random, train_time: float, kill_again: float) -> tuple[int, int]:
    """Resume (or restart) until exit 0; each attempt may be killed again (probability kill_again).
    Returns (attempts, kills delivered)."""
    killed = 0
    for attempt in range(12):
        args = train_args(out, backbone) + (["--resume"] if has_checkpoint(out) else [])
        proc = child(args)
        if rng.random() < kill_again and attempt < 3:
            if kill_during_training(proc, out, rng, train_time):
                killed += 1
                continue
        else:
            proc.communicate()
        if proc.returncode == 0:
            return attempt + 1, killed
        raise RuntimeError(f"resume attempt {attempt} of {out} failed (exit {proc.returncode}): "
                           f"{proc.stderr.read() if proc.stderr else ''}")
    raise RuntimeError(f"{out}: no successful resume in 12 attempts")


def kill_during_training(proc: subprocess.Popen, out: Path, rng: random.Random, train_time: float) -> bool:
    """SIGKILL ``proc`` at a uniform random moment of its training (timed from the start of fit()).
    Returns whether the kill was delivered (False: the run had already ended)."""
    start = time.monotonic()
    while proc.poll() is None and not started_marker(out).exists() and time.monotonic() - start < 600:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, train_time))
    delivered = proc.poll() is None
    if delivered:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return delivered


def kills(tally: Tally, work: Path, backbone: Path, reference: bytes, n_random: int, n_save: int,
          train_time: float, rng: random.Random) -> None:
    for trial in range(n_random + n_save):
        out = work / f"kill{trial}"
        if trial < n_random:
            proc = child(train_args(out, backbone))
            delivered = kill_during_training(proc, out, rng, train_time)
            how = "random kill" if delivered else "kill too late"
        else:
            at = rng.randint(1, STEPS // 2 + 1)  # checkpoints 2, 4, 6, 8, then the adapter
            proc = child(train_args(out, backbone), fault=("kill", at))
            proc.communicate()
            delivered = proc.returncode == -signal.SIGKILL
            how = f"kill inside write {at}"
        attempts, again = run_to_end(out, backbone, rng, train_time, kill_again=0.3)
        tally.faults += delivered + again
        if not delivered and not again:
            print(f"  {how:>20}: no kill landed (the run had ended); not counted", flush=True)
            continue
        adapter = out / "adapter.safetensors"
        same = adapter.is_file() and adapter.read_bytes() == reference
        tally.outcome("kill", same, "" if same else f"{out}: {how}, adapter differs")
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        print(f"  {how:>20}: {int(delivered) + again} kill(s), {attempts} resume run(s), bit-exact {same}, "
              f"tmp files left {leftovers}", flush=True)


def cli(args: list[str]) -> tuple[int, str]:
    """``geocorr`` in this process: (exit code, stderr)."""
    from geocorr.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except Exception as exc:
            return 99, f"{type(exc).__name__}: {exc}"
    return code, err.getvalue()


def resume_and_judge(tally: Tally, kind: str, out: Path, backbone: Path, reference: bytes) -> str:
    """Resume (start again when no checkpoint was written) and compare the adapter to the reference."""
    code, err = cli(train_args(out, backbone) + (["--resume"] if has_checkpoint(out) else []))
    adapter = out / "adapter.safetensors"
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if code == 0:
        same = adapter.read_bytes() == reference
        tally.outcome(kind, same, "" if same else f"{out}: exit 0 with other weights")
        return "bit-exact" if same else "SILENT WRONG"
    clear = code == 2 and last.startswith("geocorr train: error:")
    tally.outcome(kind, None, "" if clear else f"{out}: exit {code}, unclear: {last[:200]}")
    if not clear:
        tally.other += 1
    return f"refused: {last[:150]}"


def corruptions(tally: Tally, work: Path, half: Path, backbone: Path, reference: bytes, flips: int,
                truncations: int, torn_logs: int, rng: random.Random) -> None:
    from geocorr.training import list_checkpoints

    def copy(name: str) -> Path:
        out = work / name
        shutil.copytree(half, out)
        return out

    for i in range(flips):
        out = copy(f"flip{i}")
        newest = list_checkpoints(out)[0][1]
        raw = bytearray(newest.read_bytes())
        byte, bit = rng.randrange(len(raw)), rng.randrange(8)
        raw[byte] ^= 1 << bit
        newest.write_bytes(bytes(raw))
        tally.faults += 1
        print(f"  flip byte {byte:>6} bit {bit}: {resume_and_judge(tally, 'bit flip', out, backbone, reference)}",
              flush=True)
    for i in range(truncations):
        out = copy(f"trunc{i}")
        newest = list_checkpoints(out)[0][1]
        raw = newest.read_bytes()
        size = rng.randrange(len(raw))
        newest.write_bytes(raw[:size])
        tally.faults += 1
        print(f"  truncate to {size:>6} B: {resume_and_judge(tally, 'truncation', out, backbone, reference)}",
              flush=True)
    for i in range(torn_logs):
        out = copy(f"log{i}")
        log = out / "log.jsonl"
        raw = log.read_bytes()
        if i % 2:
            log.write_bytes(raw + b'{"step": 5, "loss": 0.4')  # a writer killed mid-line
            what = "partial line appended"
        else:
            cut = rng.randrange(len(raw) + 1)
            log.write_bytes(raw[:cut])
            what = f"cut at byte {cut}/{len(raw)}"
        tally.faults += 1
        verdict = resume_and_judge(tally, "torn log", out, backbone, reference)
        lines = (out / "log.jsonl").read_text().splitlines()
        print(f"  log {what}: {verdict}, {len(lines)} well-formed lines", flush=True)


def _payload(marker: Path):
    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    return Payload()


def planted(tally: Tally, work: Path, half: Path, backbone: Path) -> None:
    """A pickle whose unpickling creates ``marker`` in each kind of file geocorr reads."""
    import numpy as np
    import torch

    marker = work / "EXECUTED"
    cases: dict[str, str] = {}

    def plant(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": _payload(marker)}, path)

    def attempt(name: str, fn, path: Path | None = None) -> None:
        """Run ``fn`` on a planted file: it must not execute it, and should refuse it naming ``path``."""
        tally.faults += 1
        try:
            fn()
            cases[name] = "accepted?"
            tally.other += 1
        except Exception as err:
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            cases[name] = f"{type(err).__name__}: {text[:160]}"
            if path is not None and (str(path) not in str(err) or "\x1b" in str(err) or "\n" in str(err).strip()):
                tally.other += 1
                tally.notes.append(f"planted {name}: refused, but not in one clear line naming the file: "
                                   f"{type(err).__name__}: {text[:120]}")
        if marker.exists():
            tally.executed += 1
            marker.unlink()

    # training checkpoints, the former pickle checkpoint, the log
    def in_checkpoint(out: Path) -> None:
        for p in out.glob("checkpoint-*"):
            p.unlink()
        plant(out / "checkpoint-00000004.safetensors")

    def in_legacy_checkpoint(out: Path) -> None:
        for p in out.glob("checkpoint-*"):
            p.unlink()
        plant(out / "checkpoint.pt")

    def in_log(out: Path) -> None:
        plant(out / "log.jsonl")

    setups = {"checkpoint-*.safetensors": in_checkpoint, "checkpoint.pt (former format)": in_legacy_checkpoint,
              "log.jsonl": in_log}
    for index, (name, setup) in enumerate(setups.items()):
        out = work / f"planted-{index}"
        shutil.copytree(half, out)
        setup(out)

        def resume(out: Path = out) -> None:
            code, err = cli(train_args(out, backbone) + ["--resume"])
            if code != 0:
                raise ValueError(err.strip().splitlines()[-1])

        attempt(name, resume, out)

    from geocorr.methods.geco.adapter import read_lora_file

    for suffix in (".pth", ".safetensors"):
        plant(work / f"adapter{suffix}")
        attempt(f"adapter {suffix}", lambda s=suffix: read_lora_file(work / f"adapter{s}"), work / f"adapter{suffix}")

    from geocorr.evaluation.cache import FeatureCache

    cache = FeatureCache(directory=work / "cache", fingerprint="fp")
    key = str(next(WILLOW.glob("*/*.png")))
    plant(cache._file(key))

    def cached() -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if cache.get(key) is not None:
                raise AssertionError("a planted file was used as features")
            raise ValueError(f"rejected ({cache.rejected}) and recomputed")

    attempt("eval feature cache", cached)

    from geocorr.evaluation.predictions import Predictions

    plant(work / "predictions.jsonl")
    attempt("saved predictions", lambda: Predictions.load(work / "predictions.jsonl"), work / "predictions.jsonl")

    from geocorr.datasets.pf_willow import load_pf_willow

    root = work / "willow"
    (root / "car(G)").mkdir(parents=True)
    for png in sorted((WILLOW / "car(G)").glob("*.png"))[:3]:
        shutil.copy(png, root / "car(G)" / png.name)
        shutil.copy(png.with_suffix(".mat"), root / "car(G)" / png.with_suffix(".mat").name)
    mat = min((root / "car(G)").glob("*.mat"))
    plant(mat)
    attempt("dataset .mat annotation", lambda: load_pf_willow(root), mat)

    from geocorr.methods.cyclecorr.model import read_weights as read_cycle_weights

    plant(work / "cyclecorr.pth")
    attempt("cyclecorr weights (.pth)", lambda: read_cycle_weights(work / "cyclecorr.pth"), work / "cyclecorr.pth")

    from geocorr.methods.semalign3d.representation import ClassRepresentation

    plant(work / "class.safetensors")
    attempt("SemAlign3D class file", lambda: ClassRepresentation.load(work / "class.safetensors"),
            work / "class.safetensors")

    from geocorr.methods.semalign3d.depth import load_depth_file

    np.save(work / "depth.npy", np.array([_payload(marker)], dtype=object), allow_pickle=True)
    attempt("depth map .npy", lambda: load_depth_file(work / "depth.npy", (4, 4)), work / "depth.npy")

    for name, verdict in cases.items():
        print(f"  {name:>32}: {verdict}", flush=True)


def disk_full(tally: Tally, work: Path, backbone: Path, reference: bytes, trials: int, rng: random.Random) -> None:
    import geocorr.files
    from geocorr.training import list_checkpoints, load_checkpoint

    write_all = geocorr.files._write_all
    for trial in range(trials):
        out = work / f"full{trial}"
        at = (trial % (STEPS // 2 + 1)) + 1  # checkpoints 2, 4, 6, 8, then the adapter
        seen = [0]

        def full(fd, data, at=at, seen=seen):
            if b"geocorr-checkpoint" in data[:200000] or b"geocorr-lora" in data[:4096]:
                seen[0] += 1
                if seen[0] == at:
                    write_all(fd, data[: len(data) // 2])
                    raise OSError(errno.ENOSPC, "No space left on device")
            write_all(fd, data)

        geocorr.files._write_all = full
        try:
            code, err = cli(train_args(out, backbone))
        finally:
            geocorr.files._write_all = write_all
        tally.faults += 1
        lines = [line for line in err.strip().splitlines() if not line.startswith(("Loading weights", "\r"))]
        tmp = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        intact = all(load_checkpoint(p)["step"] == s for s, p in list_checkpoints(out))
        clear = code == 2 and len(lines) == 1 and "no space left" in lines[0] and not tmp and intact
        if not clear:
            tally.other += 1
            tally.notes.append(f"disk full {out}: exit {code}, {lines}, tmp {tmp}, intact {intact}")
        verdict = resume_and_judge(tally, "disk full", out, backbone, reference)
        print(f"  ENOSPC in write {at}: exit {code} '{lines[-1][:110] if lines else ''}', tmp left {tmp}, "
              f"checkpoints intact {intact}; then {verdict}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12, help="SIGKILLs at random moments of training")
    parser.add_argument("--save-kills", type=int, default=4, help="SIGKILLs inside a checkpoint/adapter write")
    parser.add_argument("--flips", type=int, default=12, help="single bit flips in the newest checkpoint")
    parser.add_argument("--truncations", type=int, default=6)
    parser.add_argument("--torn-logs", type=int, default=4)
    parser.add_argument("--disk-full", type=int, default=5)
    parser.add_argument("--kill-window", type=float, default=0.5,
                        help="random kills land in the first this share of a reference run's training time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="geocorr-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    tic = time.perf_counter()

    import torch
    from transformers import AutoModel

    from geocorr.backbones import tiny_config

    backbone = work / "tiny-dinov2"
    torch.manual_seed(0)
    AutoModel.from_config(tiny_config()).save_pretrained(backbone)

    print("reference run (child process, no fault) ...", flush=True)
    proc = child(train_args(work / "reference", backbone))
    while proc.poll() is None and not started_marker(work / "reference").exists():
        time.sleep(0.01)
    t0 = time.monotonic()
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed: {err[-800:]}")
    train_time = (time.monotonic() - t0) * args.kill_window  # the window kills land in (from fit() on)
    reference = (work / "reference" / "adapter.safetensors").read_bytes()
    code, err = cli(train_args(work / "in-process", backbone))
    same = code == 0 and (work / "in-process" / "adapter.safetensors").read_bytes() == reference
    print(f"  in-process run byte-identical to the child's: {same}", flush=True)
    code, err = cli(train_args(work / "half", backbone, steps=STEPS // 2))  # stopped at step 4
    if code != 0:
        raise SystemExit(f"the half run failed: {err[-800:]}")

    print(f"kills ({args.kills} random, {args.save_kills} inside writes; training window ~{train_time:.1f} s):",
          flush=True)
    kills(tally, work, backbone, reference, args.kills, args.save_kills, train_time, rng)
    print("corruptions:", flush=True)
    corruptions(tally, work, work / "half", backbone, reference, args.flips, args.truncations, args.torn_logs, rng)
    print("planted pickles:", flush=True)
    planted(tally, work, work / "half", backbone)
    print("full disk:", flush=True)
    disk_full(tally, work, backbone, reference, args.disk_full, rng)

    print(f"\nfaults injected:               {tally.faults}")
    print(f"runs resumed bit-exactly:      {tally.exact}")
    print(f"clear refusals (exit 2):       {tally.refused}")
    print(f"files executed:                {tally.executed}")
    print(f"silent wrong results:          {tally.silent}")
    print(f"unclear errors / other issues: {tally.other}")
    for note in tally.notes:
        print(f"  - {note}")
    print(f"({time.perf_counter() - tic:.0f} s wall)")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if tally.executed == 0 and tally.silent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
