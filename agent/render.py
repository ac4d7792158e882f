"""Templates and configs -> output files: sandboxed Jinja2, namespace rewrite, atomic writes."""

from __future__ import annotations

import errno
import os
import re
import stat
import traceback
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox

from agent.atomic import write_atomically
from agent.errors import RenderError

# ConfigMap volumes hold their real files under "..data" / "..<timestamp>" and
# expose them as symlinks; those internals are never part of the input.
_HIDDEN_PREFIX = ".."
_LABEL = r"[A-Za-z0-9_](?:[-A-Za-z0-9_]{0,61}[A-Za-z0-9])?"


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: where it is, where it goes, and how it is produced."""

    relpath: PurePosixPath
    path: Path
    mode: int
    template: bool


@dataclass(frozen=True, slots=True)
class Output:
    """One file to write, fully rendered in memory."""

    relpath: PurePosixPath
    content: bytes
    mode: int


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Namespace rewrite: ``x.<source>.svc[.<any domain>]`` -> ``x.<namespace>.svc.<domain>``."""

    source: str
    namespace: str
    domain: str


@dataclass(slots=True)
class WriteResult:
    """What a write pass did, file by file."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def scan(templates_dir: Path, *, suffix: str) -> list[Source]:
    """List input files under ``templates_dir`` (following ConfigMap symlinks), sorted."""
    if not templates_dir.is_dir():
        raise RenderError(f"templates dir {templates_dir} is not a directory")
    root = templates_dir.resolve()
    sources: list[Source] = []
    seen_dirs: set[Path] = set()
    for current, dirnames, filenames in os.walk(templates_dir, followlinks=True):
        real = Path(current).resolve()
        if real in seen_dirs or not (real == root or root in real.parents):
            dirnames[:] = []  # symlink loop, or a link leading out of the input
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(_HIDDEN_PREFIX))
        for filename in sorted(filenames):
            if filename.startswith(_HIDDEN_PREFIX):
                continue
            path = Path(current, filename)
            relative = PurePosixPath(path.relative_to(templates_dir).as_posix())
            if root not in path.resolve().parents:
                continue  # a link to a file outside the input is not input
            try:
                info = path.stat()
            except OSError as exc:
                raise RenderError(f"{relative}: cannot read: {exc.strerror}") from None
            if not stat.S_ISREG(info.st_mode):
                continue
            is_template = filename.endswith(suffix) and len(filename) > len(suffix)
            sources.append(
                Source(relpath=relative, path=path, mode=stat.S_IMODE(info.st_mode),
                       template=is_template)
            )
    return sources


def rewrite_namespace(text: str, rewrite: Rewrite) -> str:
    """Rewrite the namespace label of cluster DNS names, and nothing else.

    ``consul-0.consul.default.svc.cluster.local`` becomes
    ``consul-0.consul.<ns>.svc.<domain>``; ``"datacenter": "default"`` and
    ``"domain": "cluster.local"`` stay. ``kubernetes.default.svc`` (the API
    server's Service, which lives in ``default`` everywhere) is left alone.
    """
    pattern = re.compile(
        rf"(?<![-A-Za-z0-9_.])(?P<head>(?:{_LABEL}\.){{1,3}}){re.escape(rewrite.source)}"
        rf"\.svc(?P<domain>(?:\.{_LABEL})*)(?![-A-Za-z0-9_])"
    )

    def replace(match: re.Match[str]) -> str:
        head = match.group("head")
        if head == "kubernetes.":
            return match.group(0)
        domain = f".{rewrite.domain}" if match.group("domain") else ""
        return f"{head}{rewrite.namespace}.svc{domain}"

    return pattern.sub(replace, text)


class _Loader(jinja2.BaseLoader):
    """Serves the scanned templates by relative path, so include/import work between them."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.texts = texts

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self.texts:
            raise jinja2.TemplateNotFound(template)
        return self.texts[template], template, lambda: True


def make_environment(texts: Mapping[str, str]) -> jinja2.Environment:
    """A sandboxed environment where any undefined name is an error."""
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=_Loader(texts),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_plain_value,
    )


class UnprintableValue(ValueError):
    """A template printed a function, method or class instead of a value."""


def _plain_value(value: Any) -> Any:
    """What ``{{ }}`` may print: values, not Python objects (``{{ dict }}`` or
    ``{{ vars.items }}`` is a template mistake, not text for a config file)."""
    if callable(value) and not isinstance(value, jinja2.Undefined):  # Undefined says why
        raise UnprintableValue(f"prints a Python object ({type(value).__name__}), not a "
                               "value: a filter or call is missing, or a name is wrong")
    return value


def _template_line(exc: BaseException, name: str) -> int | None:
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == name:
            found = lineno
    return found


def _failure(where: str, exc: Exception) -> str:
    """A template problem raised while analysing or rendering, named by its kind."""
    kind = "undefined" if isinstance(exc, jinja2.UndefinedError) else type(exc).__name__
    return f"{where}: {kind}: {exc}"


def _where(name: str, line: int | None) -> str:
    return f"{name}:{line}" if line else name


