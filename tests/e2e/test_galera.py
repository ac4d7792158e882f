"""k8s/galera as shipped on the real control plane: three pods Ready, then a power cut (every
pod SIGKILLed and force-deleted, the controller recreating them together): the inits vote,
the pods come back Ready, and every acknowledged row is on every pod."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from tests.e2e.conftest import ROOT, played

pytestmark = pytest.mark.e2e

ROWS = 20


@pytest.fixture
def galera(tmp_path: Path, e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / "galera", "galera", tmp_path, e2e_control_plane) as player:
        yield player


class Refused(Exception):
    """mariadbd did not take a statement (not up, not in a Primary component)."""


def sql(player: StatefulSetPlayer, ordinal: int, statement: str) -> str:
    """``statement`` as root over the pod's own mariadbd socket (its emptyDir on this
    host). The client connects from inside that directory: the host path is longer than
    a socket address may be (108 bytes)."""
    run = player.pods[ordinal].volume("run")
    answer = subprocess.run(["mariadb", "--socket=./mysqld.sock", "-uroot", "-N", "-B", "-e",
                             statement], capture_output=True, text=True, timeout=30, cwd=run)
    if answer.returncode != 0:
        raise Refused(f"galera-{ordinal}: {answer.stderr.strip()}")
    return answer.stdout


def test_power_cut_recovers_by_the_vote(galera: StatefulSetPlayer) -> None:
    galera.start(3)
    galera.wait_ready()
    sql(galera, 0, "CREATE DATABASE kv; CREATE TABLE kv.kv (k VARCHAR(32) PRIMARY KEY, v TEXT)")
    for index in range(ROWS):
        sql(galera, index % 3, f"INSERT INTO kv.kv VALUES ('w/{index}', '{index}')")
    galera.outage()
    galera.wait_ready(timeout=240)
    for ordinal in range(3):
        rows = sql(galera, ordinal, "SET SESSION wsrep_sync_wait = 1; "
                                    "SELECT k, v FROM kv.kv ORDER BY k")
        found = dict(line.split("\t") for line in rows.splitlines())
        assert found == {f"w/{i}": str(i) for i in range(ROWS)}, f"galera-{ordinal}: {found}"
