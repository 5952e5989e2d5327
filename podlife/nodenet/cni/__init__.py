"""``podlife-cni``: the CNI 1.0 plugin the node agent runs per pod sandbox.

- :mod:`.spec`      the protocol: ``CNI_*`` environment, network configuration, results, error codes
- :mod:`.api`       the two API calls (GET the pod, PATCH its Port's status) with the node's kubeconfig
- :mod:`.plumbing`  the veth pair, addresses, routes and sysctls in the pod, node and fabric namespaces
- :mod:`.main`      the entry point (``podlife-cni = podlife.nodenet.cni.main:main``)

Nothing here is imported by the package itself: the executable imports only what its
command needs, because the runtime starts it once per pod.
"""
