"""The seed's wsrep-new-cluster taken out of init's galera.cnf once another member joined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from agent.config.settings import Settings
from agent.model import Snapshot
from agent.stores.galera.api import GaleraBackend
from agent.stores.galera.bootstrap import DROPPED, drop_new_cluster, is_new_cluster
from agent.stores.galera.status import parse_status
from tests.unit.stores.galera.answers import STATUS

SEED = """[mysqld]
wsrep_cluster_address = gcomm://a:4567,b:4567
# the vote: galera-0 holds the latest position
wsrep-new-cluster
"""


@pytest.mark.parametrize("line", ["wsrep-new-cluster", "wsrep_new_cluster\n",
                                  "  WSREP-New-Cluster = 1", "loose-wsrep-new-cluster",
                                  "wsrep_new_cluster=ON"])
def test_every_spelling_of_the_flag(line: str) -> None:
    assert is_new_cluster(line)


@pytest.mark.parametrize("line", ["# wsrep-new-cluster", "; wsrep-new-cluster",
                                  "[wsrep-new-cluster]", "wsrep_cluster_address = gcomm://",
                                  "wsrep_new_cluster_x", "", "!include x.cnf"])
def test_what_is_not_the_flag(line: str) -> None:
    assert not is_new_cluster(line)


def test_the_flag_is_dropped_and_said_why(tmp_path: Path) -> None:
    config = tmp_path / "galera.cnf"
    config.write_text(SEED)
    config.chmod(0o640)
    (tmp_path / "other.cnf").write_text("[mysqld]\nport = 3306\n")
    (tmp_path / "notes.txt").write_text("wsrep-new-cluster\n")
    assert drop_new_cluster(tmp_path) == ["galera.cnf"]
    assert config.read_text() == SEED.replace("wsrep-new-cluster\n", DROPPED)
    assert config.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "notes.txt").read_text() == "wsrep-new-cluster\n"  # not a config
    assert drop_new_cluster(tmp_path) == []  # once: nothing left to drop


def backend(tmp_path: Path, **answer: str) -> GaleraBackend:
    settings = Settings(backend="galera", output_dir=tmp_path)
    galera = GaleraBackend(httpx.AsyncClient(), "unix:///run/mysqld/mysqld.sock",
                           settings=settings)
    status: dict[str, Any] = {**STATUS, **answer}
    galera.own = parse_status(status)
    return galera


@pytest.mark.parametrize("answer", [{"wsrep_cluster_size": "1"},
                                    {"wsrep_cluster_status": "non-Primary"}])
async def test_the_seed_alone_or_outside_a_primary_keeps_the_flag(
        tmp_path: Path, answer: dict[str, str]) -> None:
    """Nobody has joined (or the node is out of the component): a restart seeds the same
    history again, as the vote decided, or waits; the flag stays."""
    (tmp_path / "galera.cnf").write_text(SEED)
    galera = backend(tmp_path, **answer)
    await galera.mend(Snapshot(), None)
    assert (tmp_path / "galera.cnf").read_text() == SEED


async def test_once_another_member_joined_the_flag_goes_once(tmp_path: Path) -> None:
    (tmp_path / "galera.cnf").write_text(SEED)
    galera = backend(tmp_path)  # Primary, a cluster of 3
    with capture_logs() as logs:
        await galera.mend(Snapshot(), None)
        (tmp_path / "galera.cnf").write_text(SEED)  # not looked at again
        await galera.mend(Snapshot(), None)
    assert [e["event"] for e in logs] == ["galera_bootstrap_flag_dropped"]
    assert logs[0]["files"] == ["galera.cnf"] and logs[0]["cluster_size"] == 3


async def test_a_config_it_cannot_write_is_named_once(tmp_path: Path) -> None:
    (tmp_path / "galera.cnf").write_text(SEED)
    galera = backend(tmp_path)
    galera.config_dir = tmp_path / "missing"
    with capture_logs() as logs:
        await galera.mend(Snapshot(), None)
        await galera.mend(Snapshot(), None)
    assert [e["event"] for e in logs] == ["galera_bootstrap_flag_kept"]
    assert "writable" in logs[0]["why"]


async def test_without_init_s_output_nothing_is_touched(tmp_path: Path) -> None:
    galera = GaleraBackend(httpx.AsyncClient(), "unix:///run/mysqld/mysqld.sock",
                           settings=Settings(backend="galera"))
    galera.own = parse_status(STATUS)
    with capture_logs() as logs:
        await galera.mend(Snapshot(), None)
    assert logs == []
