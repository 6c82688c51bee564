"""Check a fetched kernel and ramdisk before libxl tries to boot them.

When the "kernel" is an HTML error page, a kernel without Xen support, a
kernel for the wrong architecture or a truncated file, libxl only says
"xc_dom_find_loader: no loader found" once the domain is half built.  This
module reads the files (pure Python, bounded work) and says what is wrong,
one line per problem, naming the file by where it came from.

``check_boot_files`` applies a policy; the caller prints ``problems`` (and
``details`` with -v or --dry-run) and refuses to boot when ``refuse`` is set.
``inspect_kernel`` and ``inspect_ramdisk`` give the facts alone.
"""

from __future__ import annotations

import platform
import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple, TypeVar, Union

from ._elf import NO_XEN_NOTES, XEN_ELFNOTE_ENTRY
from ._kernel import inspect_kernel
from ._ramdisk import inspect_ramdisk
from ._reports import KernelReport, RamdiskMember, RamdiskReport, describe_member

__all__ = [
    "POLICIES", "GUEST_TYPES", "CheckResult", "KernelReport", "RamdiskReport",
    "RamdiskMember", "check_boot_files", "inspect_kernel", "inspect_ramdisk",
    "normalise_arch",
]

#: "off": nothing is read; "warn": problems are reported; "strict": the caller refuses.
POLICIES = ("off", "warn", "strict")
GUEST_TYPES = ("pv", "pvh")

_ARCHES = {
    "x86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64",
    "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386", "x86": "i386",
    "x86_32": "i386", "aarch64": "aarch64", "arm64": "aarch64", "arm": "arm",
    "armhf": "arm", "armv7l": "arm", "arm32": "arm",
}
_FAMILY = {"x86_64": "x86", "i386": "x86", "aarch64": "arm", "arm": "arm"}

T = TypeVar("T")
U = TypeVar("U")


@dataclass
class CheckResult:
    """The outcome of ``check_boot_files``.

    ``problems``: one line each, "kernel NAME: what is wrong".  ``details``:
    what was found (format, compression, version, PV/PVH support), for
    --dry-run and -v.  ``kernel``/``ramdisk``: the structured reports (None
    when not inspected).
    """

    policy: str
    guest_type: str
    problems: List[str] = field(default_factory=list)
    details: List[str] = field(default_factory=list)
    kernel: Optional[KernelReport] = None
    ramdisk: Optional[RamdiskReport] = None

    @property
    def refuse(self) -> bool:
        """True when the policy is strict and something is wrong: do not boot."""
        return self.policy == "strict" and bool(self.problems)


def normalise_arch(arch: Optional[str]) -> Optional[str]:
    """"x86_64", "i386", "aarch64" or "arm" for the usual spellings; None stays None."""
    if arch is None:
        return None
    try:
        return _ARCHES[arch.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}") from None


