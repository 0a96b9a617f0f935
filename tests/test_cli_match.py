import pytest

from geocorr.cli import main


@pytest.fixture
def pair(pf_willow_root):
    folder = pf_willow_root / "car(G)"
    return str(folder / "Cars_006a.png"), str(folder / "Cars_007a.png")


def test_match_prints_point_and_writes_picture(pair, pretrained_vits14, tmp_path, capsys):
    out = tmp_path / "m.png"
    rc = main(["match", *pair, "--point", "47.9,98.2", "--method", "dinov2", "--backbone",
               str(pretrained_vits14), "--image-size", "112", "--out", str(out)])
    assert rc == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("(47.9, 98.2) -> (") and "score" in line
    assert out.stat().st_size > 10_000


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
