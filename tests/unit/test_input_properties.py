"""Property tests: any env value, template text or DNS answer ends well or in our own error."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.resolver
import dns.reversename
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli import COMMANDS, build_parser, main
from agent.config.loading import (
    REQUIRED,
    cross_check,
    describe,
    env_name,
    fields,
    flag_name,
    load_settings,
)
from agent.config.settings import Settings
from agent.context import build_context, template_vars
from agent.discovery import (
    Discovery,
    DnsUnavailable,
    Peer,
    ServiceNames,
    SrvRecord,
    assemble_peers,
)
from agent.dnsclient import DnspythonClient
from agent.errors import ConfigError, RenderError
from agent.identity import PodIdentity
from agent.registry import STORES
from agent.render import make_environment, render_directory
from tests.fakes import FakeDns


def _examples(count: int) -> settings:
    return settings(max_examples=count, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- settings ------------------------------------------------------------------------

SETTING_FIELDS = sorted(fields())
# Boolean flags take no value on the command line (--x / --no-x): only env gives them text.
VALUE_FLAGS = sorted(name for name, info in fields().items() if info.annotation is not bool)
COMMAND_NAMES = sorted(COMMANDS)
PARSER = build_parser()

AWKWARD_VALUES = [
    "", " ", "\t", "\n", "\r\n", "prod\n", " prod", "prod ", "0", "1", "-1", "3", "99", "100",
    "65535", "65536", "-0", "0.0", "1e309", "-1e309", "1e-320", "nan", "NaN", "-nan", "inf",
    "-inf", "Infinity", "9" * 5000, "-" + "9" * 40, "1_0", "0x10", "1e3", "٣", "²", "true",
    "false", "yes", "off", "None", "null", "[]", "{}", '{"a": 1}', "db-0", "db-01", "db-0\n",
    *STORES, *(name.title() for name in STORES), "10.0.0.1", "10.0.0.300", "::1", "fd00::7%eth0",
    "[::1]:53", "[::1]:0", "[::1", "1.2.3.4:99999", "1.2.3.4:²", "0.0.0.0:9090", "http://x",
    "https://x/", "ftp://x", "/tmp", "/", ".", "..", "a" * 64, "a" * 300, "é", "ß", "K",
    "İ", "\x7f", "\x1b[31m", os.fsdecode(b"\xff\xfe"), "cluster.local.", "cluster..local",
]
# Environment and argv strings are bytes decoded with surrogateescape: never NUL, any other
# byte. A lone surrogate other than surrogateescape's (U+DC80..U+DCFF, which the binary
# strategy below makes) cannot be in them at all: os.environ refuses to encode it.
NO_NUL = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
VALUE = st.one_of(
    st.sampled_from(AWKWARD_VALUES),
    st.text(NO_NUL, max_size=30),
    st.binary(max_size=20).filter(lambda b: b"\x00" not in b).map(os.fsdecode),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),
)


def _assignment(names: Sequence[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(names), VALUE, min_size=1, max_size=5)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Exactly these settings in os.environ (the autouse fixture cleared AGENT_* / POD_*)."""
    with pytest.MonkeyPatch.context() as patch:
        for field, value in values.items():
            patch.setenv(env_name(field), value)
        yield


def _bad_alone(field: str, value: str) -> bool:
    """Whether the model itself refuses this one value (the oracle for "bad")."""
    with _environment({field: value}):
        try:
            Settings()
        except ValueError:  # pydantic's ValidationError
            return True
    return False


def _check_config_error(exc: ConfigError) -> None:
    assert exc.exit_code == 2
    assert exc.problems
    assert exc.message == f"{len(exc.problems)} configuration problem(s)"
    assert all(isinstance(line, str) and line for line in exc.problems)


def _flag_args(command: str, values: dict[str, str]) -> dict[str, Any]:
    argv = [command, *(f"{flag_name(field)}={value}" for field, value in values.items())]
    args = vars(PARSER.parse_args(argv))
    args.pop("command")
    return args


@_examples(150)
@given(command=st.sampled_from(COMMAND_NAMES), values=_assignment(SETTING_FIELDS),
       flags=st.dictionaries(st.sampled_from(VALUE_FLAGS), VALUE, max_size=3))
