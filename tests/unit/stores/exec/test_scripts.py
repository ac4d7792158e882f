"""The Galera exec hooks (k8s/exec-galera/hooks) against fake MariaDB programs."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[4]
HOOKS = ROOT / "k8s" / "exec-galera" / "hooks"
TEMPLATE = ROOT / "k8s" / "exec-galera" / "templates" / "galera.cnf.j2"
UUID = "c6a865c8-eeaa-11f1-8154-b3de0c9c639c"
TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the hooks read /proc (Linux)")

# [mysqld] of the rendered file as my_print_defaults prints it: --name=value a line.
FAKE_PRINT_DEFAULTS = r"""#!/bin/sh
for arg; do case "$arg" in --defaults-file=*) file=${arg#*=} ;; esac; done
exec awk '/^\[/ { on = ($0 == "[mysqld]"); next }
    on && /=/ && !/^#/ {
        name = $0; sub(/[ \t]*=.*/, "", name)
        value = $0; sub(/^[^=]*=[ \t]*/, "", value); gsub(/"/, "", value)
        print "--" name "=" value
    }' "$file"
"""
# Each fake records its arguments, one call a line, each argument ended by \037.
# mariadbd: --fake-daemon runs as a "mariadbd" until killed (SIGTERM ignored with
# $FAKE_DIR/ignore-term, as a hung shutdown); --wsrep-recover appends
# $FAKE_DIR/recover-output to its --log-error file; a server started by seed or start
# writes its pid to $FAKE_DIR/server.pid, prints $FAKE_DIR/server-output and runs until
# killed, or exits 1 when that file exists. With $FAKE_DIR/server-late, the server runs as
# "sh" (the name a hook's forked child has until it execs mariadbd) and writes its pid
# only once a ping has failed ($FAKE_DIR/pinged).
FAKE_MARIADBD = r"""#!/bin/sh
if [ -f "$FAKE_DIR/server-late" ] && [ -z "${FAKE_LATE:-}" ]; then
    FAKE_LATE=yes exec sh "$0" "$@"
fi
{ printf '%s\037' "$@"; echo; } >>"$FAKE_DIR/mariadbd.calls"
if [ "${1:-}" = --fake-daemon ]; then
    if [ -f "$FAKE_DIR/ignore-term" ]; then trap '' TERM; fi
    while :; do sleep 0.1; done
fi
log=""
recover=""
for arg; do
    case "$arg" in
        --log-error=*) log=${arg#*=} ;;
        --wsrep-recover) recover=yes ;;
    esac
done
if [ -n "$recover" ]; then
    if [ -f "$FAKE_DIR/recover-output" ]; then cat "$FAKE_DIR/recover-output" >>"$log"; fi
    exit 0
fi
if [ -n "${FAKE_LATE:-}" ]; then
    while [ ! -f "$FAKE_DIR/pinged" ]; do sleep 0.05; done
fi
# Written whole (a reader, the fake ping, must never see it empty).
echo $$ >"$FAKE_DIR/server.pid.tmp" && mv "$FAKE_DIR/server.pid.tmp" "$FAKE_DIR/server.pid"
if [ -f "$FAKE_DIR/server-output" ]; then cat "$FAKE_DIR/server-output"; exit 1; fi
while :; do sleep 0.1; done
"""
# The SQL client prints $FAKE_DIR/status and exits with $FAKE_DIR/status-rc (default 0).
FAKE_MARIADB = r"""#!/bin/sh
{ printf '%s\037' "$@"; echo; } >>"$FAKE_DIR/mariadb.calls"
cat "$FAKE_DIR/status" 2>/dev/null
exit "$(cat "$FAKE_DIR/status-rc" 2>/dev/null || echo 0)"
"""
# ping (and shutdown) answer with $FAKE_DIR/ping-rc; else, with $FAKE_DIR/ping-waits,
# once a server started by seed or start runs (touching $FAKE_DIR/pinged until then);
# else 0.
FAKE_MARIADB_ADMIN = r"""#!/bin/sh
if [ -f "$FAKE_DIR/ping-rc" ]; then exit "$(cat "$FAKE_DIR/ping-rc")"; fi
if [ -f "$FAKE_DIR/ping-waits" ] && [ ! -f "$FAKE_DIR/server.pid" ]; then
    : >"$FAKE_DIR/pinged"
    exit 1
