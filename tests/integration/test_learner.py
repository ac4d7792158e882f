"""An etcd learner's sidecar: not ready while a learner, promoted by the agent once caught up."""

from __future__ import annotations

from pathlib import Path

import pytest

from player.stores.etcd import EtcdHarness
from tests.integration.conftest import harness_for, variants

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("variant", variants(["etcd"]))
def test_learner_is_not_ready_until_the_agent_promotes_it(variant: str, tmp_path: Path) -> None:
    """Learner rules differ between etcd 3.4, 3.5 and 3.6: every version played."""
    harness = harness_for(variant, tmp_path)
    assert isinstance(harness, EtcdHarness)
    try:
        harness.start(3)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        harness.cluster.add(3, learner=True)
        seeds = ",".join(harness.store_url(o) for o in range(3))
        # Without promotion it stays a learner: 503, and it says why.
        held = harness.start_sidecar(3, env={"AGENT_SEED_URLS": seeds,
                                             "AGENT_PROMOTE_LEARNER": "false"})
        reasons = held.wait_reason("not a voter", timeout=60)
        assert any("is a learner" in r for r in reasons), reasons
        held.stop()
        del harness.sidecars[3]
        # The agent promotes it once it has caught up, then it is ready.
        sidecar = harness.start_sidecar(3, env={"AGENT_SEED_URLS": seeds})
        sidecar.wait_ready(timeout=60)
        assert '"event": "learner_promoted"' in sidecar.proc.log_path.read_text()
        authority = sidecar.status()["view"]["authority"]
        assert [m["voter"] for m in authority["members"]] == [True] * 4
    except BaseException:
        print(harness.logs())
        raise
    finally:
        harness.close()
