"""--initrd-inject, the files and the arguments: what is read as root, what is
refused before anything is downloaded, and which kernel arguments each
answer file brings."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from support import env as test_env
from xenpvnetboot.errors import UsageError
from xenpvnetboot.inject import (DEBIAN_INSTALLER, MAX_FILE_SIZE, MAX_FILES, MAX_TOTAL_SIZE,
                                 AnswerFile, answer_args, describe, load_answer_files,
                                 name_problem)
from xenpvnetboot.layouts.table import ANACONDA, LINUXRC

NOBODY = 65534


def write(directory, name: str, data: bytes = b"answer\n", mode: int = 0o644) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "wb") as fileobj:
        fileobj.write(data)
    os.chmod(path, mode)
    return path


def refused(paths) -> str:
    with pytest.raises(UsageError) as info:
        load_answer_files(paths)
    assert info.value.exit_status == 2
    message = str(info.value)
    assert "\n" not in message
    return message


# -- what is kept ---------------------------------------------------------------


@pytest.mark.parametrize("mode, kept", [(0o644, 0o644), (0o600, 0o600), (0o640, 0o640),
                                        (0o755, 0o755), (0o666, 0o644), (0o4755, 0o755),
                                        (0o1777, 0o755), (0o000, 0o000)])
def test_name_mode_and_contents_are_kept(tmp_path, mode, kept):
    path = write(tmp_path, "ks.cfg", b"text\nreboot\n", mode)
    (answer,) = load_answer_files([path])
    assert answer == AnswerFile("ks.cfg", kept, b"text\nreboot\n", path)


def test_files_keep_their_order_and_empty_files_are_fine(tmp_path):
    paths = [write(tmp_path, name, data) for name, data in
             (("preseed.cfg", b"d-i x string y\n"), ("empty", b""), ("late.sh", b"#!/bin/sh\n"))]
    assert [(f.name, f.data) for f in load_answer_files(paths)] == [
        ("preseed.cfg", b"d-i x string y\n"), ("empty", b""), ("late.sh", b"#!/bin/sh\n")]


def test_a_root_only_file_is_read_by_root(tmp_path):
    """The dom0 admin's kickstart may be readable by root alone; it is read before any drop."""
    test_env.need_root()
    os.chmod(str(tmp_path), 0o755)
    path = write(tmp_path, "ks.cfg", b"rootpw --iscrypted $6$salt$hash\n", 0o600)
    pid = os.fork()
    if pid == 0:  # prove the file really is out of an unprivileged user's reach
        try:
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            open(path, "rb").close()
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 13
    (answer,) = load_answer_files([path])
    assert (answer.data, answer.mode) == (b"rootpw --iscrypted $6$salt$hash\n", 0o600)


# -- what is refused, and that nothing is touched first --------------------------


@pytest.mark.parametrize("name, why", [
    ("", "names no file"),
    (".", "is not a file name"),
    ("..", "is not a file name"),
    ("ks\ncfg", "control or unprintable"),
    ("ks\x01", "control or unprintable"),
    ("tab\there", "control or unprintable"),
    ("del\x7f", "control or unprintable"),
    ("zero\u200bwidth", "control or unprintable"),
    ("bad\udcff", "control or unprintable"),
    ("x" * 256, "longer than 255 bytes"),
    ("\u00e9" * 128, "longer than 255 bytes"),
    ("TRAILER!!!", "would end the cpio archive"),
])
def test_hostile_names_are_refused_before_the_file_is_looked_at(tmp_path, name, why):
    path = os.path.join(str(tmp_path), "missing-directory", name) if name else str(tmp_path) + "/"
    message = refused([path])
    assert message.startswith("--initrd-inject ")
    assert why in message
    assert "No such file" not in message  # the name was judged, the path never opened
    assert name_problem(name)


def test_odd_names_are_shown_escaped_on_one_line(tmp_path):
    message = refused([os.path.join(str(tmp_path), "a\nb")])
    assert "'" + str(tmp_path) + "/a\\nb'" in message


@pytest.mark.parametrize("name", ["ks.cfg", "preseed.cfg", "autoinst.xml", "a b", ".hidden",
                                  "-dash", "\u00e9t\u00e9.cfg", "x" * 255, "TRAILER!!", "init"])
def test_ordinary_names_are_accepted(name):
    assert name_problem(name) == ""


def test_a_symbolic_link_is_refused(tmp_path):
    target = write(tmp_path, "real.cfg")
    link = os.path.join(str(tmp_path), "ks.cfg")
    os.symlink(target, link)
    message = refused([link])
    assert message == f"--initrd-inject {link}: is a symbolic link; give the file itself"


