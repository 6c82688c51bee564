"""The real-Xen scenarios: what each guest is given, and what must come of it.

A scenario is a few xl.cfg items, the environment of ``xl create`` and an
expectation.  Strings may name the host's servers as seen from dom0:
``{http}`` (http://10.0.2.2:PORT), ``{tftp}`` (QEMU's TFTP server),
``{nfs}`` (HOST:/EXPORT of the NFS server), ``{iso}`` (the ISO copied into
dom0), ``{bin}`` (the harness's own bootloaders in dom0) and ``{user}`` (the
unprivileged dom0 user for restricted mode).

Adding one is a few lines in :data:`SCENARIOS`; ``ci=False`` keeps it out
of the CI set (``make xen-test XEN_SCENARIOS=all`` runs it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Sequence, Tuple, Union

#: The bootloader as pip installs it in dom0.
BOOTLOADER = "/usr/local/bin/xenpvnetboot"
#: The dom0 user that restricted mode runs the work as.
RESTRICT_USER = "xenpvnb-bl"
#: Where the tree of the Debian mirror lives on the HTTP and NFS servers.
MIRROR = "debian/dists/bookworm/main/installer-amd64"
NETBOOT_XEN = f"{MIRROR}/current/images/netboot/xen"

#: What each level of success must show on the guest console, in order.
SCREENS: Dict[str, Tuple[str, ...]] = {
    # the domain was built from what the bootloader returned (nothing more waited for)
    "created": (),
    # the kernel ran and so did the ramdisk's /init (the cpio unpacked)
    "kernel": ("Linux version 6.1", "Run /init as init process"),
    # the installer drew its first screen (needs >= 1024 MB of guest memory)
    "installer": ("Linux version 6.1", "Run /init as init process", "Select a language"),
}
#: Console text that ends the wait at once: the guest will not get further.
FATAL_CONSOLE = ("Kernel panic", "Initramfs unpacking failed", "No working init found")

CfgValue = Union[str, int, Sequence[str]]


@dataclass(frozen=True)
class Expect:
    """How a scenario must end.

    ``outcome`` is "boots" (the guest reached ``screen``), "fails" (xl create
    failed, our one error line contains ``error``) or "killed" (libxl killed
    the bootloader after LIBXL_BOOTLOADER_TIMEOUT).  ``runas_user``: the work
    must have run as that dom0 user.  ``crlf``: every line the bootloader
    printed on libxl's raw pty ends in CR LF.
    """

    outcome: str = "boots"
    screen: str = "kernel"
    error: str = ""
    runas_user: str = ""
    crlf: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in ("boots", "fails", "killed"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.screen not in SCREENS:
            raise ValueError(f"unknown screen {self.screen!r}")


@dataclass(frozen=True)
class Scenario:
    """One ``xl create``.  ``needs``: host pieces without which it is skipped
    ("nfs"); ``must_report``: a harness self-test -- judged as a boot, the
    run must be reported failed with this text among the problems."""

    name: str
    cfg: Mapping[str, CfgValue]
    expect: Expect = Expect()
    env: Mapping[str, str] = field(default_factory=dict)
    needs: Tuple[str, ...] = ()
    ci: bool = True
    must_report: str = ""
    doc: str = ""


def http_urls(path: str) -> Dict[str, CfgValue]:
    return {"kernel": f"{{http}}/{path}/vmlinuz", "ramdisk": f"{{http}}/{path}/initrd.gz"}


SCENARIOS: List[Scenario] = [
    Scenario("http-mirror", {"bootloader_args": [f"--location={{http}}/{MIRROR}/", "-v"]},
             Expect(screen="installer", crlf=True),
             doc="a Debian mirror over http, only --location (and -v)"),
    Scenario("http-urls", {**http_urls(NETBOOT_XEN), "bootloader": "{bin}/probe-bootloader"},
             env={"XENPVNB_PROBE_RECORD": "{probe}/http-urls.json"},
             doc="kernel = and ramdisk = as full URLs; the probe records what libxl "
                 "hands the bootloader, then execs it unchanged"),
    Scenario("restricted", {"bootloader_args": [f"--location={{http}}/{MIRROR}/"]},
             Expect(runas_user=RESTRICT_USER),
             env={"LIBXL_BOOTLOADER_RESTRICT": "1", "LIBXL_BOOTLOADER_USER": RESTRICT_USER},
             doc="restricted mode as Xen 4.17 has it: environment variables of xl"),
    Scenario("tftp", {"bootloader_args": ["--location={tftp}/"]},
             doc="QEMU's built-in TFTP server, an unpacked netboot.tar.gz"),
    Scenario("iso-local", {"bootloader_args": ["--location={iso}"]},
             doc="an ISO in Debian media layout, a local file in dom0"),
    Scenario("iso-http", {"bootloader_args": ["--location={http}/iso/debian-12-netboot.iso"]},
             doc="the same ISO read in place over http"),
    Scenario("nfs", {"bootloader_args": [f"--location=nfs:{{nfs}}/{MIRROR}/"]},
             needs=("nfs",), doc="the mirror tree from nfs-ganesha on the host"),
    Scenario("http-404", {"kernel": f"{{http}}/{NETBOOT_XEN}/vmlinuz",
                          "ramdisk": f"{{http}}/{NETBOOT_XEN}/initrd-missing.gz"},
             Expect(outcome="fails", error=f"{{http}}/{NETBOOT_XEN}/initrd-missing.gz"),
             doc="a 404 for the ramdisk after the kernel arrived"),
    Scenario("timeout", {"bootloader_args": [f"--location={{http}}/stall/{MIRROR}/",
                                             "--timeout=60"]},
             Expect(outcome="killed"),
             env={"LIBXL_BOOTLOADER_RESTRICT": "1", "LIBXL_BOOTLOADER_USER": RESTRICT_USER,
                  "LIBXL_BOOTLOADER_TIMEOUT": "15"},
             doc="a server that stalls mid-file; libxl's restrict-mode timeout kills us"),
    # -- the harness's own checks: these must be reported as failed boots
    Scenario("selftest-args", {**http_urls(NETBOOT_XEN), "bootloader": "{bin}/rejecting-bootloader"},
             must_report="exited with error status 2",
             doc="a bootloader that rejects an argument libxl sends"),
    Scenario("selftest-output", {**http_urls(NETBOOT_XEN), "bootloader": "{bin}/unparsable-bootloader"},
             must_report="unexpected items",
             doc="a bootloader whose result libxl cannot parse"),
    # -- by hand only (XEN_SCENARIOS=all)
    Scenario("http-mirror-restricted-installer",
             {"bootloader_args": [f"--location={{http}}/{MIRROR}/"]},
             Expect(screen="installer", runas_user=RESTRICT_USER),
             env={"LIBXL_BOOTLOADER_RESTRICT": "1", "LIBXL_BOOTLOADER_USER": RESTRICT_USER},
             ci=False, doc="restricted mode up to the installer's first screen"),
    Scenario("tftp-installer", {"bootloader_args": ["--location={tftp}/"]},
             Expect(screen="installer"), ci=False, doc="tftp up to the installer's first screen"),
    Scenario("iso-http-installer", {"bootloader_args": ["--location={http}/iso/debian-12-netboot.iso"]},
             Expect(screen="installer"), ci=False, doc="an ISO over http up to the first screen"),
]


def select(spec: str, scenarios: Sequence[Scenario] = SCENARIOS) -> List[Scenario]:
    """``ci`` (the default), ``all``, or names separated by commas."""
    spec = spec.strip() or "ci"
    if spec == "all":
        return list(scenarios)
    if spec == "ci":
        return [s for s in scenarios if s.ci]
    by_name = {s.name: s for s in scenarios}
    chosen = []
    for name in (part.strip() for part in spec.split(",")):
        if name not in by_name:
            raise ValueError(f"no scenario {name!r}; known: {', '.join(by_name)}")
        chosen.append(by_name[name])
    return chosen


# -- turning a scenario into what dom0 runs --------------------------------------

#: Items every guest gets unless its scenario says otherwise.
BASE_CFG: Dict[str, CfgValue] = {
    "type": "pv",
    "memory": 1024,
    "vcpus": 1,
    "bootloader": BOOTLOADER,
    "extra": "console=hvc0",
    "on_reboot": "destroy",
    "on_crash": "destroy",
}


def cmdline_token(name: str) -> str:
    """A word added to each guest's kernel command line: seeing it on the guest
    console proves that the ``args`` item reached the guest's kernel.  Dotted,
    it is a module parameter to the kernel and never reaches the installer
    (an undotted ``key=value`` would be handed to its init and to debconf)."""
    return f"xenpvnb.scenario={name}"


def fill(value: str, hosts: Mapping[str, str]) -> str:
    return value.format_map(dict(hosts))


def cfg_items(scenario: Scenario, hosts: Mapping[str, str]) -> Dict[str, CfgValue]:
    """The scenario's complete xl.cfg items, placeholders filled in."""
    items: Dict[str, CfgValue] = {"name": scenario.name, **BASE_CFG}
    items["disk"] = [f"file:/var/lib/xen/images/{scenario.name}.img,xvda,w"]
    items.update(scenario.cfg)
    items["extra"] = f"{items['extra']} {cmdline_token(scenario.name)}"
    filled: Dict[str, CfgValue] = {}
    for key, value in items.items():
        if isinstance(value, str):
            filled[key] = fill(value, hosts)
        elif isinstance(value, int):
            filled[key] = value
        else:
            filled[key] = [fill(item, hosts) for item in value]
    return filled


def render_cfg(items: Mapping[str, CfgValue]) -> str:
    """xl.cfg text: JSON string quoting is a subset of xl.cfg's."""
    lines = []
    for key, value in items.items():
        if isinstance(value, int):
            text = str(value)
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            text = "[" + ", ".join(json.dumps(item) for item in value) + "]"
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def filled_expect(scenario: Scenario, hosts: Mapping[str, str]) -> Expect:
    expect = scenario.expect
    return replace(expect, error=fill(expect.error, hosts)) if expect.error else expect


def job_entry(scenario: Scenario, hosts: Mapping[str, str]) -> Dict[str, object]:
    """What the dom0 runner needs for one scenario (plain JSON)."""
    expect = scenario.expect
    wait_for = SCREENS[expect.screen] if expect.outcome == "boots" and not scenario.must_report else ()
    return {
        "name": scenario.name,
        "cfg": render_cfg(cfg_items(scenario, hosts)),
        "env": {key: fill(value, hosts) for key, value in scenario.env.items()},
        "wait_for": list(wait_for),
        "stop_on": list(FATAL_CONSOLE),
    }
