"""Running one hook: argv in its own process group, bounded in time and in output kept."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence

from agent.stores.exec.contract import HookResult
from agent.stores.exec.options import HookSpec

KEEP_BYTES = 64 * 1024  # of each stream: the end, where errors are
# After the hook exits, how long its output is still read: a daemon it started in the
# background may hold the pipes open for ever.
DRAIN_SECONDS = 0.5


async def _collect(reader: asyncio.StreamReader, kept: bytearray) -> None:
    while chunk := await reader.read(16384):
        kept.extend(chunk)
        if len(kept) > KEEP_BYTES:
            del kept[:len(kept) - KEEP_BYTES]


async def _pipe() -> tuple[int, asyncio.StreamReader, asyncio.ReadTransport]:
    """A pipe: its write end for the child, a reader of the other end for us."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
    return write_fd, reader, transport


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_hook(name: str, spec: HookSpec, args: Sequence[str] = (), *,
                   env: Mapping[str, str] | None = None) -> HookResult:
    """Run hook ``name``: ``spec.command`` plus ``args``, with ``env`` and the spec's own
    over this process's environment, in a new session (its own process group). On
    timeout the whole group is killed. Never raises for the hook's sake: a hook that
    cannot start, times out or fails is a result saying so."""
    argv = (*spec.command, *args)
    environment = {**os.environ, **(env or {}), **spec.env}
    started = time.monotonic()
    out_fd, out_reader, out_transport = await _pipe()
    err_fd, err_reader, err_transport = await _pipe()
    stdout, stderr = bytearray(), bytearray()
    readers = [asyncio.create_task(_collect(out_reader, stdout)),
               asyncio.create_task(_collect(err_reader, stderr))]
    error: str | None = None
    code: int | None = None
    pid: int | None = None
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out_fd, stderr=err_fd,
                env=environment, start_new_session=True)
        except OSError as exc:
            error = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        finally:
            os.close(out_fd)
            os.close(err_fd)
        if error is None:
            pid = process.pid
            try:
                async with asyncio.timeout(spec.timeout):
                    code = await process.wait()
            except TimeoutError:
                _kill_group(process.pid)
                await process.wait()
                error = f"timed out after {spec.timeout:g} s (its process group killed)"
            except asyncio.CancelledError:
                _kill_group(process.pid)
                raise
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await asyncio.gather(*readers)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        out_transport.close()
        err_transport.close()
    return HookResult(hook=name, argv=argv, exit_code=code,
                      stdout=stdout.decode(errors="replace"),
                      stderr=stderr.decode(errors="replace"),
                      seconds=time.monotonic() - started, error=error, pid=pid)
