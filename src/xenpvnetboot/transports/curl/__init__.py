"""http, https and ftp through libcurl (pycurl).

One URL client for every TCP scheme, as the original tool had through
urlgrabber: libcurl brings TLS, proxies from the environment (``http_proxy``,
``https_proxy``, ``ftp_proxy``, ``no_proxy``), FTP passive mode and IPv6, and
its transfer loop runs in C, so a fetch costs about what ``curl`` costs.

All transfers of a tree run through one multi handle: connections are reused
between the existence checks of the layout search and the downloads, and the
kernel and ramdisk are fetched at the same time.
"""

from .ranges import RangeSource
from .tree import (BUFFER_SIZE, CA_BUNDLES, PARALLEL_STATS, CurlTree, open_tree, redact,
                   system_ca_bundle)
from .transfer import MAX_REDIRECTS

__all__ = ["BUFFER_SIZE", "CA_BUNDLES", "MAX_REDIRECTS", "PARALLEL_STATS", "CurlTree",
           "RangeSource", "open_tree", "redact", "system_ca_bundle"]