fi
exit 0
"""


@dataclass(frozen=True)
class Node:
    """One node's rendered config, its directories and the fakes' directory."""

    tmp_path: Path
    config: Path
    bin: Path
    data: Path
    run: Path
    fake: Path
    env: dict[str, str]

    def hook(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(HOOKS / f"{name}.sh"), *args], env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)

    def grastate(self, seqno: int) -> None:
        (self.data / "mysql").mkdir(parents=True, exist_ok=True)
        (self.data / "grastate.dat").write_text(
            f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   {seqno}\n"
            "safe_to_bootstrap: 0\n")

    def calls(self, program: str) -> list[list[str]]:
        path = self.fake / f"{program}.calls"
        text = path.read_text() if path.exists() else ""
        return [line.split("\037")[:-1] for line in text.splitlines()]


def write_program(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def render(tmp_path: Path) -> str:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, autoescape=False)
    peers = [{"addresses": ["127.0.62.1"], "fqdn": "galera-0.galera"},
             {"addresses": ["127.0.62.2"], "fqdn": "galera-1.galera"}]
    text = environment.from_string(TEMPLATE.read_text()).render(
        pod_name="galera-0", pod_ip="127.0.62.1", statefulset="galera", peer_pods=peers,
        vars={"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run"),
              "tmp_dir": str(tmp_path / "tmp"), "buffer_pool": "32M",
              "gcache_size": "16M", "advertise": "ip"})
    # mariadbd's user here is whoever runs the tests (the hooks chown to it when root).
    me = pwd.getpwuid(os.getuid()).pw_name
    assert "\nuser = mysql\n" in text
    return text.replace("\nuser = mysql\n", f"\nuser = {me}\n")


@pytest.fixture
def node(tmp_path: Path) -> Node:
    bin_dir, fake = tmp_path / "bin", tmp_path / "fake"
    bin_dir.mkdir()
    fake.mkdir()
    write_program(bin_dir / "my_print_defaults", FAKE_PRINT_DEFAULTS)
    write_program(bin_dir / "mariadbd", FAKE_MARIADBD)
    write_program(bin_dir / "mariadb", FAKE_MARIADB)
    write_program(bin_dir / "mariadb-admin", FAKE_MARIADB_ADMIN)
    config = tmp_path / "galera.cnf"
    config.write_text(render(tmp_path))
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
           "GALERA_CNF": str(config), "FAKE_DIR": str(fake), "LC_ALL": "C"}
    return Node(tmp_path=tmp_path, config=config, bin=bin_dir, data=tmp_path / "data",
                run=tmp_path / "run", fake=fake, env=env)


@pytest.fixture
def daemon(node: Node) -> Iterator[int]:
    """A process named mariadbd, and the pid file naming it."""
    process = subprocess.Popen([str(node.bin / "mariadbd"), "--fake-daemon"], env=node.env)
    try:
        node.run.mkdir(parents=True, exist_ok=True)
        (node.run / "mysqld.pid").write_text(f"{process.pid}\n")
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT)


@pytest.fixture
def server(node: Node) -> Iterator[Node]:
    """The node whose seed or start leaves a fake server running: killed afterwards."""
    (node.fake / "ping-waits").touch()
    try:
        yield node
    finally:
        pid_file = node.fake / "server.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def status(node: Node, cluster_status: str, local_state: int, comment: str) -> None:
    rows = {"wsrep_cluster_size": "2", "wsrep_cluster_status": cluster_status,
            "wsrep_last_committed": "42", "wsrep_local_state": str(local_state),
            "wsrep_local_state_comment": comment, "wsrep_ready": "ON"}
    (node.fake / "status").write_text("".join(f"{k}\t{v}\n" for k, v in rows.items()))


def test_a_new_volume_is_at_0(node: Node) -> None:
    result = node.hook("sequence")
    assert (result.returncode, result.stdout) == (0, "0\n"), result.stderr
    assert node.calls("mariadbd") == []


def test_the_seqno_of_a_clean_stop_is_grastates(node: Node) -> None:
    node.grastate(42)
    result = node.hook("sequence")
    assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr
    assert node.calls("mariadbd") == []


def test_after_a_crash_the_position_is_recovered(node: Node) -> None:
    node.grastate(-1)
    (node.fake / "recover-output").write_text(
        "2026-12-02 23:48:35 0 [Note] InnoDB: Starting crash recovery\n"
        f"2026-12-02 23:48:35 0 [Note] WSREP: Recovered position: {UUID}:17\n")
    result = node.hook("sequence")
    assert (result.returncode, result.stdout) == (0, "17\n"), result.stderr
    [argv] = node.calls("mariadbd")
    assert argv[0] == f"--defaults-file={node.config}"
    assert {"--wsrep-recover", "--skip-networking"} <= set(argv)
    assert any(a.startswith(f"--log-error={node.run}/") for a in argv)
    assert any(a.startswith(f"--socket={node.run}/") for a in argv)
    assert any(a.startswith(f"--pid-file={node.run}/") for a in argv)
    assert sorted(p.name for p in node.run.iterdir()) == []  # its temporary files removed


def test_a_recovered_uuid_without_a_transaction_is_0(node: Node) -> None:
    node.grastate(-1)
    (node.fake / "recover-output").write_text(
        f"[Note] WSREP: Recovered position: {UUID}:-1\n")
    result = node.hook("sequence")
    assert (result.returncode, result.stdout) == (0, "0\n"), result.stderr


def test_no_recovered_position_is_an_error(node: Node) -> None:
    node.grastate(-1)
    (node.fake / "recover-output").write_text("[ERROR] InnoDB: Plugin initialization aborted\n")
    result = node.hook("sequence")
    assert (result.returncode, result.stdout) == (1, "")
    assert "recovered no position" in result.stderr
    assert "Plugin initialization aborted" in result.stderr  # the log's last lines


def test_no_seqno_while_mariadbd_runs(node: Node, daemon: int) -> None:
    node.grastate(-1)
    result = node.hook("sequence")
    assert (result.returncode, result.stdout) == (1, "")
    assert "running" in result.stderr and str(daemon) in result.stderr


@pytest.mark.parametrize(("cluster_status", "local_state", "comment", "code"), [
    ("Primary", 4, "Synced", 8),
    ("Primary", 1, "Joining", 0),
    ("Primary", 2, "Donor/Desynced", 0),
    ("Primary", 3, "Joined", 0),
    ("non-Primary", 0, "Initialized", 1),
    ("Disconnected", 0, "Initialized", 1),
])
def test_the_role_follows_the_wsrep_status(node: Node, daemon: int, cluster_status: str,
                                           local_state: int, comment: str, code: int) -> None:
    status(node, cluster_status, local_state, comment)
    result = node.hook("check")
    assert result.returncode == code, result.stderr
    if code == 8:
        assert result.stdout.count("\n") == 1 and "Synced" in result.stdout
    if code == 1:
        assert cluster_status in result.stderr
    [argv] = node.calls("mariadb")
    assert argv[0] == f"--defaults-file={node.config}"
    assert {"-N", "-B", "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'"} <= set(argv)


def test_no_pid_file_is_not_running(node: Node) -> None:
    result = node.hook("check")
    assert result.returncode == 7, result.stderr
    assert node.calls("mariadb") == []


def test_a_stale_pid_file_is_not_running(node: Node) -> None:
    """A crash left the pid file; the pid now belongs to another program (or to none)."""
    node.run.mkdir(parents=True)
    (node.run / "mysqld.pid").write_text(f"{os.getpid()}\n")
    assert node.hook("check").returncode == 7
    (node.run / "mysqld.pid").write_text("4194304\n")  # above pid_max's ceiling
    assert node.hook("check").returncode == 7


def test_a_mariadbd_that_runs_but_does_not_answer_ping_has_failed(node: Node, daemon: int) -> None:
    """Not stopped (7): start.sh refuses while it runs, so only a restart (stop.sh kills it
    after its wait) brings it back."""
    (node.fake / "ping-rc").write_text("1\n")
    result = node.hook("check")
    assert result.returncode == 1, result.stderr
    assert "ping" in result.stderr


def test_a_failing_status_query_is_an_error(node: Node, daemon: int) -> None:
    (node.fake / "status").write_text("ERROR 2013 (HY000): Lost connection to server\n")
    (node.fake / "status-rc").write_text("1\n")
    result = node.hook("check")
    assert result.returncode == 1
    assert "Lost connection" in result.stderr


def test_stop_when_not_running_succeeds(node: Node) -> None:
    assert node.hook("stop").returncode == 0


def test_a_mariadbd_whose_shutdown_hangs_is_killed(node: Node) -> None:
    """A start refuses while the old mariadbd runs, so a stop that only gave up would
    leave the node stopped for good: past the wait, it is killed (and stop still fails)."""
    node.env["GALERA_STOP_TIMEOUT"] = "1"
    (node.fake / "ignore-term").touch()
    (node.fake / "ping-rc").write_text("1")  # mariadb-admin shutdown fails: SIGTERM follows
    hung = subprocess.Popen([str(node.bin / "mariadbd"), "--fake-daemon"], env=node.env)
    try:
        node.run.mkdir(parents=True, exist_ok=True)
        (node.run / "mysqld.pid").write_text(f"{hung.pid}\n")
        result = node.hook("stop")
        assert result.returncode == 1, result.stderr
        assert "still running after 1s: killing it" in result.stderr
        assert hung.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        hung.kill()
        hung.wait(timeout=TIMEOUT)


def test_start_needs_a_primary(node: Node) -> None:
    result = node.hook("start")
    assert result.returncode == 2 and "usage" in result.stderr
    assert node.calls("mariadbd") == []


def test_a_missing_config_is_named(node: Node, tmp_path: Path) -> None:
    node.env["GALERA_CNF"] = str(tmp_path / "absent.cnf")
    for name in ("sequence", "check", "stop", "seed"):
        result = node.hook(name)
        assert result.returncode == 2 and "absent.cnf" in result.stderr, name


def test_a_joiner_starts_with_the_primaries_and_leaves_it_running(server: Node) -> None:
    """The hook returns while mariadbd runs on: the server holds none of its pipes."""
    started = time.monotonic()
    result = server.hook("start", "10.0.0.1", "fd00::2", "galera-2.galera")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < TIMEOUT / 2
    [argv] = server.calls("mariadbd")
    assert argv == [f"--defaults-file={server.config}", "--wsrep-cluster-address="
                    "gcomm://10.0.0.1:4567,[fd00::2]:4567,galera-2.galera:4567"]
    pid = int((server.fake / "server.pid").read_text())
    assert (Path("/proc") / str(pid) / "comm").read_text().strip() == "mariadbd"
    assert not (server.data / "mysql").exists()  # a joiner gets its copy from the donor
    assert server.run.is_dir() and (server.tmp_path / "tmp").is_dir()


def test_a_server_that_dies_fails_the_start_with_its_log(server: Node) -> None:
    (server.fake / "ping-rc").write_text("1\n")
    (server.fake / "server-output").write_text("[ERROR] Can't start server: Bind on TCP/IP\n")
    result = server.hook("start", "10.0.0.1")
    assert result.returncode == 1
    assert "exited with status 1" in result.stderr and "Bind on TCP/IP" in result.stderr


def test_the_seed_may_bootstrap_its_clean_state(server: Node) -> None:
    server.grastate(42)
    result = server.hook("seed")
    assert result.returncode == 0, result.stderr
    assert "safe_to_bootstrap: 1\n" in (server.data / "grastate.dat").read_text()
    assert "seqno:   42\n" in (server.data / "grastate.dat").read_text()
    [argv] = server.calls("mariadbd")
    assert argv == [f"--defaults-file={server.config}", "--wsrep-new-cluster"]


def test_the_wait_is_for_the_child_even_before_it_is_named_mariadbd(server: Node) -> None:
    """A failed ping while the forked child is not yet mariadbd does not wait for it to end."""
    server.grastate(42)
    (server.fake / "server-late").touch()
    result = server.hook("seed")
    assert result.returncode == 0, result.stderr
    assert (server.fake / "pinged").exists()  # the wait saw the child under another name
    assert "bootstrapped a new cluster and answers" in result.stdout


def test_a_crashed_seed_starts_from_its_recovered_position(server: Node) -> None:
    """Without --wsrep-start-position a crashed node's bootstrap starts a new history."""
    server.grastate(-1)
    (server.fake / "recover-output").write_text(
        f"[Note] WSREP: Recovered position: {UUID}:17\n")
    result = server.hook("seed")
    assert result.returncode == 0, result.stderr
    recover, start = server.calls("mariadbd")
    assert "--wsrep-recover" in recover
    assert start == [f"--defaults-file={server.config}", "--wsrep-new-cluster",
                     f"--wsrep-start-position={UUID}:17"]
