"""``podlife-cni``: the CNI 1.0 plugin the node agent runs per pod sandbox.

- :mod:`.spec`      the protocol: ``CNI_*`` environment, network configuration, results, error codes
- :mod:`.api`       the two API calls (GET the pod, PATCH its Port's status) with the node's kubeconfig
- :mod:`.plumbing`  the veth pair, addresses, routes and sysctls in the pod, node and fabric namespaces
- :mod:`.main`      the entry point (``podlife-cni = podlife.nodenet.cni.main:main``): a shim forwarding
                    to the node's daemon when one answers, else the standalone plugin; ADD/DEL/CHECK
- :mod:`.daemon`    the node's CNI daemon (Kuryr's ``kuryr-daemon``): pods from an informer, the same
                    operations in worker threads, served on a unix socket

Only the cluster imports :mod:`.daemon`; the executable imports only what its command
needs, because the runtime starts it once per pod (the shim path: the standard library).
"""
