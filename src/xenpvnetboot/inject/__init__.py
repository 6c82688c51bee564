"""``--initrd-inject``: answer files added to the guest's initramfs.

An unattended install needs its kickstart, preseed or AutoYaST profile
somewhere the installer can read it; putting it into the installer's
ramdisk needs no web server.  The steps, in the order a boot takes them:

1. :func:`load_answer_files`, as root before any privilege drop and before
   anything is downloaded: refuses what is not a small regular file with a
   one-component name (UsageError naming the path).
2. :func:`answer_args`: the kernel arguments that make the installer use a
   file it knows by name (``inst.ks=``, ``auto=true priority=critical``,
   ``autoyast=``).
3. :func:`newc_archive`, then :func:`append_archive` on the ramdisk in the
   output directory, through a descriptor (see :func:`private_descriptor`
   for a ramdisk linked with the cache), after its checksum and before
   ``--check``.
"""

from .bootargs import DEBIAN_INSTALLER, KNOWN, answer_args
from .files import (MAX_FILE_SIZE, MAX_FILES, MAX_TOTAL_SIZE, OPTION, AnswerFile, describe,
                    load_answer_files, name_problem, read_answer_file)
from .newc import MAX_APPENDED, Appended, append_archive, gap_before, newc_archive, private_descriptor

__all__ = [
    "DEBIAN_INSTALLER", "KNOWN", "MAX_APPENDED", "MAX_FILE_SIZE", "MAX_FILES", "MAX_TOTAL_SIZE",
    "OPTION", "Appended", "AnswerFile", "answer_args", "append_archive", "describe",
    "gap_before", "load_answer_files", "name_problem", "newc_archive", "private_descriptor",
    "read_answer_file",
]
