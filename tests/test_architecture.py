"""Arrows point one way: the import-linter contracts of pyproject.toml ([tool.importlinter]) hold."""
from pathlib import Path

from importlinter.cli import lint_imports  # the dev extra installs it: CI fails, never skips, without it

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out[-3000:]
