"""Two processes under torchrun (gloo, CPU) give exactly the predictions of one process."""
import json
import os
import subprocess
import sys

import pytest

from geocorr.backbones import tiny_config
from geocorr.cli import main


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path, copy_willow):
    import torch
    from transformers import Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(tiny_config()).save_pretrained(tmp_path / "backbone")
    root = copy_willow(tmp_path / "willow", "car(G)", "duck(S)", images=2)
    common = ["-m", "geocorr.cli", "eval", "--method", "dinov2", "--backbone", str(tmp_path / "backbone"),
              "--image-size", "28", "--dataset", "pf-willow", "--root", str(root), "--no-progress",
              "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's processes: float sums depend on the thread count
    try:
        assert main(common[2:] + ["--save-predictions", str(tmp_path / "one.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              *common, "--save-predictions", str(tmp_path / "two.json")],
                             env=env, capture_output=True, text=True, timeout=300)
    assert sharded.returncode == 0, sharded.stderr
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert one["pairs"] == two["pairs"] and len(one["pairs"]) == 4
    assert "4 pairs, 4 images forwarded" in sharded.stdout  # each process forwarded its own 2 images
