"""k8s/galera as shipped on the real control plane: three pods Ready, then a power cut (every
pod SIGKILLed and force-deleted, the controller recreating them together): the inits vote,
the pods come back Ready, and every acknowledged row is on every pod."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from tests.e2e.conftest import ROOT, played

pytestmark = pytest.mark.e2e

ROWS = 20


@pytest.fixture
def galera(tmp_path: Path, e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / "galera", "galera", tmp_path, e2e_control_plane) as player:
        yield player


def sql(player: StatefulSetPlayer, ordinal: int, statement: str) -> str | None:
    """``statement`` as root over the pod's own mariadbd socket (its emptyDir on this
    host); None when mariadbd does not take it (not up, not in a Primary component)."""
    socket = player.pods[ordinal].volume("run") / "mysqld.sock"
    answer = subprocess.run(["mariadb", f"--socket={socket}", "-uroot", "-N", "-B", "-e",
                             statement], capture_output=True, text=True, timeout=30)
    return answer.stdout if answer.returncode == 0 else None


def written(player: StatefulSetPlayer, ordinal: int, statement: str) -> bool:
    return sql(player, ordinal, statement) is not None


def test_power_cut_recovers_by_the_vote(galera: StatefulSetPlayer) -> None:
    galera.start(3)
    galera.wait_ready()
    # A node that just served a joiner's copy takes a moment to accept writes again:
    # every statement is retried until the cluster takes it.
    schema = ("CREATE DATABASE IF NOT EXISTS kv; CREATE TABLE IF NOT EXISTS kv.kv "
              "(k VARCHAR(32) PRIMARY KEY, v TEXT)")
    wait_until(functools.partial(written, galera, 0, schema), what="the kv table", timeout=30)
    for index in range(ROWS):
        statement = f"INSERT INTO kv.kv VALUES ('w/{index}', '{index}')"
        wait_until(functools.partial(written, galera, index % 3, statement),
                   what=f"write w/{index}", timeout=30)
    galera.outage()
    galera.wait_ready(timeout=240)
    for ordinal in range(3):
        rows = sql(galera, ordinal, "SET SESSION wsrep_sync_wait = 1; "
                                    "SELECT k, v FROM kv.kv ORDER BY k")
        assert rows is not None, f"galera-{ordinal} answers no query"
        found = dict(line.split("\t") for line in rows.splitlines())
        assert found == {f"w/{i}": str(i) for i in range(ROWS)}, f"galera-{ordinal}: {found}"
