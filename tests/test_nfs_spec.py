"""The NFS location syntax: ``[OPTIONS:]HOST:/PATH`` (no server needed)."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xenpvnetboot.errors import UsageError
from xenpvnetboot.transports.nfs import DEFAULT_VERSIONS, NfsSpec, parse_spec

# -- examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, host, path",
    [
        ("server:/export/path", "server", "/export/path"),
        ("server.example.com:/", "server.example.com", "/"),
        ("192.0.2.7:/srv/install/", "192.0.2.7", "/srv/install"),
        ("[::1]:/export", "::1", "/export"),
        ("[fd00::2]:/a//b/./c/../d", "fd00::2", "/a/b/d"),
        ("nfs_server-1:/x:y", "nfs_server-1", "/x:y"),
        ("host:/with space/and,comma", "host", "/with space/and,comma"),
    ],
)
def test_original_form(text, host, path):
    spec = parse_spec(text)
    assert (spec.host, spec.path, spec.versions, spec.port, spec.mount_port) == (
        host, path, DEFAULT_VERSIONS, None, None
    )
    assert spec.location() == f"nfs:{text.split(':/')[0]}:{path}"


@pytest.mark.parametrize(
    "text, versions, port, mount_port",
    [
        ("vers=3:h:/p", ("3",), None, None),
        ("nfsvers=4:h:/p", ("4.1", "4.0"), None, None),
        ("vers=4.0,port=2050:h:/p", ("4.0",), 2050, None),
        ("port=2050,vers=4.1,mountport=635:[::1]:/p", ("4.1",), 2050, 635),
    ],
)
def test_options(text, versions, port, mount_port):
    spec = parse_spec(text)
    assert (spec.versions, spec.port, spec.mount_port) == (versions, port, mount_port)
    assert parse_spec(spec.location()[len("nfs:"):]) == spec


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("", "HOST:/PATH"),
        ("server", "HOST:/PATH"),
        ("server:", "absolute"),
        ("server:relative/path", "absolute"),
        (":/export", "not a host name"),
        ("::1:/export", "brackets"),
        ("[::1/export", "IPV6"),
        ("[::1]/export", "IPV6"),
        ("[not-v6]:/export", "not an IPv6 address"),
        ("[fe80::1%eth0]:/export", "not an IPv6|zone"),
        ("bad host:/export", "not a host name"),
        ("-dash.example:/x", "not a host name"),
        ("300.1.1.1:/x", "not a host name"),
        ("vers=5:h:/p", "vers="),
        ("vers=3,vers=4:h:/p", "twice"),
        ("port=0:h:/p", "port number"),
        ("port=65536:h:/p", "port number"),
        ("port=x:h:/p", "port number"),
        ("rsize=4096:h:/p", "unknown option"),
        ("vers=3,ro:h:/p", "unknown option"),
        ("vers=3:", "HOST:/PATH"),
        ("h:/p\x00q", "control characters"),
    ],
)
def test_malformed(text, complaint):
    with pytest.raises(UsageError, match=complaint):
        parse_spec(text)


# -- properties -------------------------------------------------------------------------

LABEL = st.from_regex(r"\A[A-Za-z0-9_]([A-Za-z0-9_-]{0,10}[A-Za-z0-9_])?\Z")
HOST_NAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(
    lambda host: not all(ch.isdigit() or ch == "." for ch in host)
)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
COMPONENT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1, max_size=8
)
PATH = st.lists(COMPONENT, max_size=5).map(lambda parts: "/" + "/".join(parts))
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "vers": st.sampled_from(["3", "4", "4.0", "4.1"]),
        "port": st.integers(1, 65535),
        "mountport": st.integers(1, 65535),
    },
)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_a_usage_error(text):
    try:
        spec = parse_spec(text)
    except UsageError:
        return
    assert isinstance(spec, NfsSpec) and spec.path.startswith("/")


@given(st.text(alphabet=":/[]=,.0123456789abvrsptn \x00%", max_size=30))
def test_syntax_characters_parse_or_are_a_usage_error(text):
    try:
        spec = parse_spec(text)
    except UsageError:
        return
    assert isinstance(spec, NfsSpec) and spec.path.startswith("/")


@given(OPTIONS, st.one_of(HOST_NAME, IPV4, IPV6), PATH)
def test_valid_locations_round_trip(options, host, path):
    written = f"[{host}]" if ":" in host else host
    prefix = ",".join(f"{key}={value}" for key, value in options.items())
    text = f"{prefix + ':' if prefix else ''}{written}:{path}"
    spec = parse_spec(text)
    assert spec.host == host
    assert spec.path == posixpath.normpath(path) or (path == "/" and spec.path == "/")
    assert spec.port == options.get("port")
    assert spec.mount_port == options.get("mountport")
    assert parse_spec(spec.location()[len("nfs:"):]) == spec
