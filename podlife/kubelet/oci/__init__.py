"""Real containers for the kubelet: OCI bundles run by runc under conmon (not wired in yet).

Modules, bottom up:

* :mod:`~podlife.kubelet.oci.resources`: Kubernetes' CPU shares/quota and memory arithmetic.
* :mod:`~podlife.kubelet.oci.bundle`: the runtime-spec ``config.json`` as pure data.
* :mod:`~podlife.kubelet.oci.images`: the node image catalog (``images.yaml``) and the
  command/args rule.
* :mod:`~podlife.kubelet.oci.rootfs`: the host image class's container root.
* :mod:`~podlife.kubelet.oci.cgroups`: pod and container cgroups, stats, OOM kills.
* :mod:`~podlife.kubelet.oci.runc` and :mod:`~podlife.kubelet.oci.conmon`: the two programs.
* :mod:`~podlife.kubelet.oci.runtime`: sandboxes and containers of pods, re-adoption.
"""
