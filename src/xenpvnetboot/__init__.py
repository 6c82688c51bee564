"""Network bootloader for Xen PV and PVH guests.

libxl runs a bootloader before it builds a paravirtualised guest; this one
fetches a kernel and ramdisk from an install tree (http, https, ftp, tftp, nfs,
local directories, ISO and filesystem images) and hands them back to libxl.
"""

__version__ = "0.1.0"
