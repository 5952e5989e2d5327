"""Cluster DNS: ``<svc>.<ns>.svc.<zone>`` and pod names, answered inside every node namespace.

:mod:`.records` is the zone and its answers (pure); :mod:`.server` keeps the zone from the
API and serves it on the ``--cluster-dns`` address (UDP and TCP) in the node namespaces.
"""

from .records import Zone, answer, service_records
from .server import ClusterDNS

__all__ = ["ClusterDNS", "Zone", "answer", "service_records"]
