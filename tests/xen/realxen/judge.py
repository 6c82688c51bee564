"""Judging one scenario from what dom0 recorded (pure functions, no Xen needed).

The verdict is a list of problems; an empty list is a pass.  Each check reads
what a person would read: libxl's debug log from ``xl -vvv create``, the
bootloader log libxl keeps (``/var/log/xen/bootloader.<domid>.log``), the
guest console that xenconsoled logged, and what was left in /var/lib/xen or
in the process table afterwards.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional

from .scenarios import Expect, cmdline_token

#: libxl's lines for the outcomes (libxl_bootloader.c, Xen 4.17).
LIBXL_SUCCESS = "bootloader execution successful"
LIBXL_FAILED = "bootloader failed - consult logfile"
LIBXL_TIMEOUT = "killing bootloader because of timeout"
LIBXL_UNEXPECTED = "unexpected output from bootloader"
OUR_ERROR = "xenpvnetboot: error:"
#: What libxl hands the domain builder (xc_dom_allocate's debug line), and
#: what the guest kernel says it was given.
BUILDER_CMDLINE = re.compile(r'xc_dom_allocate: cmdline="([^"\n]*)"')
GUEST_CMDLINE = re.compile(r"(?i)command line: *([^\r\n]*)")
#: Terminal control sequences, as dom0's runner removes them before matching.
ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()*+][0-9A-Za-z]|[@-Z\\-_])")


def plain_console(result: Mapping[str, object]) -> str:
    return ESCAPES.sub("", str(result.get("console", "")))


def bootloader_log(result: Mapping[str, object]) -> bytes:
    return bytes.fromhex(str(result.get("bootloader_log_hex", "")))


def libxl_errors(xl_log: str, limit: int = 4) -> str:
    """libxl's error lines about the bootloader and the build (not the clean-up after them)."""
    lines = [line.split(": error: ", 1)[1].strip() for line in xl_log.splitlines() if ": error: " in line]
    wanted = [line for line in lines if "bootloader" in line or "build" in line] or lines
    return " | ".join(wanted[:limit]) or "(no error lines)"


def check_cleanup(result: Mapping[str, object]) -> List[str]:
    """Nothing of the bootloader is left: files, mounts, processes, the domain."""
    problems = []
    if result.get("leftovers"):
        problems.append(f"left in /var/lib/xen: {result['leftovers']}")
    if result.get("mounts"):
        problems.append(f"mounts left: {result['mounts']}")
    if result.get("procs_after"):
        procs = [(p["pid"], p["uid"][1] if p.get("uid") else None) for p in result["procs_after"]]
        problems.append(f"bootloader processes (pid, euid) still running after xl create: {procs}")
    return problems


def check_console(result: Mapping[str, object], name: str, expect: Expect) -> List[str]:
    console = plain_console(result)
    problems = []
    missing = [" or ".join(item) for item in expect.awaited if not any(alt in console for alt in item)]
    if missing:
        tail = " ".join(console[-400:].split())
        problems.append(f"guest console lacks {missing} (it ends: {tail!r})")
    if expect.screen != "created":
        token = cmdline_token(name)
        if not re.search(r"(?i)command line:.*" + re.escape(token), console):
            problems.append(f"guest kernel command line lacks {token!r}: the args item got lost")
    for bad in ("Initramfs unpacking failed", "Kernel panic"):
        if bad in console:
            problems.append(f"guest console shows {bad!r}")
    for text in expect.never:
        if text in console:
            at = console.index(text)
            near = " ".join(console[max(0, at - 200):at + 100].split())
            problems.append(f"guest console shows {text!r}, which it must not reach (near: {near!r})")
    return problems


def guest_cmdlines(result: Mapping[str, object]) -> List[str]:
    """The kernel command lines seen: libxl's to the domain builder, the guest's own."""
    found = BUILDER_CMDLINE.findall(str(result.get("xl_log", "")))
    found += GUEST_CMDLINE.findall(plain_console(result))
    return found


def check_cmdline(result: Mapping[str, object], expect: Expect) -> List[str]:
    """Words the guest's command line must hold or lack, wherever it was seen."""
    if not (expect.cmdline_has or expect.cmdline_lacks):
        return []
    lines = guest_cmdlines(result)
    if not lines:
        return ["no kernel command line in libxl's log or on the guest console"]
    problems = []
    for line in lines:
        words = line.split()
        missing = [word for word in expect.cmdline_has if word not in words]
        present = [word for word in words if word.startswith(expect.cmdline_lacks)]
        if missing:
            problems.append(f"kernel command line {line!r} lacks {missing}")
        if expect.cmdline_lacks and present:
            problems.append(f"kernel command line {line!r} has {present}")
    return problems


def check_log(text: str, expect: Expect) -> List[str]:
    missing = [want for want in expect.log_has if want not in text]
    if missing:
        return [f"the bootloader log lacks {missing}: {text[-600:]!r}"]
    return []


