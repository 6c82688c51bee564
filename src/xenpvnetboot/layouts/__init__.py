"""Install-tree layouts: which kernel and ramdisk a Xen PV guest should boot.

:mod:`.table` holds the knowledge (families, marker files, candidate pairs,
architecture names) as data; :mod:`.detect` searches a tree with it;
:mod:`.treeinfo` and :mod:`.markers` read the metadata files;
:mod:`.installargs` tells the installer where its packages are; and
:mod:`.report` prints the decision for ``--dry-run``.  The entry point used
by the rest of the program is :mod:`xenpvnetboot.layout`.
"""
