"""podlife: a Kubernetes-compatible cluster written in Python.

A pod's whole life -- created through the API, stored, scheduled, given a network
port, run as a real process (or simulated), probed, terminated and collected -- by
components that each talk to the others only through the Kubernetes API:

- ``podlife.store``       key-value storage with etcd's model (revisions, txn, watch)
- ``podlife.registry``    resource types: validation, defaulting, strategies, tables
- ``podlife.api``         the HTTPS API server (REST, watch, discovery, OpenAPI)
- ``podlife.client``      the async client and informers every component uses
- ``podlife.scheduler``   binds pending pods to nodes (filter, score, bind)
- ``podlife.network``     ports, IPAM, the network controller and the CNI step
- ``podlife.kubelet``     runs pods on this machine as real processes
- ``podlife.controllers`` controllers around pods (nodes, GC, ...)
"""

__version__ = "0.1.0"