def check_crlf(log: bytes) -> List[str]:
    """On libxl's raw pty (no output processing) a bare LF does not return the carriage."""
    bare = [line for line in log.split(b"\n")[:-1] if not line.endswith(b"\r")]
    if bare:
        return [f"{len(bare)} bootloader line(s) end in a bare LF, e.g. {bare[0][:80]!r}"]
    return []


def check_runas(result: Mapping[str, object], user: str, uids: Mapping[str, int]) -> List[str]:
    """The work ran as *user*: a process of this domain's bootloader had its uid."""
    uid = uids.get(user)
    if uid is None:
        return [f"dom0 has no user {user!r}"]
    problems = []
    if f"--runas={uid}" not in str(result.get("xl_log", "")):
        problems.append(f"libxl did not pass --runas={uid}")
    procs = result.get("procs") or []
    workers = [p for p in procs if p.get("uid") and all(u == uid for u in p["uid"])]
    roots = [p for p in procs if p.get("uid") and p["uid"][1] == 0]
    if not workers:
        seen = [(p["pid"], p.get("uid")) for p in procs]
        problems.append(f"no bootloader process ran as uid {uid} ({user}); seen (pid, uids): {seen}")
    elif roots and not any(w["ppid"] in {r["pid"] for r in roots} for w in workers):
        problems.append("the process running as the user is not a child of the root bootloader")
    return problems


def judge(name: str, expect: Expect, result: Mapping[str, object],
          uids: Optional[Mapping[str, int]] = None) -> List[str]:
    """Every way in which *result* falls short of *expect*."""
    if "harness_error" in result:
        return [f"the harness failed in dom0: {result['harness_error']}"]
    xl_log = str(result.get("xl_log", ""))
    log = bootloader_log(result)
    text = log.decode(errors="replace")
    problems: List[str] = []
    if "Traceback (most recent call last)" in text:
        problems.append("the bootloader log has a Python traceback")
    if expect.outcome == "boots":
        if result.get("xl_rc") != 0:
            problems.append(f"xl create failed (status {result.get('xl_rc')}): {libxl_errors(xl_log)}")
        else:
            if LIBXL_SUCCESS not in xl_log:
                problems.append(f"libxl did not log {LIBXL_SUCCESS!r}")
            problems += check_console(result, name, expect)
        if LIBXL_UNEXPECTED in xl_log:
            found = [line for line in xl_log.splitlines() if LIBXL_UNEXPECTED in line]
            problems.append(f"libxl found unexpected items in the bootloader's result: {found[0][-160:]}")
        errors = [line for line in text.splitlines() if OUR_ERROR in line]
        if errors:
            problems.append(f"the bootloader reported an error: {errors[0].strip()!r}")
    elif expect.outcome == "fails":
        if result.get("xl_rc") == 0:
            problems.append("xl create succeeded, but this scenario must fail")
        elif LIBXL_FAILED not in xl_log:
            problems.append(f"libxl did not log {LIBXL_FAILED!r}: {libxl_errors(xl_log)}")
        if LIBXL_TIMEOUT in xl_log:
            problems.append("libxl killed the bootloader at its timeout before it failed by itself")
        errors = [line.strip() for line in text.splitlines() if OUR_ERROR in line]
        if len(errors) != 1:
            problems.append(f"expected one error line in the bootloader log, found {len(errors)}: "
                            f"{text[-600:]!r}")
        elif expect.error not in errors[0]:
            problems.append(f"the error line does not name {expect.error!r}: {errors[0]!r}")
    else:  # killed
        if result.get("xl_rc") == 0:
            problems.append("xl create succeeded, but libxl had to kill the bootloader")
        if LIBXL_TIMEOUT not in xl_log:
            problems.append(f"libxl did not log {LIBXL_TIMEOUT!r}: {libxl_errors(xl_log)}")
    if expect.outcome != "boots" and result.get("domain_left"):
        problems.append("the domain is still there after the failure")
    problems += check_cleanup(result)
    problems += check_cmdline(result, expect) + check_log(text, expect)
    if expect.crlf:
        problems += check_crlf(log)
    if expect.runas_user:
        problems += check_runas(result, expect.runas_user, uids or {})
    return problems


def runas_evidence(result: Mapping[str, object], uid: int) -> str:
    """One line for the summary: which process did the work as *uid*."""
    procs = result.get("procs") or []
    for proc in procs:
        if proc.get("uid") and all(u == uid for u in proc["uid"]):
            return (f"pid {proc['pid']} (child of {proc['ppid']}) ran as uid {uid}, "
                    f"no_new_privs {proc.get('no_new_privs')}")
    return f"no process ran as uid {uid}"


def times(result: Mapping[str, object]) -> Dict[str, object]:
    """The figures of one scenario for the summary table."""
    return {"create": result.get("t_create"), "total": result.get("t_total"),
            **{f"@{key}": value for key, value in dict(result.get("marks") or {}).items()}}
