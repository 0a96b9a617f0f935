"""CLI start-up: `geocorr --help` builds no sub-command (no torch), `--version`, `python -m geocorr`."""
import subprocess
import sys
from importlib.metadata import version

import pytest

from geocorr.cli import COMMANDS, main

PROBE = """
import sys
from geocorr.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = [m for m in sys.modules if m in ("torch", "transformers", "peft", "matplotlib")
         or m.startswith("geocorr.commands.")]
print("LOADED", " ".join(sorted(heavy)))
"""


def loaded_after(argv: list[str]) -> set[str]:
    """Heavy packages and command modules imported by ``geocorr ARGV`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("LOADED"))
    return set(line.split()[1:])


def test_top_level_help_imports_no_command_and_no_torch():
    assert loaded_after(["--help"]) == set()


def test_a_command_imports_only_its_own_module():
    loaded = loaded_after(["metrics", "--help"])
    assert {m for m in loaded if m.startswith("geocorr.commands.")} <= {"geocorr.commands.metrics",
                                                                       "geocorr.commands.eval",  # metrics reuses it
                                                                       "geocorr.commands.common"}
    assert "geocorr.commands.train" not in loaded and "geocorr.commands.demo" not in loaded


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in COMMANDS.items():
        assert name in out and help_text in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"geocorr {version('geocorr')}"


def test_python_dash_m_geocorr():
    out = subprocess.run([sys.executable, "-m", "geocorr", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"geocorr {version('geocorr')}"
    out = subprocess.run([sys.executable, "-m", "geocorr", "nosuchcommand"], capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice: 'nosuchcommand'" in out.stderr


def test_every_command_builds_its_parser():
    parser = main.__globals__["build_parser"]()  # all commands: every module imports and adds its options
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["match"]._actions}
    assert "method" in actions and "weights" in actions


def test_track_without_the_demo_extra_names_it(monkeypatch, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    for name in ("geocorr.demo.tracking", "geocorr.demo.video"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    assert main(["track", str(video), "--point", "1,1", "--csv", str(tmp_path / "t.csv")]) == 2
    assert "geocorr track needs the 'demo' extra: pip install 'geocorr[demo]'" in capsys.readouterr().err