def test_any_env_and_flag_values_load_or_raise_config_error(
    command: str, values: dict[str, str], flags: dict[str, str]
) -> None:
    """cli.main catches ConfigError around load_settings and nothing else: only it may escape."""
    with _environment(values):
        try:
            loaded = load_settings(command, _flag_args(command, flags), os.environ)
        except ConfigError as exc:
            _check_config_error(exc)
        else:
            assert isinstance(loaded, Settings)
            for field in REQUIRED.get(command, ()):
                if command != "init" or field not in ("templates_dir", "output_dir"):
                    assert getattr(loaded, field) is not None


@_examples(100)
@given(command=st.sampled_from(COMMAND_NAMES), values=_assignment(SETTING_FIELDS))
def test_every_bad_setting_is_named(command: str, values: dict[str, str]) -> None:
    """Several bad values at once: the CLI exits 2 and names each one, and nothing else."""
    bad = {field for field, value in values.items() if _bad_alone(field, value)}
    with _environment(values):
        if not bad:
            try:
                loaded = load_settings(command, {}, os.environ)
            except ConfigError as exc:
                _check_config_error(exc)
                also = cross_check(Settings())
                for line in exc.problems:
                    assert line.endswith(f"required by '{command}' but not set") or line in also
            else:
                assert isinstance(loaded, Settings)
            return
        with pytest.raises(ConfigError):  # before main: a valid config would make it act
            load_settings(command, {}, os.environ)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = main([command])
    assert code == 2
    lines = stderr.getvalue().splitlines()
    assert lines[0].startswith("sts-agent: ConfigError: ")
    problems = lines[1:]
    for field in bad:
        assert any(line.startswith(f"sts-agent: {describe(field)}: ") for line in problems), field
    named = [field for field in SETTING_FIELDS
             for line in problems if line.startswith(f"sts-agent: {describe(field)}: ")]
    for field in named:
        assert field in bad or field in REQUIRED.get(command, ()), field


DNS_NAME_FIELDS = ["pod_name", "namespace", "service", "statefulset", "srv_port_name",
                   "namespace_rewrite", "cluster_domain"]
NOISE = st.sampled_from(["", "\n", "\r", "\t", " ", "\x0b", "\x0c", "\x85", "\u00a0", "\u2028",
                         ".", "-", "_", "K", "é"])
PLAIN = st.sampled_from(["db-0", "prod", "cluster.local", *STORES, "a", "db-12"])
NAME_LIKE = st.one_of(st.builds(str.__add__, PLAIN, NOISE), st.builds(str.__add__, NOISE, PLAIN),
                      st.builds(lambda h, label, t: h + label + t, NOISE, PLAIN, NOISE))
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


@_examples(150)
@given(field=st.sampled_from(DNS_NAME_FIELDS), value=NAME_LIKE)
def test_accepted_names_are_plain_dns_names(field: str, value: str) -> None:
    """What the settings accept as a DNS name is one: no whitespace, no newline, ASCII only."""
    with _environment({field: value}):
        try:
            loaded = Settings()
        except ValueError:
            return
    accepted = getattr(loaded, field)
    pattern = rf"{_LABEL}(\.{_LABEL})*" if field == "cluster_domain" else _LABEL
    assert re.fullmatch(pattern, accepted), (field, value, accepted)


