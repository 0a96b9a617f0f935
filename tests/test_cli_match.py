import pytest

from geocorr.cli import main


@pytest.fixture
def pair(pf_willow_root):
    folder = pf_willow_root / "car(G)"
    return str(folder / "Cars_006a.png"), str(folder / "Cars_007a.png")


def test_match_prints_point_and_writes_picture(pair, pretrained_vits14, tmp_path, capsys, monkeypatch):
    import geocorr.viz

    figures = []
    summary = geocorr.viz.plot_match_summary
    monkeypatch.setattr(geocorr.viz, "plot_match_summary",
                        lambda *a, **k: figures.append(summary(*a, **k)) or figures[-1])
    out = tmp_path / "m.png"
    rc = main(["match", *pair, "--point", "47.9,98.2", "--point", "120,80", "--point", "200,120", "--method",
               "dinov2", "--backbone", str(pretrained_vits14), "--image-size", "112", "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("(47.9, 98.2) -> (") and "score" in lines[0] and len(lines) == 4  # 3 + "wrote"
    assert out.stat().st_size > 10_000
    top, *maps = figures[0].axes
    assert len(top.lines) == 3  # every point drawn (was: only the first)
    assert sorted(t.get_text() for t in top.texts) == ["1", "1", "2", "2", "3", "3"]
    assert [m.get_title().split()[0] for m in maps] == ["#1", "#2", "#3"]  # a heat map per query


def test_match_reads_grey_and_rgba_images_and_guards_size(pair, pretrained_vits14, tmp_path, capsys, monkeypatch):
    from PIL import Image

    with Image.open(pair[0]) as img:
        img.convert("L").save(tmp_path / "grey.png")
        img.convert("RGBA").save(tmp_path / "alpha.png")
    args = ["--point", "47.9,98.2", "--method", "dinov2", "--backbone", str(pretrained_vits14), "--image-size", "56"]
    assert main(["match", str(tmp_path / "grey.png"), str(tmp_path / "alpha.png"), *args]) == 0
    monkeypatch.setenv("GEOCORR_MAX_IMAGE_PIXELS", "1000")
    capsys.readouterr()
    assert main(["match", *pair, *args]) == 2
    err = capsys.readouterr().err
    assert "pixels is more than the limit of 1,000" in err and "GEOCORR_MAX_IMAGE_PIXELS=" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_match_bad_input_is_one_clear_line(pair, tmp_path, capsys):
    rc = main(["match", pair[0], str(tmp_path / "none.png"), "--point", "1,1", "--method", "dinov2",
               "--backbone", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "target: no such file" in err and "Traceback" not in err
    rc = main(["match", *pair, "--point", "9999,1", "--method", "dinov2", "--backbone", str(tmp_path)])
    assert rc == 2
    with pytest.raises(SystemExit):
        main(["match", *pair, "--point", "1;2"])


def test_match_with_a_method_without_reusable_features(pair, tmp_path, capsys):
    out = tmp_path / "flow.png"
    rc = main(["match", *pair, "--point", "47.9,98.2", "--method", "cyclecorr", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("(47.9, 98.2) -> (") and out.stat().st_size > 10_000
