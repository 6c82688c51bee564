"""The real-Xen harness: Xen 4.17 in QEMU, real libxl, our bootloader, real guests.

See tests/xen/README.md.  ``scenarios`` says what runs, ``prepare`` makes the
images, ``servers`` serves the guest media, ``machine`` boots Xen once for a
whole job, ``judge`` reads the verdicts from what dom0 recorded, ``run``
puts it together.
"""