def test_trailing_newline_in_namespace_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: ``$`` matched before a final newline, so ``prod\\n`` passed as a label."""
    monkeypatch.setenv("POD_NAMESPACE", "prod\n")
    monkeypatch.setenv("POD_NAME", "db-1\n")
    with pytest.raises(ConfigError) as info:
        load_settings("status", {}, os.environ)
    assert [line.split(":")[0] for line in info.value.problems] == [
        describe("pod_name"), describe("namespace")]


# --- templates -----------------------------------------------------------------------

CANARY_ENV = "STS_TEST_CANARY"
SECRET_PATH = "@SECRET@"  # replaced by the secret file's absolute path
# Reprs only an escape from the sandbox could print (a leaked class, function, module).
INTERNALS = ("<class", "function", "<built-in", "<module", "<bound method", "__builtins__",
             "__globals__", "__subclasses__")
# Rendering fsyncs every file: on tmpfs that costs nothing, which keeps hundreds of cases fast.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
NAMES = ServiceNames(statefulset="db", service="db-hl", namespace="prod", domain="cluster.local")


@contextlib.contextmanager
def _render_box(template: str) -> Iterator[tuple[Path, Path, Path, str]]:
    """templates in/, output out/ (one old file), a secret file and env canary outside both."""
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setenv(CANARY_ENV, secret)
        patch.setenv("AGENT_VAR_DATACENTER", "dc1")
        base = Path(tmp)
        (base / "secret.txt").write_text(secret)
        src = base / "in"
        (src / "sub").mkdir(parents=True)
        template = template.replace(SECRET_PATH, str(base / "secret.txt"))
        (src / "a.conf.j2").write_text(template, encoding="utf-8", newline="")
        (src / "b.conf.j2").write_text("dc={{ vars.datacenter }} {{ peers | join(',') }}\n")
        (src / "sub" / "c.txt").write_text("copied {{ verbatim }}\n")
        # Links leading out of the input are never input, as templates or as copies.
        (src / "leak.txt.j2").symlink_to(base / "secret.txt")
        (src / "leak.txt").symlink_to(base / "secret.txt")
        out = base / "out"
        out.mkdir()
        (out / "old.conf").write_text("previous")
        yield src, out, base, secret


def _snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found[str(path.relative_to(root))] = (content, info.st_mode, info.st_mtime_ns)
    return found


def _context() -> dict[str, Any]:
    return build_context(names=NAMES, pod=PodIdentity("db", 1), pod_ip="10.0.0.2",
                         bootstrap=range(3), peer_port=2380,
                         template_vars=template_vars(os.environ))


def _render_or_refuse(template: str) -> str | None:
    """Render ``a.conf.j2``; return its output, or None when refused with nothing written."""
    with _render_box(template) as (src, out, base, secret):
        before, around = _snapshot(out), sorted(p.name for p in base.iterdir())
        try:
            render_directory(src, out, _context())
        except RenderError as exc:
            assert exc.exit_code == 3 and exc.problems
            assert all(line.startswith("a.conf.j2") for line in exc.problems), exc.problems
            assert _snapshot(out) == before
            rendered = None
        else:
            files = {p: (out / p).read_text(encoding="utf-8") for p in
                     ("a.conf", "b.conf", "sub/c.txt", "old.conf")}
            assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
                ["a.conf", "b.conf", "old.conf", "sub/c.txt"]
            assert files["b.conf"].startswith("dc=dc1 db-0.db-hl")
            assert all(secret not in text for text in files.values())
            rendered = files["a.conf"]
        assert sorted(p.name for p in base.iterdir()) == around
    return rendered


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self }}",
    "{{ self.__dict__ }}",
    "{{ self._TemplateReference__context }}",
    "{% include '/etc/passwd' %}",
    "{% include '" + SECRET_PATH + "' %}",
    "{% include '../secret.txt' %}",
    "{% include 'leak.txt.j2' %}",
    "{% include 'leak.txt' %}",
    "{% extends '/etc/passwd' %}",
    "{% from '/etc/passwd' import x %}{{ x }}",
    "{% import 'x' as y %}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ lipsum|attr('__globals__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ range.__globals__ }}",
    "{{ dict.__subclasses__() }}",
    "{{ dict.mro() }}",
    "{{ peers.__class__ }}",
    "{{ peers|attr('__class__') }}",
    "{{ peer_pods[0]['__class__'] }}",
    "{{ '{0.__class__}'.format(peers) }}",
    "{{ '{0.__class__.__mro__}'.format(vars) }}",
    "{{ '%s'|format(peers.__class__) }}",
    "{{ vars.__init__ }}",
    "{{ vars.update({'x': 1}) }}",
    "{{ peers.append(1) }}",
    "{{ namespace.__class__ }}",
    "{{ config }}{{ request }}{{ os }}{{ __builtins__ }}",
    "{% set x = peers.pop() %}",
    "{{ vars }}",
    "{{ ''.__class__ ~ ''.__class__ }}",
    "{{ 'port'.number ~ ':' }}",
    "{% include 'a.conf.j2' %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
    "{% if 1 %}" * 400,
    "{{ 1" + "+1" * 5000 + " }}",
    "{{ peers" + ".x" * 2000 + " }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_known_escape_attempts_are_refused_or_harmless(template: str) -> None:
    rendered = _render_or_refuse(template)
    if rendered is not None:
        assert not [marker for marker in INTERNALS if marker in rendered], rendered
        assert "root:" not in rendered  # /etc/passwd


def test_deeply_nested_template_is_a_render_error() -> None:
    """Regression: RecursionError from Jinja's parser escaped render() as a traceback."""
    with _render_box("{{ " + "[" * 3000 + " }}") as (src, out, _, _):
        with pytest.raises(RenderError) as info:
            render_directory(src, out, _context())
    assert info.value.problems == ["a.conf.j2: nested too deeply to parse"]


