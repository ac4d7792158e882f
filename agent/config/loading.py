"""Loading settings: flags over env, required per command, cross-checks; every problem named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from agent.config.base import ENV_PREFIX, AgentSettings
from agent.config.settings import Settings
from agent.errors import ConfigError
from agent.registry import STORES

# Settings each command cannot work without.
# A store whose spec says it takes flags only (renders_config False) may render nothing.
RENDERING = ("templates_dir", "output_dir")
REQUIRED: dict[str, tuple[str, ...]] = {
    "init": ("pod_name", "namespace", "pod_ip", "service", "templates_dir", "output_dir"),
    "render": ("pod_name", "namespace", "service", "templates_dir", "output_dir"),
    "peers": ("pod_name", "namespace", "service"),
    "run": ("backend",),
}


def models() -> list[type[AgentSettings]]:
    """The shared Settings, then every registered store's options, in registry order."""
    found: list[type[AgentSettings]] = [Settings]
    for spec in STORES.values():
        options = spec.options_class()
        if options is not None:
            found.append(options)
    return found


def fields() -> dict[str, FieldInfo]:
    """All settings fields, shared and every store's, in declaration order."""
    return {name: info for model in models() for name, info in model.model_fields.items()}


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    alias = fields()[field].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    """The command-line flag that sets ``field``."""
    return "--" + field.replace("_", "-")


def values_name(field: str) -> str:
    """The key that sets ``field`` under the Helm chart's agent.settings (camelCase)."""
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)


def describe(field: str) -> str:
    """``ENV (--flag)``, how a problem names a setting."""
    return f"{env_name(field)} ({flag_name(field)})"


def _field_of(model: type[AgentSettings], loc: tuple[int | str, ...]) -> str | None:
    if not loc:
        return None
    head = str(loc[0])
    for name, info in model.model_fields.items():
        if head in (name, info.validation_alias):
            return name
    return None


def _build(model: type[AgentSettings], given: Mapping[str, Any], problems: list[str],
           failed: set[str], *, whose: str = "the agent") -> Any:
    """``model`` from flags and env, or None with every problem appended."""
    try:
        return model(**{key: value for key, value in given.items()
                        if key in model.model_fields})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = _field_of(model, error["loc"])
            if field is not None:
                failed.add(field)
            where = describe(field) if field else ".".join(map(str, error["loc"]))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "no such name here (misspelt?)"
            inner = [str(part) for part in error["loc"][1:]]
            if field is not None and inner:  # inside a nested setting (AGENT_EXEC_HOOKS)
                message = f"at {'.'.join(inner)}: {message}"
            if error["type"] == "missing" and not inner:
                problems.append(f"{where}: required by {whose} but not set")
                continue
            given_value = error.get("input")
            problems.append(f"{where}: {message}" if given_value is None
                            else f"{where}: {message} (got {given_value!r})")
        return None


def _store_named(settings: Settings | None, given: Mapping[str, Any],
                 environ: Mapping[str, str]) -> str | None:
    """The configured store, even when other shared settings failed to load."""
    if settings is not None:
        return settings.backend
    name = given.get("backend") or environ.get(env_name("backend"))
    return name if isinstance(name, str) and name in STORES else None


def load_settings(
    command: str, flags: Mapping[str, Any], environ: Mapping[str, str]
) -> Settings:
    """Build Settings from flags (winning) and env; raise ConfigError naming every problem.

    ``environ`` must be the process environment the Settings source reads; it is
    passed in only to check which required settings were given at all.
    """
    problems: list[str] = []
    given = {key: value for key, value in flags.items() if value is not None}
    failed: set[str] = set()
    settings: Settings | None = _build(Settings, given, problems, failed)
    store = _store_named(settings, given, environ)
    options_class = STORES[store].options_class() if store is not None else None
    options = None
    if options_class is not None:
        options = _build(options_class, given, problems, failed, whose=f"store {store}")
    for field in REQUIRED.get(command, ()):
        if field in failed or (field in RENDERING and settings is not None
                               and not _renders(settings)):
            continue
        if given.get(field) in (None, "") and not environ.get(env_name(field)):
            problems.append(f"{describe(field)}: required by '{command}' but not set")
    if settings is not None and not problems:
        problems.extend(cross_check(settings))
    if problems:
        raise ConfigError(f"{len(problems)} configuration problem(s)", problems=problems)
    assert settings is not None
    return settings if options is None else settings.with_options(options)


def cross_check(settings: Settings) -> list[str]:
    """Problems that involve more than one setting."""
    problems: list[str] = []
    templates, output = settings.templates_dir, settings.output_dir
    if templates is not None and output is not None:
        t, o = templates.resolve(), output.resolve()
        if t == o or t in o.parents or o in t.parents:
            problems.append(
                f"{describe('output_dir')}: must not overlap {describe('templates_dir')} "
                f"({output} vs {templates})"
            )
    if (settings.store_cert_file is None) != (settings.store_key_file is None):
        problems.append(
            f"{describe('store_cert_file')} and {describe('store_key_file')}: set both or "
            "neither"
        )
    spec = settings.store()
    if settings.store_token_file is not None and spec is not None and not spec.token_header:
        problems.append(f"{describe('store_token_file')}: {spec.name} takes no token")
    urls = [settings.store_url] if settings.store_url else []
    urls += settings.seed_url_list()
    for url in urls:
        if spec is None:
            break
        scheme = url.partition("://")[0]
        allowed = spec.store_url_schemes
        if scheme not in allowed:
            problems.append(f"{describe('store_url')} / {describe('seed_urls')}: {url!r}: "
                            f"{spec.name} is reached over {' or '.join(allowed)}")
    if settings.store_password_file is not None and not settings.store_username:
        problems.append(f"{describe('store_password_file')}: needs {describe('store_username')}")
    if settings.stale_after_seconds < settings.poll_interval_seconds:
        problems.append(
            f"{describe('stale_after_seconds')}: must be at least "
            f"{describe('poll_interval_seconds')} ({settings.stale_after_seconds} < "
            f"{settings.poll_interval_seconds})"
        )
    if settings.leave_margin_seconds >= settings.termination_grace_period_seconds:
        problems.append(
            f"{describe('leave_margin_seconds')}: must be less than "
            f"{describe('termination_grace_period_seconds')}"
        )
    if settings.pod is not None and settings.ordinals_start:
        ordinal = settings.pod.ordinal
        if ordinal < settings.ordinals_start:
            problems.append(
                f"{describe('ordinals_start')}: {settings.ordinals_start} is above this "
                f"pod's ordinal {ordinal} ({settings.pod_name}): set it to the "
                "StatefulSet's spec.ordinals.start"
            )
    if settings.template_suffix in ("/", "."):
        problems.append(
            f"{describe('template_suffix')}: {settings.template_suffix!r} is not a suffix"
        )
    return problems


def _renders(settings: Settings) -> bool:
    """Whether init must render for this store (one that takes flags only need not)."""
    spec = settings.store()
    return spec is None or spec.renders_config