def check_boot_files(kernel: Union[str, int], ramdisk: Union[str, int, None] = None, guest_type: str = "pv",
                     policy: str = "warn", arch: Optional[str] = None,
                     kernel_name: Optional[str] = None, ramdisk_name: Optional[str] = None,
                     *, verify_ramdisk: bool = True,
                     kernel_report: Optional[KernelReport] = None,
                     ramdisk_report: Optional[RamdiskReport] = None) -> CheckResult:
    """Inspect *kernel* (and *ramdisk*) for a *guest_type* guest under *policy*.

    *arch* is the guest's architecture; when None, only a kernel for another
    family than this host's (arm64 on x86) is a problem.  The names are
    shown in messages instead of the paths (give the URLs).  With
    *verify_ramdisk* false only the start of a compressed ramdisk is read
    (milliseconds instead of decompressing it all, but blind to a file cut
    short).  *kernel_report* and *ramdisk_report* are the files' reports if
    they were inspected already (while they arrived, or by an earlier boot of
    the same bytes).  Raises only ValueError, for a policy, guest type or arch that
    does not exist; whatever the files hold is reported, never raised.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown boot check policy {policy!r}")
    if guest_type not in GUEST_TYPES:
        raise ValueError(f"unknown guest type {guest_type!r}")
    wanted = normalise_arch(arch)
    result = CheckResult(policy=policy, guest_type=guest_type)
    if policy == "off":
        return result
    early, known = kernel_report, ramdisk_report
    kernel_report, ramdisk_report = _run_pair(
        lambda: early if early is not None else inspect_kernel(kernel, kernel_name),
        None if ramdisk is None else
        lambda: known if known is not None else inspect_ramdisk(ramdisk, ramdisk_name,
                                                                verify_ramdisk))
    assert kernel_report is not None  # inspect_kernel always answers
    result.kernel, result.ramdisk = kernel_report, ramdisk_report
    result.problems = kernel_problems(kernel_report, guest_type, wanted)
    result.details = kernel_details(kernel_report)
    if ramdisk_report is not None:
        result.problems += [f"ramdisk {ramdisk_report.name}: {fault}"
                            for fault in ramdisk_report.faults]
        result.details += ramdisk_details(ramdisk_report)
    return result


def _run_pair(first: Callable[[], T], second: Optional[Callable[[], U]]
              ) -> Tuple[T, Optional[U]]:
    """Run both, *second* on another thread.

    zlib, lzma and bz2 release the GIL while they work, so on a dom0 with two
    CPUs the kernel and the ramdisk are checked in the time of the slower.
    The thread is a daemon so an interrupted boot does not wait for it.
    """
    if second is None:
        return first(), None
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = second()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="bootcheck-ramdisk", daemon=True)
    thread.start()
    value = first()
    thread.join()
    if "error" in box:
        raise box["error"]
    return value, box["value"]


def kernel_problems(report: KernelReport, guest_type: str,
                    wanted: Optional[str]) -> List[str]:
    """The problem lines for *report* when booting a *guest_type* guest."""
    lines = list(report.faults)
    if not report.faults and report.recognised:
        lines += _arch_problems(report, wanted)
        if not lines:
            lines += _guest_type_problems(report, guest_type)
    return [f"kernel {report.name}: {line}" for line in lines]


def _arch_problems(report: KernelReport, wanted: Optional[str]) -> List[str]:
    host = _ARCHES.get(platform.machine().lower())
    family = _FAMILY.get(report.machine or "")
    if wanted is not None and report.machine != wanted and family is not None:
        return [f"is a {report.bits}-bit {report.machine} kernel, but the guest is {wanted}"]
    if wanted is None and host and family and family != _FAMILY[host]:
        return [f"is a kernel for {report.machine}; this {host} host cannot boot it"]
    if family is None and report.machine:
        return [f"is a kernel for {report.machine}, which Xen does not run"]
    return []


def _guest_type_problems(report: KernelReport, guest_type: str) -> List[str]:
    if _FAMILY.get(report.machine or "") == "arm":
        if guest_type == "pv":
            return ['is an Arm kernel; Xen on Arm boots guests only with type="pvh"']
        return []
    if guest_type == "pv" and report.pv is False:
        text = report.pv_blocker or "cannot boot as a PV guest"
        if report.notes_from is None or XEN_ELFNOTE_ENTRY not in report.xen_notes:
            text += ('; boot it with type="pvh" or use' if report.pvh else "; use")
            text += " a kernel built with CONFIG_XEN_PV"
        return [text]
    if guest_type == "pvh" and report.pvh is False:
        if report.notes_from is None:
            return [NO_XEN_NOTES + "; use a kernel built with CONFIG_PVH"]
        text = "has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); "
        text += 'boot it with type="pv" or use' if report.pv else "use"
        return [text + " a kernel built with CONFIG_PVH"]
    return []


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def kernel_details(report: KernelReport) -> List[str]:
    """Lines saying what the kernel is, for -v and --dry-run."""
    prefix = f"kernel {report.name}: "
    if not report.recognised:
        return [prefix + f"{report.size} bytes, not a kernel"]
    what = report.format or ""
    if report.boot_protocol:
        what += f" (boot protocol {report.boot_protocol})"
    inner = " ".join(part for part in (
        f"{report.compression}-compressed" if report.compression else "",
        f"{report.bits}-bit {report.machine}" if report.bits else "", "kernel") if part)
    lines = [prefix + f"{what}, {inner}, {report.size} bytes"]
    if report.version:
        lines.append(prefix + f"version {report.version}")
    if report.not_checked:
        lines.append(prefix + f"PV/PVH support unknown: {report.not_checked}")
        return lines
    lines += _notes_details(report, prefix)
    return lines


def _notes_details(report: KernelReport, prefix: str) -> List[str]:
    lines = []
    if report.notes_from:
        found = ", ".join(f"{label} {value}" for label, value in (
            ("guest OS", report.guest_os), ("Xen version", report.xen_version),
            ("loader", report.loader)) if value)
        where = f"Xen notes in {report.notes_from}"
        if report.unpacked_bytes:
            where += f" (found after decompressing {_mib(report.unpacked_bytes)})"
        lines.append(prefix + where + (f": {found}" if found else ""))
    lines.append(prefix + "PV: " + _yes_no(report.pv, report.pv_entry, report.pv_blocker))
    lines.append(prefix + "PVH: " + _yes_no(report.pvh, report.pvh_entry,
                                            "no XEN_ELFNOTE_PHYS32_ENTRY"))
    return lines


def _yes_no(flag: Optional[bool], entry: Optional[int], why: Optional[str]) -> str:
    if flag is None:
        return "unknown"
    if flag:
        return f"yes (entry {entry:#x})" if entry is not None else "yes"
    return f"no ({why})" if why else "no"


def ramdisk_details(report: RamdiskReport) -> List[str]:
    """Lines saying what the ramdisk is, for -v and --dry-run."""
    prefix = f"ramdisk {report.name}: "
    state = ("checked to the end" if report.verified else
             f"not fully checked: {report.not_checked}" if report.not_checked else "")
    lines = [prefix + ", ".join(part for part in (
        report.format, f"{report.size} bytes", state) if part)]
    for member in report.members:
        lines.append(prefix + f"at offset {member.offset}: " + _member_detail(member))
    return lines


def _member_detail(member: RamdiskMember) -> str:
    parts = [describe_member(member)]
    if member.entries is not None:
        parts.append(f"{member.entries} entries")
    if member.length is not None:
        parts.append(f"{member.length} bytes")
    if member.unpacked_size is not None and member.compression:
        parts.append(f"{member.unpacked_size} bytes unpacked")
    return ", ".join(parts)