def test_unsafe_access_in_a_constant_expression_is_a_render_error() -> None:
    """Regression: checking for unknown names constant-folds ``~``; SecurityError escaped."""
    with _render_box("{{ ''.__class__ ~ '' }}") as (src, out, _, _):
        with pytest.raises(RenderError) as info:
            render_directory(src, out, _context())
    assert info.value.problems == [
        "a.conf.j2: SecurityError: access to attribute '__class__' of 'str' object is unsafe."]


# Arbitrary text leaning on Jinja syntax. No '*': ``{{ 'x' * 10**10 }}`` would allocate
# 10 GB, which is a template author's to avoid (not a sandbox matter) and would stall the run.
JINJA_CHARS = st.sampled_from([*"{}%#()[]'\".|~-+/,=:! \n\r\tabx_019",
                               "{{", "}}", "{%", "%}", "{#", "#}"])
TEMPLATE_TEXT = st.lists(JINJA_CHARS | st.characters(exclude_categories=["Cs"],
                                                      exclude_characters="*"),
                         max_size=60).map("".join)


@_examples(150)
@given(text=TEMPLATE_TEXT)
def test_any_template_text_renders_or_is_refused(text: str) -> None:
    rendered = _render_or_refuse(text)
    if "{" not in text:
        # No Jinja syntax at all: copied as it is, line ends normalised to \n.
        assert rendered == text.replace("\r\n", "\n").replace("\r", "\n")
    if rendered is not None:
        assert not [marker for marker in INTERNALS if marker in rendered and marker not in text]


# Templates from a small grammar: an object the template can name, a chain of attribute,
# item, call and filter steps (the classic escape routes among them), inside a statement;
# mixed with loose fragments. Nothing here contains '<', so a '<...>' printed is a repr.
ATOMS = st.sampled_from([
    "peers", "peer_pods", "peer_pods[0]", "vars", "namespace", "fqdn", "ordinal", "self",
    "lipsum", "cycler", "joiner", "range", "dict", "''", "'s'", "'{0}'", "'{0.__class__}'", "0",
    "[1]", "{}", "x", "m", "cycler(1)", "lipsum(1)", "dict(a=1)", "range(3)",
])
STEPS = st.sampled_from([
    ".__class__", ".__mro__", ".__base__", ".__subclasses__()", ".__globals__", ".__init__",
    ".__dict__", ".__builtins__", ".__self__", ".__func__", ".gi_frame", ".f_globals",
    ".func_globals", ".im_func", ".mro()", "['__class__']", "['__globals__']", "[0]", "[1]",
    "()", ".fqdn", ".name", ".items()", ".keys()", ".format(peers)", ".format_map(vars)",
    ".next()", "|attr('__globals__')", "|attr('__class__')", "|attr('mro')", "|string",
    "|list", "|first", "|join(',')", "|tojson", "|pprint", "|format(peers)",
    "|map(attribute='__class__')|list", "|map(attribute='__globals__')|first",
    "|selectattr('__class__')|list", "|sort(attribute='__class__')",
])
EXPRESSIONS = st.builds(lambda atom, steps: atom + "".join(steps), ATOMS,
                        st.lists(STEPS, max_size=4))
