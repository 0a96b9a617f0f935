"""``geocorr demo``: options are checked before anything is served."""
from geocorr.cli import main


def test_demo_cli_bad_options(tmp_path, capsys):
    assert main(["demo", "--port", "70000", "--method", "dinov2"]) == 2
    assert "--port must lie in 1..65535" in capsys.readouterr().err
    assert main(["demo", "--method", "dinov2", "--backbone", str(tmp_path / "no-such-model")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_demo_cli_serves_the_page(monkeypatch, pretrained_vits14, capsys):
    launched = {}

    def fake_launch(self, **kwargs):
        launched.update(kwargs, title=self.title)

    monkeypatch.setattr("gradio.Blocks.launch", fake_launch)
    assert main(["demo", "--method", "dinov2", "--backbone", str(pretrained_vits14), "--port", "8123"]) == 0
    assert launched["server_name"] == "127.0.0.1" and launched["server_port"] == 8123
    assert launched["title"] == "geocorr demo: dinov2"
    assert "http://127.0.0.1:8123" in capsys.readouterr().out
