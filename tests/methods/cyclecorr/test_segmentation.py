"""Shape-to-image segmentation transfer: part-labelled CAD files, their names tied to PASCAL-Part's,
retrieval of the render, and ``geocorr eval --method cyclecorr --metrics segmentation``."""
import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from scipy import ndimage
from scipy.io import savemat

import geocorr
from geocorr.datasets.pascal_parts import PartImage, load_pascal_parts
from geocorr.evaluation.cyclecorr import segmentation_transfer_scores
from geocorr.methods.cyclecorr import Camera, Viewpoint, box, load_mesh, render, toy_car
from geocorr.methods.cyclecorr.mesh import part_key
from geocorr.methods.cyclecorr.parts import label_parts
from geocorr.methods.cyclecorr.quartets import framed_camera, retrieve_renders

from .conftest import ConstantFlow

VIEWS = (Viewpoint(60.0, 15.0, 1.5), Viewpoint(210.0, 30.0, 1.5), Viewpoint(120.0, 0.0, 1.5))
CAR_PARTS = ["body", "cabin", "wheel"]  # toy_car's labels 1, 2, 3


def car_parts(car):
    """toy_car as trimesh pieces: (label, piece), the wheels one piece each."""
    colors = (car.vertex_colors.numpy() * 255).astype(np.uint8)
    for label in (1, 2, 3):
        part = trimesh.Trimesh(car.vertices.numpy(), car.faces[car.face_labels == label].numpy(),
                               vertex_colors=colors, process=False)
        part.remove_unreferenced_vertices()
        for piece in part.split(only_watertight=False) if label == 3 else [part]:
            yield label, piece


def write_glb(path, names=("Body", "Cabin.001", "Wheel_{}")):
    """toy_car as a GLB whose nodes are named ``names`` (per label; "{}" numbers the wheels)."""
    scene = trimesh.Scene()
    wheel = 0
    for label, piece in car_parts(toy_car()):
        wheel += label == 3
        scene.add_geometry(piece, node_name=names[label - 1].format(wheel), geom_name=f"mesh{len(scene.geometry)}")
    scene.export(path)


def write_obj(path, directive="o", names=("body", "cabin", "wheel")):
    """toy_car as an OBJ text file with one ``o``/``g`` block per part."""
    lines, offset = [], 1
    for label, piece in car_parts(toy_car()):
        lines.append(f"{directive} {names[label - 1]}")
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in piece.vertices]
        lines += [f"f {a + offset} {b + offset} {c + offset}" for a, b, c in piece.faces]
        offset += len(piece.vertices)
    path.write_text("\n".join(lines) + "\n")


def name_map(labels, names):
    """A label map (0/-1 = none) as part names ("" for none)."""
    table = np.array([""] + list(names), dtype=object)
    return table[labels.clamp(min=0).numpy()]


def test_part_key():
    assert part_key("Wheel.001") == part_key("wheel_2") == part_key("WHEEL") == "wheel"
    assert part_key("left_mirror") == part_key("Left Mirror 3") == "leftmirror"


@pytest.mark.parametrize("kind", ["glb", "obj-o", "obj-g"])
def test_labelled_files_load_with_their_part_names(tmp_path, kind):
    path = tmp_path / ("car.glb" if kind == "glb" else "car.obj")
    if kind == "glb":
        write_glb(path)
    else:
        write_obj(path, directive=kind[-1], names=("Body", "cabin_1", "wheel.002"))
    mesh = load_mesh(path)
    assert mesh.part_names == ("body", "cabin", "wheel")  # keys, sorted; the four wheels are one part
    # same geometry, same parts: the label maps of one view agree pixel for pixel, by name
    camera = Camera.from_viewpoint(VIEWS[0], (48, 48))
    reference, loaded = render(toy_car(), camera), render(mesh, camera)
    assert (name_map(loaded.labels, mesh.part_names) == name_map(reference.labels, CAR_PARTS)).all()
    assert (reference.labels > 0).sum() > 200


