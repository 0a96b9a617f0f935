import dataclasses
import json
import math

import pytest
import torch
from torch.utils.data import default_collate

import geocorr
from geocorr.datasets.base import PairDataset
from geocorr.datasets.pf_willow import load_pf_willow, load_willow_image
from geocorr.methods.cyclecorr import NetworkConfig, Viewpoint, toy_car
from geocorr.methods.cyclecorr.crop import load_crops
from geocorr.methods.cyclecorr.objectives import (
    CycleObjective,
    FlowPairDataset,
    InitializationObjective,
    classical_flow,
)
from geocorr.methods.cyclecorr.quartets import QuartetDataset
from geocorr.training.recipes.cyclecorr import (
    WEIGHTS_FILE,
    CycleTrainConfig,
    InitTrainConfig,
    build_trainer,
    make_trainer,
)

SIZE = 64
# wider than the conftest's tiny network: learns visibly within 30 steps
SMALL = NetworkConfig(
    image_size=SIZE,
    encoder=((8, 2), (8, 1), (16, 2), (16, 1), (16, 2), (16, 1), (32, 2), (32, 1)),
    decoder=((32, 1), (16, 2), (16, 1), (16, 2), (16, 1), (8, 2), (8, 1), (8, 2)),
)


class StubNet(torch.nn.Module):
    """Every flow is the translation ``shift``, every matchability 0.5."""

    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def embed(self, images):
        return images

    def decode_flow(self, a, b):
        flow = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        flow[:, 0], flow[:, 1] = self.shift
        return flow

    def decode_matchability(self, a, b):
        return torch.full((a.shape[0], 1, *a.shape[-2:]), 0.5)


def test_cycle_objective_by_hand():
    images = torch.zeros(1, 3, 8, 8)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 4.0
    matchable = torch.zeros(1, 1, 8, 8)
    matchable[..., :6] = 1
    batch = {"s1": images, "r1": images, "r2": images, "s2": images, "flow": flow, "matchable": matchable}
    out = CycleObjective()(StubNet((1.0, 0.0)), batch)
    # composed flow (3, 0): error 1 px² on matchable pixels; M̄ = M_{r1,r2}(p + (1, 0)) = 0.5, 0 past the edge
    assert out["flow_loss"].item() == pytest.approx(1.0)
    assert out["matchability_loss"].item() == pytest.approx(7 / 8 * math.log(2), rel=1e-5)
    assert out["loss"].item() == pytest.approx(1.0 + 7 / 8 * math.log(2), rel=1e-5)
    assert CycleObjective(threshold=0.5)(StubNet((1.0, 0.0)), batch)["flow_loss"].item() == pytest.approx(0.25)


def test_classical_flow_recovers_a_translation():
    torch.manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 72, 72), 5, 1)[0]  # smooth texture
    a, b = base[:, 4:60, 4:60], base[:, 2:58, 3:59]  # b(p + (1, 2)) = a(p)
    flow = classical_flow(a, b)
    assert flow.shape == (2, 56, 56)
    assert flow[0, 10:-10, 10:-10].median().item() == pytest.approx(1.0, abs=0.1)
    assert flow[1, 10:-10, 10:-10].median().item() == pytest.approx(2.0, abs=0.1)


def test_initialization_objective_is_zero_at_its_own_prediction(tiny_network):
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        target, _ = model.net(a, b)
    out = InitializationObjective()(model.net, {"a": a, "b": b, "flow": target})
    assert out["loss"].item() < 1e-8
    offset = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    shifted = InitializationObjective()(model.net, {"a": a, "b": b, "flow": target + offset})
    assert shifted["loss"].item() == pytest.approx(25.0, rel=1e-4)
    assert shifted["flow_epe"].item() == pytest.approx(5.0, rel=1e-4)


def test_published_training_settings():
    cycle, init = CycleTrainConfig(), InitTrainConfig()
    assert (cycle.lr, cycle.betas, cycle.lr_step, cycle.lr_gamma) == (1e-3, (0.9, 0.999), 50_000, 0.5)
    assert cycle.max_steps == 200_000 and cycle.stage == "cycle" and init.stage == "init"
    assert (cycle.batch_size, init.batch_size, cycle.threshold) == (10, 40, 15.0)
    with pytest.raises(ValueError, match="lr_gamma"):
        CycleTrainConfig(lr_gamma=0.0)