def test_a_directory_through_a_linked_parent_is_followed(tmp_path):
    """Only the last component must not be a link; the directories above are ordinary paths."""
    real = tmp_path / "real"
    real.mkdir()
    write(real, "ks.cfg", b"x")
    os.symlink(str(real), str(tmp_path / "via"))
    assert load_answer_files([str(tmp_path / "via" / "ks.cfg")])[0].data == b"x"


def test_special_files_are_refused_without_opening_them(tmp_path):
    fifo = os.path.join(str(tmp_path), "fifo.cfg")
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    assert refused([fifo]).endswith("fifo.cfg: is a FIFO, not a regular file")
    assert refused([str(tmp_path / "sub") + "/."]).endswith('"." is not a file name')
    os.mkdir(str(tmp_path / "dir.cfg"))
    assert refused([str(tmp_path / "dir.cfg")]).endswith("is a directory, not a regular file")
    assert refused(["/dev/null"]).endswith("/dev/null: is a character device, not a regular file")
    sock_path = os.path.join(str(tmp_path), "sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(sock_path)
        assert refused([sock_path]).endswith("sock: is a socket, not a regular file")


def test_a_missing_file_is_named(tmp_path):
    path = os.path.join(str(tmp_path), "ks.cfg")
    assert refused([path]) == f"--initrd-inject {path}: No such file or directory"


def test_the_size_cap_of_one_file(tmp_path):
    assert len(load_answer_files([write(tmp_path, "max", bytes(MAX_FILE_SIZE))])[0].data) \
        == MAX_FILE_SIZE
    big = write(tmp_path, "big.cfg", bytes(MAX_FILE_SIZE + 1))
    assert refused([big]) == (f"--initrd-inject {big}: is 1.0 MiB; an injected file may have "
                              "at most 1.0 MiB")


def test_a_file_larger_than_it_says_is_cut_off_at_the_cap():
    """/proc files claim size 0; the read stops one byte past the cap whatever comes."""
    test_env.need_root()
    if not os.path.isfile("/proc/kallsyms") or os.stat("/proc/kallsyms").st_size != 0:
        pytest.skip("needs /proc/kallsyms (a file that reports size 0)")
    with open("/proc/kallsyms", "rb") as fileobj:
        if len(fileobj.read(MAX_FILE_SIZE + 1)) <= MAX_FILE_SIZE:
            pytest.skip("/proc/kallsyms is smaller than the cap here")
    assert refused(["/proc/kallsyms"]) == ("--initrd-inject /proc/kallsyms: is larger than "
                                           "1.0 MiB; an injected file may have at most 1.0 MiB")


def test_the_total_size_cap(tmp_path):
    count = MAX_TOTAL_SIZE // MAX_FILE_SIZE
    paths = [write(tmp_path, f"part{i}", bytes(MAX_FILE_SIZE)) for i in range(count)]
    assert len(load_answer_files(paths)) == count
    extra = write(tmp_path, "one-more", b"x")
    message = refused(paths + [extra])
    assert message.startswith(f"--initrd-inject {extra}: is 1 B, past the total of 4.0 MiB")


def test_the_number_of_files_is_capped(tmp_path):
    paths = [write(tmp_path, f"f{i}") for i in range(MAX_FILES + 1)]
    assert len(load_answer_files(paths[:-1])) == MAX_FILES
    assert refused(paths) == (f"--initrd-inject given {MAX_FILES + 1} times; at most "
                              f"{MAX_FILES} files can be injected")


def test_two_files_with_one_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write(tmp_path / "a", "ks.cfg"), write(tmp_path / "b", "ks.cfg")
    message = refused([first, second])
    assert message.startswith(f"--initrd-inject {second}: a second file named ks.cfg "
                              f"(the first is {first})")


def test_allowed_directories_confine_where_files_come_from(tmp_path):
    """Restricted mode: a configuration must not make root copy /etc/shadow into a guest."""
    allowed = tmp_path / "answers"
    (allowed / "fedora").mkdir(parents=True)
    inside = write(allowed / "fedora", "ks.cfg", b"inside")
    outside = write(tmp_path, "preseed.cfg", b"outside")
    os.symlink("/etc", str(allowed / "etc"))
    os.symlink(str(allowed), str(tmp_path / "answers-link"))
    assert load_answer_files([inside], allowed=[str(allowed)])[0].data == b"inside"
    # The allowed directory may itself be named through a link; it is resolved once.
    assert load_answer_files([inside], allowed=[str(tmp_path / "answers-link")])[0].data == \
        b"inside"
    message = refused_within([outside], [str(allowed)])
    assert message == (f"--initrd-inject {outside}: is not in {allowed}, where files to "
                       "inject must be")
    # A link among the directories is followed to where it leads, and judged there.
    assert "is not in" in refused_within([str(allowed / "etc" / "hostname")], [str(allowed)])
    (tmp_path / "answers-other").mkdir()  # a common prefix is not a parent
    sibling = write(tmp_path / "answers-other", "ks.cfg")
    assert "is not in" in refused_within([sibling], [str(allowed)])
    assert load_answer_files([outside], allowed=[str(tmp_path)])[0].data == b"outside"


def refused_within(paths, allowed) -> str:
    with pytest.raises(UsageError) as info:
        load_answer_files(paths, allowed=allowed)
    return str(info.value)


def test_answer_files_validate_themselves():
    with pytest.raises(ValueError):
        AnswerFile("a/b", 0o644, b"")
    with pytest.raises(ValueError):
        AnswerFile("ok", stat.S_IFREG | 0o644, b"")
    with pytest.raises(ValueError):
        AnswerFile("ok", 0o4755, b"")
    with pytest.raises(ValueError):
        AnswerFile("ok", 0o644, bytes(MAX_FILE_SIZE + 1))


def test_dry_run_lines(tmp_path):
    path = write(tmp_path, "ks.cfg", b"12345", 0o600)
    assert describe(load_answer_files([path])) == [
        f"Inject: /ks.cfg from {path} (5 bytes, mode 0600)"]


# -- kernel arguments -------------------------------------------------------------


@pytest.mark.parametrize("names, installer, expected", [
    (["ks.cfg"], ANACONDA, "inst.ks=file:/ks.cfg"),
    (["ks.cfg"], None, "inst.ks=file:/ks.cfg"),
    (["ks.cfg"], LINUXRC, ""),
    (["ks.cfg"], DEBIAN_INSTALLER, ""),
    (["preseed.cfg"], DEBIAN_INSTALLER, "auto=true priority=critical"),
    (["preseed.cfg"], None, "auto=true priority=critical"),
    (["preseed.cfg"], ANACONDA, ""),
    (["autoinst.xml"], LINUXRC, "autoyast=file:///autoinst.xml"),
    (["autoinst.xml"], None, "autoyast=file:///autoinst.xml"),
    (["autoinst.xml"], ANACONDA, ""),
    (["late.sh", "Ks.cfg", "ks.cfg.bak", "preseed"], None, ""),
    ([], None, ""),
    (["autoinst.xml", "preseed.cfg", "ks.cfg"], None,
     "inst.ks=file:/ks.cfg auto=true priority=critical autoyast=file:///autoinst.xml"),
])
def test_arguments_for_known_names(names, installer, expected):
    assert answer_args(names, installer, "console=hvc0") == expected


@pytest.mark.parametrize("names, cmdline, expected", [
    (["ks.cfg"], "inst.ks=http://192.168.0.1/ks.cfg", ""),
    (["ks.cfg"], "ks=nfs:server:/ks.cfg", ""),
    (["ks.cfg"], "console=hvc0 inst.ksdevice=eth0", "inst.ks=file:/ks.cfg"),
    (["preseed.cfg"], "priority=high", "auto=true"),
    (["preseed.cfg"], "debconf/priority=medium", "auto=true"),
    (["preseed.cfg"], "auto-install/enable=false", "priority=critical"),
    (["preseed.cfg"], "auto priority=low", ""),
    (["preseed.cfg"], "'priority=low' url=http://x/p.cfg", "auto=true"),
    (["autoinst.xml"], "autoyast2=http://x/a.xml", ""),
    (["autoinst.xml"], "autoyast=usb:///a.xml", ""),
])
def test_arguments_the_user_gave_are_not_added_again(names, cmdline, expected):
    assert answer_args(names, None, cmdline) == expected


def test_old_anaconda_reads_ks():
    assert answer_args(["ks.cfg"], ANACONDA, "", legacy_anaconda=True) == "ks=file:/ks.cfg"
    assert answer_args(["ks.cfg"], ANACONDA, "ks=cdrom:/ks.cfg", legacy_anaconda=True) == ""
    assert answer_args(["preseed.cfg"], None, "", legacy_anaconda=True) == \
        "auto=true priority=critical"