def test_files_without_part_names_are_unlabelled(tmp_path):
    trimesh.creation.box().export(tmp_path / "plain.ply")
    (tmp_path / "plain.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    for name in ("plain.ply", "plain.obj"):
        mesh = load_mesh(tmp_path / name)
        assert mesh.part_names == () and not mesh.face_labels.any()


def test_label_parts_maps_mesh_names_to_dataset_ids():
    car = toy_car()  # 1 body, 2 cabin, 3 wheel
    vocabulary = ["backside", "Body", "door", "wheel_1"]
    mapped = label_parts(car, vocabulary)
    expected = torch.tensor([0, 2, 0, 4])[car.face_labels]  # body -> 1 + 1, cabin unknown -> 0, wheel -> 3 + 1
    assert torch.equal(mapped.face_labels, expected) and mapped.part_names == tuple(vocabulary)
    aliased = label_parts(car, vocabulary, {"Cabin": "door"})
    assert torch.equal(aliased.face_labels, torch.tensor([0, 2, 3, 4])[car.face_labels])
    with pytest.raises(ValueError, match="roof, not among the parts"):
        label_parts(car, vocabulary, {"cabin": "roof"})
    assert not label_parts(box(label=1), vocabulary).face_labels.any()  # labels without names: unnamed


def test_retrieve_renders_finds_the_model_and_the_view():
    cars = [toy_car(), toy_car(body_length=1.4, cabin_length=0.3, wheel_radius=0.2)]
    candidates = list(VIEWS)
    images = torch.stack([render(cars[1], Camera.from_viewpoint(VIEWS[2], (32, 32))).rgb,
                          render(cars[0], Camera.from_viewpoint(VIEWS[1], (32, 32))).rgb])
    assert retrieve_renders(images, cars, candidates) == [(VIEWS[2], 1), (VIEWS[1], 0)]
    # images framed to their object (as box crops are) are found among renders framed the same way
    crops = torch.stack([framed(cars[1], VIEWS[0])[0], framed(cars[0], VIEWS[2])[0]])
    assert retrieve_renders(crops, cars, candidates, framed=True) == [(VIEWS[0], 1), (VIEWS[2], 0)]
    with pytest.raises(ValueError, match="at least one mesh"):
        retrieve_renders(images, [], candidates)


def framed(mesh, view, size=32):
    """The mesh rendered from ``view`` with its object box spanning the frame (rgb, labels -1
    background), as the transfer frames its renders and as PASCAL-Part images are cropped."""
    shape = render(mesh, framed_camera(mesh, view, size))
    return shape.rgb, shape.labels


def part_image(tmp_path, name, rgb, labels):
    """A PartImage of a 3×S×S image whose object box is the whole image; labels 0 = none."""
    path = tmp_path / f"{name}.png"
    Image.fromarray((rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    size = rgb.shape[-1]
    return PartImage(path, (labels - 1).numpy(), "car", (0, 0, size - 1, size - 1))


def test_transfer_through_the_flow_is_exact_where_the_identity_is_not(tmp_path, tiny_network):
    # the image is the render framed to its object box (as the transfer frames it), moved 3 px right:
    # F_{image,render} = (-3, 0); what leaves the frame on the right is gone from the truth too
    car, view = toy_car(), VIEWS[0]
    framed_rgb, framed_labels = framed(car, view)
    rgb, labels = torch.ones(3, 32, 32), torch.zeros(32, 32, dtype=torch.long)
    rgb[:, :, 3:], labels[:, 3:] = framed_rgb[:, :, :-3], framed_labels.clamp(min=0)[:, :-3]
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    model.net = ConstantFlow(model.net.config, dx=-3.0)
    scores = segmentation_transfer_scores(model, [part_image(tmp_path, "shifted", rgb, labels)], [car], CAR_PARTS,
                                          candidates=[view])
    assert scores["parts"] == CAR_PARTS and scores["num_images"] == 1
    assert scores["miou"] == 100.0 and scores["iou"] == {"body": 100.0, "cabin": 100.0, "wheel": 100.0}
    # the identity pastes the unmoved render: by hand, IoU of a part = |P ∩ shifted P| / |P ∪ shifted P|
    pasted = framed_labels.clamp(min=0)
    expected = [((pasted == k) & (labels == k)).sum().item() / ((pasted == k) | (labels == k)).sum().item()
                for k in (1, 2, 3)]
    assert scores["identity_miou"] == pytest.approx(100 * sum(expected) / 3)
    assert scores["identity_miou"] < 90
    assert scores["retrieved"] == [{"image": "shifted.png", "mesh": 0, "azimuth": 60.0, "elevation": 15.0}]


def test_wrong_truth_lowers_the_iou_by_hand(tmp_path, tiny_network):
    # the truth calls the cabin "body": body IoU = |body| / (|body| + |cabin|); cabin is absent from
    # the truth (left out of the mean); wheels exact
    car, view = toy_car(), VIEWS[1]
    rgb, labels = framed(car, view)
    pasted = labels.clamp(min=0)
    truth = torch.where(pasted == 2, 1, pasted)
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    model.net = ConstantFlow(model.net.config)
    scores = segmentation_transfer_scores(model, [part_image(tmp_path, "a", rgb, truth)], [car], CAR_PARTS)
    body, cabin = (pasted == 1).sum().item(), (pasted == 2).sum().item()
    assert scores["iou"]["body"] == pytest.approx(100 * body / (body + cabin))
    assert scores["iou"]["cabin"] is None and scores["iou"]["wheel"] == 100.0
    assert scores["miou"] == pytest.approx((100 * body / (body + cabin) + 100) / 2)
    with pytest.raises(ValueError, match="no CAD model labels any of the parts"):
        segmentation_transfer_scores(model, [part_image(tmp_path, "a", rgb, truth)], [box()], CAR_PARTS)


def car_annotation(labels: np.ndarray) -> dict:
    """A PASCAL-Part ``anno`` of one car whose object mask is the whole image; parts body, cabin and one
    ``wheel_<n>`` per connected wheel region (as PASCAL-Part numbers instances)."""
    masks = [("body", labels == 1), ("cabin", labels == 2)]
    wheels, count = ndimage.label(labels == 3)
    masks += [(f"wheel_{n}", wheels == n) for n in range(1, count + 1)]
    parts = np.zeros((1, len(masks)), dtype=[("part_name", "O"), ("mask", "O")])
    for i, (name, mask) in enumerate(masks):
        parts[0, i]["part_name"], parts[0, i]["mask"] = name, mask.astype(np.uint8)
    objects = np.zeros((1, 1), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    objects[0, 0]["class"], objects[0, 0]["class_ind"] = "car", 7
    objects[0, 0]["mask"], objects[0, 0]["parts"] = np.ones(labels.shape, np.uint8), parts
    return {"anno": {"objects": objects}}


@pytest.fixture
def car_parts_root(tmp_path):
    """PASCAL-Part layout: 3 images of toy_car rendered from grid viewpoints and framed to the car, 32×32
    (1 train, 2 test)."""
    root = tmp_path / "parts"
    (root / "Annotations_Part").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for i, view in enumerate(VIEWS):
        rgb, labels = framed(toy_car(), view)
        savemat(root / "Annotations_Part" / f"2008_00000{i}.mat", car_annotation(labels.numpy()))
        rgb = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(root / "JPEGImages" / f"2008_00000{i}.jpg", quality=95)
    return root


def test_pascal_parts_merges_part_instances_and_keeps_the_object_box(car_parts_root):
    data = load_pascal_parts(car_parts_root, "car", num_train=1)
    assert data.part_names == ["body", "cabin", "wheel"]  # wheel_1 … wheel_n are one class
    assert len(data.test) == 2 and data.test[0].bbox == (0, 0, 31, 31)
    assert set(np.unique(data.test[0].labels)) == {-1, 0, 1, 2}
    with pytest.raises(ValueError, match="category must be one of"):
        load_pascal_parts(car_parts_root, "dragon")


def run_eval(tmp_path, tiny_network, root, *extra):
    from geocorr.cli import main

    network = json.dumps(dataclasses.asdict(tiny_network(32)))
    return main(["eval", "--method", "cyclecorr", "--option", f"network={network}", "--dataset", "pascal-parts",
                 "--root", str(root), "--dataset-option", "category=car", "--dataset-option", "num_train=1",
                 "--no-progress", *extra])


def test_eval_command_transfers_segmentation_beside_its_baselines(tmp_path, tiny_network, car_parts_root, capsys):
    meshes = tmp_path / "meshes"
    (meshes / "cars").mkdir(parents=True)
    write_glb(meshes / "cars" / "car.glb", names=("Chassis", "Cabin.001", "Wheel_{}"))
    trimesh.creation.box().export(meshes / "crate.ply")  # names no part: dropped from the transfer
    part_map = tmp_path / "parts.json"
    part_map.write_text(json.dumps({"chassis": "body"}))
    out = tmp_path / "result.json"
    code = run_eval(tmp_path, tiny_network, car_parts_root, "--meshes", str(meshes), "--part-map", str(part_map),
                    "--metrics", "matchability,segmentation", "--out", str(out))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "segmentation: 1 of 2 meshes label parts of car" in printed.out
    assert "2 test images of car, mean IoU over body, cabin, wheel" in printed.out
    assert "matchability AP over 1 consecutive test pairs of car" in printed.out
    result = json.loads(out.read_text())
    scores = result["metrics"]["segmentation"]
    # each test image is a grid view of the labelled car, cropped to itself: the retrieval finds that view
    # and the rendered labels pasted without flow are the truth
    assert [(r["azimuth"], r["elevation"]) for r in scores["retrieved"]] == [(210.0, 30.0), (120.0, 0.0)]
    assert scores["identity_miou"] == 100.0
    assert 0 <= scores["miou"] <= 100 and 0 <= scores["random_miou"] <= 100
    assert result["config"]["metrics"] == ["matchability", "segmentation"]
    # matchability's chance level: every part occurs in both test images, so the truly matchable pixels
    # of the first are its part pixels
    first, second = framed(toy_car(), VIEWS[1])[1], framed(toy_car(), VIEWS[2])[1]
    assert set(first.unique().tolist()) == set(second.unique().tolist()) == {-1, 1, 2, 3}
    assert result["metrics"]["chance_ap"] == pytest.approx(100 * (first > 0).sum().item() / 32**2)
    assert 0 <= result["metrics"]["random_ap"] <= 100 and 0 <= result["metrics"]["matchability_ap"] <= 100
    # without the alias, "chassis" is no part of the car: the body is left unlabelled and not scored
    code = run_eval(tmp_path, tiny_network, car_parts_root, "--meshes", str(meshes), "--metrics", "segmentation")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "mesh parts not among its parts (left unlabelled): chassis" in printed.out
    assert "mean IoU over cabin, wheel:" in printed.out


def test_eval_command_refuses_bad_segmentation_input(tmp_path, tiny_network, car_parts_root, capsys):
    unlabelled = tmp_path / "plain"
    unlabelled.mkdir()
    trimesh.creation.box().export(unlabelled / "crate.ply")
    aliases = tmp_path / "aliases.json"
    aliases.write_text(json.dumps({"top": "Roof"}))
    cases = [
        (["--metrics", "matchability,iou"], "unknown metric iou (choose among matchability, segmentation)"),
        (["--metrics", "segmentation"], "--metrics segmentation needs --meshes DIR"),
        (["--meshes", str(unlabelled)], f"--meshes {unlabelled}: none of its 1 meshes labels a part of car"),
        (["--meshes", str(tmp_path / "absent")], "mesh folder not found"),
        (["--meshes", str(unlabelled), "--part-map", str(unlabelled / "crate.ply")], "not JSON"),
        (["--meshes", str(unlabelled), "--metrics", "matchability"], "add it to --metrics"),
        (["--meshes", str(unlabelled), "--part-map", str(aliases)], "Roof is not a part of car (body, cabin, wheel)"),
    ]
    for extra, message in cases:
        assert run_eval(tmp_path, tiny_network, car_parts_root, *extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    from geocorr.cli import main

    code = main(["eval", "--method", "dinov2", "--dataset", "pf-willow", "--root", str(tmp_path), "--metrics",
                 "segmentation", "--meshes", str(unlabelled)])
    assert code == 2 and "apply to --method cyclecorr --dataset pascal-parts" in capsys.readouterr().err


def test_segmentation_and_matchability_scores_with_the_model_on_another_device(tmp_path, tiny_network):
    from geocorr.evaluation.cyclecorr import matchability_average_precision, matchability_chance, random_network

    from ...test_devices_paths import FAKE, FakeGpuMode, _register_fake_backend

    car, images = toy_car(), []
    for i, view in enumerate(VIEWS):
        rgb, labels = framed(car, view)
        images.append(part_image(tmp_path, f"v{i}", rgb, labels.clamp(min=0)))
    cpu = geocorr.load("cyclecorr", network=tiny_network(32))
    want = segmentation_transfer_scores(cpu, images, [car], CAR_PARTS, candidates=list(VIEWS))
    pairs = list(itertools.pairwise(images))
    want_ap = matchability_average_precision(cpu, pairs), matchability_average_precision(random_network(cpu), pairs)
    _register_fake_backend()
    with FakeGpuMode():
        model = geocorr.load("cyclecorr", network=tiny_network(32), device=FAKE)
        model.load_state_dict(cpu.state_dict())
        got = segmentation_transfer_scores(model, images, [car], CAR_PARTS, candidates=list(VIEWS))
        got_ap = matchability_average_precision(model, pairs), matchability_average_precision(random_network(model),
                                                                                              pairs)
        assert matchability_chance(model, pairs) == matchability_chance(cpu, pairs)
    assert got == want and got_ap == pytest.approx(want_ap)
