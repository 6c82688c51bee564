"""The real-Xen scenarios: what each guest is given, and what must come of it.

A scenario is a few xl.cfg items, the environment of ``xl create`` and an
expectation.  Strings may name the host's servers as seen from dom0:
``{http}`` (http://10.0.2.2:PORT), ``{tftp}`` (QEMU's TFTP server),
``{nfs}`` (HOST:/EXPORT of the NFS server), ``{iso}`` (the ISO copied into
dom0), ``{bin}`` (the harness's own bootloaders in dom0), ``{data}`` (a dom0
directory holding :data:`DATA` and the public key of the signed mirror as
``archive-key.pgp``), ``{signer}`` (that key's fingerprint as the bootloader
prints it) and ``{user}`` (the unprivileged dom0 user for restricted mode).

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
#: The same mirror signed with a key made for the run (media.py), and a copy
#: of it whose Xen ramdisk differs from what the signed lists say.
SIGNED = "signed"
TAMPERED = "signed-tampered"
#: The Debian netboot tree with its own pxelinux.cfg, as served over tftp.
NETBOOT_TREE = "netboot"
#: Files in dom0's {data}: name there -> file in tests/data of the checkout.
DATA = {"preseed.cfg": "preseed-lang.cfg"}
#: The public key of the signed mirror, in {data}.
KEYRING = "archive-key.pgp"

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

#: debian-installer's questions before its network step (the text frontend's
#: and the newt one's wording): with the preseed applied, none may be asked.
FIRST_QUESTIONS = ("Choose language", "Language:", "Select your location",
                   "Configure the keyboard", "Keymap to use")
#: The installer's network step in German (templates of the Debian 12
#: initrd; the first is the title of its progress bar, which comes first):
#: German shows only if the injected preseed was read.
GERMAN_NETWORK = ("Erkennen der Netzwerk-Hardware", "Netzwerk-Hardware erkennen",
                  "Netzwerk einrichten", "Es wurde keine Netzwerk-Schnittstelle gefunden")
#: The installer's language question, by either frontend.
LANGUAGE_QUESTION = ("Choose language", "Select a language")
#: The kernel command line for the installer scenarios: the text frontend;
#: auto=false, so that d-i asks the language before the network (the answer
#: file then only adds priority=critical); and TERM_TYPE=pts, since on what
#: d-i takes for a serial console (hvc0) it offers, and accepts from a
#: preseed, only C and English (localechooser's display level 0).
TEXT_INSTALLER = "console=hvc0 DEBIAN_FRONTEND=text auto=false TERM_TYPE=pts"

CfgValue = Union[str, int, Sequence[str]]
#: One awaited console text, or a tuple of texts any one of which will do.
Shown = Union[str, Tuple[str, ...]]


def alternatives(item: Shown) -> Tuple[str, ...]:
    return (item,) if isinstance(item, str) else tuple(item)


@dataclass(frozen=True)
class Expect:
    """How a scenario must end.

    ``outcome`` is "boots" (the guest reached ``screen``), "fails" (xl create
    failed, our one error line contains ``error``) or "killed" (libxl killed
    the bootloader after LIBXL_BOOTLOADER_TIMEOUT).  ``runas_user``: the work
    must have run as that dom0 user.  ``crlf``: every line the bootloader
    printed on libxl's raw pty ends in CR LF.

    The rest is checked on top of the outcome: ``shows``, console texts
    awaited after the screen's, in order (each a text or a tuple of
    alternatives); ``never``, console texts that fail the scenario and end
    the wait as soon as one appears; ``cmdline_has``, words the guest's
    kernel command line must hold, ``cmdline_lacks``, word prefixes it must
    not (``"vga="``); ``log_has``, texts the bootloader log must hold.
    Console texts are matched with terminal escapes removed; ``error`` and
    ``log_has`` may use the placeholders.
    """

    outcome: str = "boots"
    screen: str = "kernel"
    error: str = ""
    runas_user: str = ""
    crlf: bool = False
    shows: Tuple[Shown, ...] = ()
    never: Tuple[str, ...] = ()
    cmdline_has: Tuple[str, ...] = ()
    cmdline_lacks: Tuple[str, ...] = ()
    log_has: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.outcome not in ("boots", "fails", "killed"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.screen not in SCREENS:
            raise ValueError(f"unknown screen {self.screen!r}")
        if self.shows and self.outcome != "boots":
            raise ValueError("only a boot can show console texts")

    @property
    def awaited(self) -> List[Tuple[str, ...]]:
        """The console texts to wait for, in order, each as its alternatives."""
        if self.outcome != "boots":
            return []
        return [alternatives(item) for item in (*SCREENS[self.screen], *self.shows)]


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


def mirror_args(top: str = "", *more: str) -> Dict[str, CfgValue]:
    return {"bootloader_args": [f"--location={{http}}/{top}{MIRROR}/", *more]}


RESTRICTED = {"LIBXL_BOOTLOADER_RESTRICT": "1", "LIBXL_BOOTLOADER_USER": RESTRICT_USER}
#: The netboot tree's menu adds ``quiet``, which would hide the kernel lines
#: the "kernel" level waits for; ``extra`` comes after the menu's arguments
#: and wins.
MENU_EXTRA = "console=hvc0 loglevel=7"
VERIFY = ("--verify=require", f"--keyring={{data}}/{KEYRING}")

SCENARIOS: List[Scenario] = [
    Scenario("http-mirror", mirror_args("", "-v"), Expect(crlf=True),
             doc="a Debian mirror over http, only --location (and -v)"),
    Scenario("http-urls", {**http_urls(NETBOOT_XEN), "bootloader": "{bin}/probe-bootloader"},
             env={"XENPVNB_PROBE_RECORD": "{probe}/http-urls.json"},
             doc="kernel = and ramdisk = as full URLs; the probe records what libxl "
                 "hands the bootloader, then execs it unchanged"),
    Scenario("restricted", mirror_args(), Expect(runas_user=RESTRICT_USER), env=RESTRICTED,
             doc="restricted mode as Xen 4.17 has it: environment variables of xl"),
    Scenario("tftp", {"bootloader_args": ["--location={tftp}/"], "extra": MENU_EXTRA},
             Expect(cmdline_has=("---", "quiet"), cmdline_lacks=("vga=",)),
             doc="QEMU's built-in TFTP server, the unpacked netboot tree; its own "
                 "pxelinux.cfg/default gives the arguments ('--- quiet', vga= dropped)"),
    Scenario("menu-entry", {"bootloader_args": [f"--location={{http}}/{NETBOOT_TREE}/",
                                                "--entry=Expert install"]},
             Expect(screen="created", cmdline_has=("priority=low", "---"),
                    cmdline_lacks=("vga=", "quiet")),
             doc="the same tree over http, --entry picks 'Expert install' of its menu"),
    Scenario("preseed", {**mirror_args("", "--initrd-inject={data}/preseed.cfg"),
                         "extra": TEXT_INSTALLER},
             Expect(shows=(GERMAN_NETWORK,), never=FIRST_QUESTIONS,
                    cmdline_has=("priority=critical", "auto=false"), cmdline_lacks=("auto=true",)),
             doc="an injected preseed.cfg answers language, country and keyboard: the "
                 "installer goes on to its network step, in German"),
    Scenario("signed", mirror_args(f"{SIGNED}/", *VERIFY),
             Expect(log_has=(f"Verified kernel {{http}}/{SIGNED}/{NETBOOT_XEN}/vmlinuz",
                             "signed by {signer}")),
             doc="a mirror signed with a key made for the run, --verify=require with that key"),
    Scenario("signed-tampered", mirror_args(f"{TAMPERED}/", *VERIFY),
             Expect(outcome="fails", error=f"{{http}}/{TAMPERED}/{NETBOOT_XEN}/initrd.gz"),
             doc="the same signed lists, a ramdisk that differs from them"),
    Scenario("iso-local", {"bootloader_args": ["--location={iso}"]},
             doc="an ISO in Debian media layout, a local file in dom0"),
    Scenario("iso-http", {"bootloader_args": ["--location={http}/iso/debian-12-netboot.iso"]},
             ci=False, doc="the same ISO read in place over http"),
    Scenario("nfs", {"bootloader_args": [f"--location=nfs:{{nfs}}/{MIRROR}/"]},
             needs=("nfs",), doc="the mirror tree from nfs-ganesha on the host"),
    Scenario("http-404", {"kernel": f"{{http}}/{NETBOOT_XEN}/vmlinuz",
                          "ramdisk": f"{{http}}/{NETBOOT_XEN}/initrd-missing.gz"},
             Expect(outcome="fails", error=f"{{http}}/{NETBOOT_XEN}/initrd-missing.gz"),
             doc="a 404 for the ramdisk after the kernel arrived"),
    Scenario("deadline", mirror_args("stall/", "--timeout=60"),
             Expect(outcome="fails", error="deadline"),
             env={**RESTRICTED, "LIBXL_BOOTLOADER_TIMEOUT": "30"},
             doc="a server that stalls mid-file, restricted mode: our deadline (3 s "
                 "before libxl's kill, counted from the process's start) comes first"),
    Scenario("timeout", {**mirror_args("stall/", "--timeout=60"),
                         "bootloader": "{bin}/untimed-bootloader"},
             Expect(outcome="killed"),
             env={**RESTRICTED, "LIBXL_BOOTLOADER_TIMEOUT": "15"},
             doc="the same, our deadline left at its default: libxl's SIGKILL lands "
                 "mid-download, and nothing is left"),
    # -- the harness's own checks: these must be reported as failed boots
    Scenario("selftest-args", {**http_urls(NETBOOT_XEN), "bootloader": "{bin}/rejecting-bootloader"},
             must_report="exited with error status 2",
             doc="a bootloader that rejects an argument libxl sends"),
    Scenario("selftest-output", {**http_urls(NETBOOT_XEN), "bootloader": "{bin}/unparsable-bootloader"},
             must_report="unexpected items",
             doc="a bootloader whose result libxl cannot parse"),
    # -- by hand only (XEN_SCENARIOS=all)
    Scenario("preseed-control", {**mirror_args(), "extra": TEXT_INSTALLER},
             Expect(shows=(LANGUAGE_QUESTION,), never=GERMAN_NETWORK), ci=False,
             doc="the preseed scenario without the injection: the installer asks the language"),
    Scenario("http-mirror-installer", mirror_args("", "-v"), Expect(screen="installer", crlf=True),
             ci=False, doc="http-mirror up to the installer's first screen"),
    Scenario("http-mirror-restricted-installer", mirror_args(),
             Expect(screen="installer", runas_user=RESTRICT_USER), env=RESTRICTED,
             ci=False, doc="restricted mode up to the installer's first screen"),
    Scenario("tftp-installer", {"bootloader_args": ["--location={tftp}/"], "extra": MENU_EXTRA},
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
    return replace(expect, error=fill(expect.error, hosts),
                   log_has=tuple(fill(text, hosts) for text in expect.log_has))


def job_entry(scenario: Scenario, hosts: Mapping[str, str]) -> Dict[str, object]:
    """What the dom0 runner needs for one scenario (plain JSON).

    ``wait_for``: the awaited console texts in order, each a list of
    alternatives; ``stop_on``: texts that end the wait at once."""
    expect = scenario.expect
    wait_for = [] if scenario.must_report else expect.awaited
    return {
        "name": scenario.name,
        "cfg": render_cfg(cfg_items(scenario, hosts)),
        "env": {key: fill(value, hosts) for key, value in scenario.env.items()},
        "wait_for": [list(item) for item in wait_for],
        "stop_on": [*FATAL_CONSOLE, *expect.never],
    }
