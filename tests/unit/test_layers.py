"""The import contracts of `make lint`: every agent module has a layer, and each contract
fails on a deliberately wrong import (run on a copy of the tree)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = {c["name"]: c for c in CONFIG["tool"]["importlinter"]["contracts"]}
LAYERS = CONTRACTS["agent: entry points > store slices > engine > adapters and kit > pure"]
PURE = CONTRACTS["pure modules (and every store's planners and parsers) do no network I/O"]


def _layered() -> set[str]:
    return {name.strip() for layer in LAYERS["layers"] for name in layer.split(":")}


def test_every_agent_module_has_a_layer() -> None:
    """A new module must take its place in the layers (a store folder is in agent.stores)."""
    modules = {f"agent.{p.stem}" for p in (ROOT / "agent").glob("*.py") if p.stem != "__init__"}
    modules |= {f"agent.{p.name}" for p in (ROOT / "agent").iterdir()
                if (p / "__init__.py").exists()}
    assert modules == _layered()


def test_the_pure_layer_is_checked_for_network_imports() -> None:
    pure = {name.strip() for name in LAYERS["layers"][-1].split(":")}
    assert pure <= set(PURE["source_modules"])


def _edit(path: Path, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, path
    path.write_text(f"{head}{sep}{line}\n{rest}", encoding="utf-8")


def test_each_contract_fails_on_a_wrong_import(tmp_path: Path) -> None:
    for tree in ("agent", "player", "tests", "bench"):
        shutil.copytree(ROOT / tree, tmp_path / tree,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    _edit(tmp_path / "agent" / "model.py", "from agent.leave import Leaver  # upwards")
    _edit(tmp_path / "agent" / "quorum.py", "import httpx  # network I/O in a pure module")
    _edit(tmp_path / "agent" / "stores" / "rqlite" / "plan.py",
          "from agent.stores.etcd import plan  # another store's folder")
    _edit(tmp_path / "agent" / "retry.py", "import player.wait  # the test harness")
    _edit(tmp_path / "agent" / "promote.py",
          "from agent.stores.etcd import api  # a store named by the engine")
    _edit(tmp_path / "player" / "proc.py", "import player.demo  # a cycle")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} BROKEN" in result.stdout, result.stdout
    assert "agent.model -> agent.leave" in result.stdout
    assert "agent.quorum -> httpx" in result.stdout
    assert "agent.stores.rqlite.plan -> agent.stores.etcd.plan" in result.stdout