@pytest.fixture(scope="module")
def willow_quartets(pf_willow_root):
    annotations = [load_willow_image(p, "car") for p in sorted((pf_willow_root / "car(G)").glob("*.png"))[:4]]
    images = load_crops(annotations, SIZE)
    cars = [toy_car(1.0, 0.5, 0.12), toy_car(1.2, 0.4, 0.10), toy_car(0.9, 0.6, 0.14)]
    views = [Viewpoint(a, 10.0, 1.5) for a in (70, 80, 90, 100)]
    dataset = QuartetDataset.from_images(images, cars, views, k=2)
    dataset.quartets = dataset.quartets[:4]
    return dataset


def test_short_cycle_training_lowers_the_cycle_loss(willow_quartets, tmp_path):
    torch.manual_seed(0)
    model = geocorr.load("cyclecorr", network=SMALL)
    batch = default_collate([willow_quartets[i] for i in range(len(willow_quartets))])
    objective = CycleObjective()
    with torch.no_grad():
        before = objective(model.net, batch)
    conf = CycleTrainConfig(image_size=SIZE, max_steps=30, batch_size=4, log_every=10, checkpoint_every=0, val_every=0)
    make_trainer(model, willow_quartets, tmp_path, conf, progress=False).fit()
    with torch.no_grad():
        after = objective(model.net, batch)
    assert after["flow_loss"] < 0.8 * before["flow_loss"]
    assert after["matchability_loss"] < before["matchability_loss"]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"flow_loss", "matchability_loss"} <= set(log[-1])

    reloaded = geocorr.load("cyclecorr", weights=tmp_path / WEIGHTS_FILE)
    assert reloaded.net.config == model.net.config
    image0, image1 = torch.rand(3, 50, 70), torch.rand(3, 60, 40)
    points = torch.tensor([[10.0, 12.0], [40.0, 30.0]])
    model.eval()
    expected, got = model.match(image0, image1, points), reloaded.match(image0, image1, points)
    assert torch.allclose(expected.points, got.points) and torch.allclose(expected.scores, got.scores)


def test_initialization_stage_runs_on_classical_flow(willow_quartets, tiny_network, tmp_path):
    pairs = FlowPairDataset(willow_quartets, length=4, seed=1)
    item = pairs[0]
    assert item["flow"].shape == (2, SIZE, SIZE)
    assert torch.equal(pairs[3]["flow"], pairs[3]["flow"])  # deterministic per index
    model = geocorr.load("cyclecorr", network=tiny_network(SIZE))
    conf = InitTrainConfig(image_size=SIZE, max_steps=2, batch_size=2, log_every=1, checkpoint_every=0, val_every=0)
    result = make_trainer(model, pairs, tmp_path, conf, progress=False).fit()
    assert math.isfinite(result["loss"])
    assert (tmp_path / WEIGHTS_FILE).is_file()


def test_training_errors(willow_quartets, tiny_network, tmp_path):
    with pytest.raises(ValueError, match="stage"):
        CycleTrainConfig(stage="finetune")
    with pytest.raises(ValueError, match="scheduler"):
        CycleTrainConfig(scheduler="onecycle")
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    with pytest.raises(ValueError, match="image_size"):
        make_trainer(model, willow_quartets, tmp_path, CycleTrainConfig())


def write_car_meshes(folder):
    """Three boxy "CAD models" in a ShapeNet-like layout."""
    import trimesh

    for i, extents in enumerate([(1.0, 0.4, 0.5), (1.2, 0.35, 0.5), (0.9, 0.5, 0.45)]):
        body = trimesh.creation.box(extents=extents)
        cabin = trimesh.creation.box(extents=(0.5, 0.2, 0.4))
        cabin.apply_translation((0.0, extents[1] / 2 + 0.1, 0.0))
        path = folder / f"model{i}" / "models" / "model_normalized.obj"
        path.parent.mkdir(parents=True)
        trimesh.util.concatenate([body, cabin]).export(path)


