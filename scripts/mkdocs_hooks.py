"""MkDocs hooks for docs/: the repository's own Markdown included where a page asks
(``<!-- include FILE -->``, or one section: ``<!-- include FILE section: NAME -->``), and
every link to a file outside docs/ checked and pointed at the repository (``repo_url``,
else shown as its path), so that a broken link fails ``mkdocs build --strict``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

INCLUDE = re.compile(r"^<!-- include (\S+?)(?: section: (.+?))? -->$", re.M)
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s]+)\)")
EXTERNAL = ("http://", "https://", "mailto:", "#")


def _section(text: str, name: str, source: str) -> str:
    """The ``## NAME…`` section of ``text``, up to the next heading of its level."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"## {name}")), None)
    if start is None:
        raise PluginError(f"{source} has no section '## {name}'")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return "".join(lines[start:end])


def _included(root: Path, name: str, section: str | None) -> str:
    path = root / name
    if not path.is_file():
        raise PluginError(f"include: {name} does not exist")
    text = path.read_text(encoding="utf-8")
    if section:
        text = _section(text, section, name)

    def anchored(match: re.Match[str]) -> str:  # its links, from the repository's root
        label, target = match[1], match[2]
        if target.startswith(EXTERNAL):
            return match[0]
        rel = (path.parent / target).resolve().relative_to(root.resolve())
        return f"[{label}](/{rel.as_posix()}{'/' if target.endswith('/') else ''})"

    return LINK.sub(anchored, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    source = Path(page.file.abs_src_path).resolve()
    markdown = INCLUDE.sub(lambda m: _included(root, m[1], m[2]), markdown)
    repo_url = (config.get("repo_url") or "").rstrip("/")

    def linked(match: re.Match[str]) -> str:
        label, target = match[1], match[2]
        if target.startswith(EXTERNAL):
            return match[0]
        path, _, anchor = target.partition("#")
        resolved = ((root / path.lstrip("/")) if path.startswith("/")
                    else (source.parent / path)).resolve()
        if resolved.is_relative_to(docs):
            # A page of the site: MkDocs checks it (and its anchor) itself.
            rel = Path(resolved).relative_to(source.parent) if resolved.is_relative_to(
                source.parent) else Path(*[".."] * (len(source.parent.relative_to(docs).parts))
                                         ) / resolved.relative_to(docs)
            return f"[{label}]({rel.as_posix()}{'#' + anchor if anchor else ''})"
        if not resolved.exists():
            raise PluginError(f"{page.file.src_path}: link to {target}: no such file")
        rel_path = resolved.relative_to(root.resolve()).as_posix()
        if repo_url:
            kind = "tree" if resolved.is_dir() else "blob"
            return f"[{label}]({repo_url}/{kind}/main/{rel_path}{'#' + anchor if anchor else ''})"
        return label if rel_path in label else f"{label} (`{rel_path}`)"

    return LINK.sub(linked, markdown)