STATEMENTS = st.builds(str.format, st.sampled_from([
    "{{{{ {0} }}}}", "{{% set x = {0} %}}{{{{ x }}}}",
    "{{% for x in {0} %}}{{{{ x }}}}{{% endfor %}}",
    "{{% if {0} %}}y{{% endif %}}", "{{% include {0} %}}", "{{% import {0} as z %}}",
    "{{{{ {0} ~ {0} }}}}", "{{% macro m() %}}{{{{ {0} }}}}{{% endmacro %}}{{{{ m() }}}}",
    "{{% with x = {0} %}}{{{{ x }}}}{{% endwith %}}", "{{{{ {0}|default('d') }}}}",
]), EXPRESSIONS)
FRAGMENTS = st.sampled_from([
    "{{ ", " }}", "{% ", " %}", "{# ", " #}", "if ", "for x in ", "endif", "endfor", "else",
    "include ", "'a.conf.j2'", "'leak.txt.j2'", "'../secret.txt'", "'/etc/passwd'", "self",
    "x", "peers", "(", ")", "[0]", ".__class__", " ~ ", " + ", ", ", " not ", "1", " ", "\n",
])
TEMPLATES = st.lists(STATEMENTS | FRAGMENTS, min_size=1, max_size=6).map("".join)
# What the sandbox hands a template to print: its own globals show as their reprs.
ALLOWED_REPRS = sorted({repr(value) for value in make_environment({}).globals.values()},
                       key=len, reverse=True)


@_examples(200)
@given(text=TEMPLATES)
def test_escape_shaped_templates_never_reach_python_internals(text: str) -> None:
    rendered = _render_or_refuse(text)
    if rendered is None:
        return
    for allowed in ALLOWED_REPRS:
        rendered = rendered.replace(allowed, "")
    leaked = [marker for marker in ("<class", "<function", "<built-in", "<module", "<bound")
              if marker in rendered]
    assert not leaked, (text, rendered)


# --- DNS answers ---------------------------------------------------------------------

KV = ServiceNames(statefulset="kv", service="kv-hl", namespace="prod", domain="cluster.local",
                  srv_port_name="raft")
KV_SUFFIX = ".kv-hl.prod.svc.cluster.local"


def _ordinal(name: str) -> int | None:
    """The oracle: which pod of KV a DNS name is, written independently of the code."""
    # DNS compares names case-insensitively; trailing dots are the root.
    host, dot, rest = name.rstrip(".").lower().partition(".")
    if not dot or "." + rest != KV_SUFFIX or len(host) > 63:
        return None
    match = re.fullmatch(r"kv-(0|[1-9][0-9]*)", host)
    return int(match.group(1)) if match else None


HOSTS = st.one_of(
    st.builds(lambda s, o: f"{s}-{o}",
              st.sampled_from(["kv", "KV", "kv-hl", "web", "xkv", "", "kv ", "kv\n", "кv", "K"]),
              st.sampled_from(["0", "1", "2", "7", "01", "-1", "00", "1\n", "1 ", "\u0661", "²",
                               "9" * 61, "9" * 70, str(2**31)])),
    st.text(max_size=20),
)
REST = st.sampled_from([KV_SUFFIX, KV_SUFFIX + ".", KV_SUFFIX.upper(), KV_SUFFIX + "..",
                        ".kv-hl.default.svc.cluster.local", ".other.prod.svc.cluster.local",
                        ".kv-hl.prod.svc.example.com", ".kv-hl.prod.svc", ".x" + KV_SUFFIX,
                        ".kv-hl.prod\n.svc.cluster.local", "", "." + "a" * 64 + KV_SUFFIX])
TARGET = st.one_of(st.builds(str.__add__, HOSTS, REST), st.text(max_size=40),
                   st.integers(0, 12).map(KV.pod_fqdn))
ADDRESS = st.one_of(st.ip_addresses().map(str), st.text(max_size=15),
                    st.sampled_from(["fd00::7%eth0", "::ffff:10.0.0.1", "10.0.0.300", "ö"]))
SRV = st.builds(SrvRecord, st.integers(-1, 70000), st.integers(-1, 70000),
                st.integers(-1, 70000), TARGET)


def _check_peers(peers: Sequence[Peer], justified: set[int]) -> None:
    """Every peer is a pod of this set, once, in order, and some answer named it."""
    ordinals = [peer.ordinal for peer in peers]
    assert ordinals == sorted(set(ordinals))
    for peer in peers:
        assert peer.ordinal >= 0
        assert peer.name == f"kv-{peer.ordinal}"
        assert peer.fqdn == f"kv-{peer.ordinal}{KV_SUFFIX}"
        assert peer.ordinal in justified, peer