def test_build_trainer_from_a_pair_dataset(pf_willow_root, tmp_path):
    willow = load_pf_willow(pf_willow_root)
    cars = [pair for pair in willow if pair.category == "car(G)"]
    train_set = PairDataset("pf-willow", "test", cars[:3])
    val_set = PairDataset("pf-willow", "test", cars[40:42])
    write_car_meshes(tmp_path / "meshes")
    conf = CycleTrainConfig(meshes=str(tmp_path / "meshes"), image_size=32, k=2, max_steps=2, batch_size=2,
                            checkpoint_every=0, val_every=0, log_every=1)
    trainer = build_trainer(train_set, tmp_path / "run", conf, val_set=val_set, progress=False)
    assert len(trainer.dataset) > 0
    # the renders are framed like the box-cropped photos: the model's box spans the 32×32 frame (white background)
    shown = (trainer.dataset[0]["s1"] < 0.999).any(0)
    assert shown[0].any() and shown[-1].any() and shown[:, 0].any() and shown[:, -1].any()
    result = trainer.fit()
    assert 0.0 <= result["val_pck@0.1"] <= 1.0 and result["val_points"] == 20
    # the identity map and a random network, logged beside every validation figure
    assert 0.0 <= result["val_identity_pck@0.1"] <= 1.0 and 0.0 <= result["val_random_pck@0.1"] <= 1.0
    restart = build_trainer(train_set, tmp_path / "run2", dataclasses.replace(conf, stage="init"),
                            adapter=tmp_path / "run" / WEIGHTS_FILE, progress=False)
    assert isinstance(restart.dataset, FlowPairDataset)
    with pytest.raises(ValueError, match="meshes"):
        build_trainer(train_set, tmp_path / "run3", dataclasses.replace(conf, meshes=None))


def test_train_command(pf_willow_root, tmp_path, capsys):
    from geocorr.cli import main

    write_car_meshes(tmp_path / "meshes")
    common = ["train", "--method", "cyclecorr", "--dataset", "pf-willow", "--root", str(pf_willow_root),
              "--max-steps", "1", "--batch-size", "2", "--image-size", "32", "--no-progress"]
    assert main(common + ["--meshes", str(tmp_path / "meshes"), "--out", str(tmp_path / "run")]) == 0
    model = geocorr.load("cyclecorr", weights=tmp_path / "run" / WEIGHTS_FILE)
    assert model.image_size == 32
    evaluation = ["eval", "--method", "cyclecorr", "--adapter", str(tmp_path / "run" / WEIGHTS_FILE),
                  "--dataset", "pf-willow", "--root", str(pf_willow_root), "--max-pairs", "2", "--no-progress",
                  "--out", str(tmp_path / "eval" / "results.json")]
    assert main(evaluation) == 0
    assert (tmp_path / "eval" / "results.json").is_file()
    assert main(common + ["--out", str(tmp_path / "run2")]) == 2
    assert "--meshes" in capsys.readouterr().err


def test_train_command_runs_both_stages_and_resumes(pf_willow_root, tmp_path, capsys):
    import json

    from geocorr.cli import main

    write_car_meshes(tmp_path / "meshes")
    common = ["train", "--method", "cyclecorr", "--dataset", "pf-willow", "--root", str(pf_willow_root),
              "--batch-size", "2", "--image-size", "32", "--no-progress", "--meshes", str(tmp_path / "meshes"),
              "--checkpoint-every", "1"]
    assert main(common + ["--stage", "init", "--max-steps", "1", "--out", str(tmp_path / "init")]) == 0
    logged = [json.loads(line) for line in (tmp_path / "init" / "log.jsonl").read_text().splitlines()]
    assert any("flow_epe" in row for row in logged)  # the initialisation objective (regress a classical flow)
    cycle = common + ["--stage", "cycle", "--weights", str(tmp_path / "init" / WEIGHTS_FILE),
                      "--out", str(tmp_path / "cycle")]
    assert main(cycle + ["--max-steps", "1"]) == 0
    logged = [json.loads(line) for line in (tmp_path / "cycle" / "log.jsonl").read_text().splitlines()]
    assert any("matchability_loss" in row for row in logged)  # the cycle objective
    assert main(cycle + ["--max-steps", "2", "--resume"]) == 0  # continues the same run
    assert "step=2" in capsys.readouterr().out
    assert main(["train", "--method", "geco", "--stage", "init", "--dataset", "pf-willow", "--root",
                 str(pf_willow_root), "--out", str(tmp_path / "x")]) == 2
    assert "--stage applies to --method cyclecorr" in capsys.readouterr().err


def test_published_stage_configs_of_the_command():
    from geocorr.training.recipes.cyclecorr import STAGES

    assert STAGES["init"]().batch_size == 40 and STAGES["cycle"]().batch_size == 10  # batch 40 / 10 quartets
    assert STAGES["init"]().max_steps == STAGES["cycle"]().max_steps == 200_000