def render(
    sources: Sequence[Source],
    context: Mapping[str, Any],
    *,
    suffix: str,
    rewrite: Rewrite | None = None,
) -> list[Output]:
    """Render everything in memory; raise RenderError listing every problem in every file."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for source in sources:
        if source.template:
            try:
                texts[str(source.relpath)] = source.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{source.relpath}: cannot read template: {exc}")
    env = make_environment(texts)
    known = set(context) | set(env.globals)
    outputs: list[Output] = []
    producers: dict[PurePosixPath, PurePosixPath] = {}
    for source in sources:
        name = str(source.relpath)
        target = source.relpath
        if source.template:
            target = source.relpath.with_name(source.relpath.name[: -len(suffix)])
        if target in producers:
            problems.append(f"{name}: would write {target}, already written from "
                            f"{producers[target]}")
            continue
        producers[target] = source.relpath
        if not source.template:
            try:
                content = source.path.read_bytes()
            except OSError as exc:
                problems.append(f"{name}: cannot read: {exc.strerror}")
                continue
            if rewrite is not None:
                try:
                    content = rewrite_namespace(content.decode("utf-8"), rewrite).encode("utf-8")
                except UnicodeDecodeError:
                    pass  # binary files are copied as they are
            outputs.append(Output(relpath=target, content=content, mode=source.mode))
            continue
        if name not in texts:
            continue
        try:
            unknown = sorted(jinja2.meta.find_undeclared_variables(env.parse(texts[name], name))
                             - known)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{_where(name, exc.lineno)}: syntax error: {exc.message}")
            continue
        except RecursionError:  # Jinja's parser recurses once per level of nesting
            problems.append(f"{name}: nested too deeply to parse")
            continue
        except Exception as exc:  # the analysis constant-folds: ''.__class__ ~ '' raises here
            problems.append(_failure(name, exc))
            continue
        if unknown:
            problems.extend(f"{name}: unknown variable {var!r}" for var in unknown)
            continue
        try:
            text = env.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:  # in an included template
            problems.append(
                f"{_where(exc.filename or exc.name or name, exc.lineno)}: syntax error: "
                f"{exc.message}"
            )
            continue
        except Exception as exc:
            problems.append(_failure(_where(name, _template_line(exc, name)), exc))
            continue
        outputs.append(Output(relpath=target, content=text.encode("utf-8"), mode=source.mode))
    if problems:
        raise RenderError(f"{len(problems)} template problem(s); nothing written",
                          problems=problems)
    return outputs


def _check_relpath(relpath: PurePosixPath) -> list[str]:
    parts = relpath.parts
    if relpath.is_absolute() or not parts or any(p in ("", ".", "..") for p in parts):
        return [f"{relpath}: path escapes the output dir"]
    return []


def _walk_dirs(
    root_fd: int, parts: Sequence[str], *, create: bool
) -> Generator[int, None, None]:
    """Yield an fd for each directory level below root, never following symlinks.

    Caller closes nothing: fds are closed here as the walk advances. The last fd
    yielded stays open until the generator resumes or is closed.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    yield -1  # the rest does not exist yet: nothing to check below it
                    return
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _preflight(root_fd: int, outputs: Sequence[Output]) -> list[str]:
    problems: list[str] = []
    files = [output.relpath for output in outputs]
    parents = {parent for relpath in files for parent in relpath.parents}
    seen: set[PurePosixPath] = set()
    for output in outputs:
        bad = _check_relpath(output.relpath)
        if bad:
            problems.extend(bad)
            continue
        if output.relpath in seen:
            problems.append(f"{output.relpath}: written twice")
            continue
        seen.add(output.relpath)
        if output.relpath in parents:
            problems.append(f"{output.relpath}: is both a file and a directory of other files")
            continue
        *dirs, name = output.relpath.parts
        walker = _walk_dirs(root_fd, dirs, create=False)
        try:
            fd = next(walker)
            if fd >= 0:
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        problems.append(f"{output.relpath}: is a directory in the output dir")
                except FileNotFoundError:
                    pass
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                problems.append(
                    f"{output.relpath}: a parent in the output dir is a symlink or a file; "
                    "refusing to write through it"
                )
            else:
                problems.append(f"{output.relpath}: {exc.strerror}")
        finally:
            walker.close()
    return problems


def _same(fd: int, name: str, output: Output) -> bool:
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != output.mode:
        return False
    if info.st_size != len(output.content):
        return False
    handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    with os.fdopen(handle, "rb") as existing:
        return existing.read() == output.content


def write(output_dir: Path, outputs: Sequence[Output]) -> WriteResult:
    """Write every output atomically below ``output_dir``; unchanged files are left alone.

    All paths are checked before the first write; a path that would leave the
    output dir (``..``, absolute, a symlinked parent) fails the whole pass.
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise RenderError(f"output dir {output_dir}: {exc.strerror}") from None
    result = WriteResult()
    try:
        problems = _preflight(root_fd, outputs)
        if problems:
            raise RenderError(f"{len(problems)} output path problem(s); nothing written",
                              problems=problems)
        for output in outputs:
            *dirs, name = output.relpath.parts
            walker = _walk_dirs(root_fd, dirs, create=True)
            try:
                fd = next(walker)
                if _same(fd, name, output):
                    result.unchanged.append(str(output.relpath))
                else:
                    write_atomically(fd, name, output.content, mode=output.mode)
                    result.written.append(str(output.relpath))
            except OSError as exc:
                raise RenderError(f"{output.relpath}: write failed: {exc.strerror}") from None
            finally:
                walker.close()
    finally:
        os.close(root_fd)
    return result


def render_directory(
    templates_dir: Path,
    output_dir: Path,
    context: Mapping[str, Any],
    *,
    suffix: str = ".j2",
    rewrite: Rewrite | None = None,
) -> WriteResult:
    """Scan, render in memory, then write; nothing is written if anything fails first."""
    outputs = render(scan(templates_dir, suffix=suffix), context, suffix=suffix, rewrite=rewrite)
    return write(output_dir, outputs)