@_examples(200)
@given(probed=st.dictionaries(st.integers(0, 20), st.lists(ADDRESS, max_size=3), max_size=5),
       srv=st.lists(SRV, max_size=6),
       reverse=st.dictionaries(ADDRESS, st.lists(TARGET, max_size=3), max_size=5))
def test_assemble_maps_only_names_of_this_set(
    probed: dict[int, list[str]], srv: list[SrvRecord], reverse: dict[str, list[str]]
) -> None:
    peers = assemble_peers(KV, probed=probed, srv=srv, reverse=reverse)
    named = {o for o in map(_ordinal, [r.target for r in srv]) if o is not None}
    by_ptr = {a: [o for o in map(_ordinal, names) if o is not None] for a, names in
              reverse.items()}
    _check_peers(peers, {o for o, a in probed.items() if a} | named
                 | {o for found in by_ptr.values() for o in found})
    by_ordinal = {peer.ordinal: peer for peer in peers}
    for ordinal in named:  # an SRV target of this set always counts (its port at least)
        first = next(r.port for r in srv if _ordinal(r.target) == ordinal)
        assert by_ordinal[ordinal].port == first
    for address, found in by_ptr.items():  # an address goes to the first PTR name of ours
        if found:
            assert address in by_ordinal[found[0]].addresses
    for peer in peers:
        expected = list(dict.fromkeys(probed.get(peer.ordinal, [])))
        assert list(peer.addresses[: len(expected)]) == expected


@_examples(200)
@given(service=st.lists(ADDRESS, max_size=4), srv=st.lists(SRV, max_size=4),
       pods=st.dictionaries(st.integers(0, 6), st.lists(ADDRESS, min_size=1, max_size=2),
                            max_size=4),
       reverse=st.dictionaries(ADDRESS, st.lists(TARGET, max_size=2), max_size=4),
       expected=st.integers(0, 5))
def test_discover_with_canned_answers(
    service: list[str], srv: list[SrvRecord], pods: dict[int, list[str]],
    reverse: dict[str, list[str]], expected: int
) -> None:
    dns_answers = FakeDns(hosts={KV.service_fqdn: service} | {KV.pod_fqdn(o): a for o, a in
                                                               pods.items()},
                          srv_records={KV.srv_fqdn or "": srv}, reverse=reverse)
    peers = asyncio.run(Discovery(dns_answers, KV).discover(expected=expected))
    names = [*(r.target for r in srv), *(n for ns in reverse.values() for n in ns)]
    _check_peers(peers, set(pods) | {o for o in map(_ordinal, names) if o is not None})
    found = {peer.ordinal for peer in peers}
    assert {o for o in map(_ordinal, (r.target for r in srv)) if o is not None} <= found
    assert {o for o in pods if o < expected} <= found
    # Names outside this Service are never asked about.
    assert all(name.endswith(KV_SUFFIX) or name == KV.service_fqdn or kind == "PTR"
               for kind, name in dns_answers.queries)


# Wire-level answers: labels are arbitrary bytes, as a resolver may hand them over.
LABEL_BYTES = st.one_of(
    st.sampled_from([b"kv-0", b"kv-1", b"KV-2", b"kv-01", b"kv-hl", b"web-0", b"prod",
                     b"default", b"svc", b"cluster", b"local", b"kv 1", b"kv-1\n", b"\xff",
                     b"kv-1.", b"\\"]),
    st.binary(min_size=1, max_size=63),
)
SUFFIX_LABELS = st.sampled_from([
    [b"kv-hl", b"prod", b"svc", b"cluster", b"local"],
    [b"KV-HL", b"Prod", b"SVC", b"cluster", b"local"],
    [b"kv-hl", b"default", b"svc", b"cluster", b"local"],
    [b"kv-hl", b"prod", b"svc"],
    [],
])
WIRE_NAME = st.builds(lambda head, tail: dns.name.Name([*head, *tail, b""]),
                      st.lists(LABEL_BYTES, min_size=1, max_size=2), SUFFIX_LABELS)
IN = dns.rdataclass.IN


def _rdata(rdtype: str, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rdtype, text)


def _dns_error(kind: Any, **kwargs: Any) -> dns.exception.DNSException:
    error: dns.exception.DNSException = kind(**kwargs)
    return error


V4 = st.ip_addresses(v=4).map(lambda address: _rdata("A", str(address)))
V6 = st.ip_addresses(v=6).map(lambda address: _rdata("AAAA", str(address)))
WIRE_SRV = st.builds(lambda p, w, port, target: _rdata("SRV", f"{p} {w} {port} {target}"),
                     st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535),
                     WIRE_NAME.map(dns.name.Name.to_text))
WIRE_PTR = WIRE_NAME.map(lambda target: _rdata("PTR", target.to_text()))
FAILURES = st.sampled_from([
    _dns_error(dns.exception.Timeout), _dns_error(dns.resolver.LifetimeTimeout, timeout=2.0,
                                                  errors={}),
    _dns_error(dns.resolver.NoNameservers), _dns_error(dns.resolver.YXDOMAIN),
    _dns_error(dns.resolver.NoAnswer), _dns_error(dns.exception.FormError),
    _dns_error(dns.exception.SyntaxError), _dns_error(dns.name.LabelTooLong),
])


class _WireAnswers:
    """Stands in for dnspython's ``resolve``: canned rdata per (name, type), NXDOMAIN else."""

    def __init__(self, answers: dict[tuple[str, str], list[dns.rdata.Rdata]],
                 failures: dict[tuple[str, str], dns.exception.DNSException]) -> None:
        self.answers, self.failures = answers, failures

    async def resolve(self, qname: str, rdtype: str, *, search: bool,
                      raise_on_no_answer: bool) -> SimpleNamespace:
        key = (qname.lower(), rdtype)
        if key in self.failures:
            raise self.failures[key]
        if key not in self.answers:
            raise dns.resolver.NXDOMAIN
        return SimpleNamespace(rrset=self.answers[key] or None)


@_examples(200)
@given(data=st.data(), service=st.lists(V4 | V6, max_size=4), srv=st.lists(WIRE_SRV, max_size=4),
       pods=st.dictionaries(st.integers(0, 4), st.lists(V4 | V6, max_size=2), max_size=3),
       ptr=st.lists(st.lists(WIRE_PTR, max_size=2), max_size=4),
       fail=st.dictionaries(st.sampled_from(["A", "AAAA", "SRV", "PTR"]), FAILURES, max_size=1))
def test_dnspython_answers_map_only_to_this_set(
    data: st.DataObject, service: list[dns.rdata.Rdata], srv: list[dns.rdata.Rdata],
    pods: dict[int, list[dns.rdata.Rdata]], ptr: list[list[dns.rdata.Rdata]],
    fail: dict[str, dns.exception.DNSException],
) -> None:
    def rdtype(rd: dns.rdata.Rdata) -> str:
        return dns.rdatatype.to_text(rd.rdtype)

    answers: dict[tuple[str, str], list[dns.rdata.Rdata]] = {}

    def answer(name: str, records: list[dns.rdata.Rdata], *kinds: str) -> None:
        for kind in kinds:
            answers[(name.lower() + ".", kind)] = [r for r in records if rdtype(r) == kind]

    answer(KV.service_fqdn, service, "A", "AAAA")
    answer(KV.srv_fqdn or "", srv, "SRV")
    for ordinal, records in pods.items():
        answer(KV.pod_fqdn(ordinal), records, "A", "AAAA")
    for record, names in zip(service, ptr, strict=False):
        answers[(dns.reversename.from_address(record.to_text()).to_text().lower(), "PTR")] = names
    failures: dict[tuple[str, str], dns.exception.DNSException] = {}
    for kind, error in fail.items():
        failing = data.draw(st.sampled_from(sorted(answers) or [("none.", kind)]), label="fails")
        failures[(failing[0], kind)] = error
    client = DnspythonClient(("192.0.2.53", 53))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(client.resolver, "resolve", _WireAnswers(answers, failures).resolve)
            peers = asyncio.run(Discovery(client, KV).discover(expected=2))
    except DnsUnavailable as exc:
        assert failures and exc.exit_code == 4, exc
        return
    targets = [rd.to_text().split()[-1] for rd in srv] + [
        rd.to_text() for names in ptr for rd in names]
    _check_peers(peers, set(pods) | {o for o in map(_ordinal, targets) if o is not None})
    for peer in peers:
        assert all(ipaddress.ip_address(address) for address in peer.addresses)
        assert peer.port is None or 0 <= peer.port <= 65535
