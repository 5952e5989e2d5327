"""Names every layer agrees on: the Kubernetes release served, and podlife's own annotations.

One definition each, so the network controller that writes the port annotation and the
node that reads it, or the simulator and the tests that set a chaos annotation, cannot
drift apart.
"""

from __future__ import annotations

#: the Kubernetes release whose API podlife serves (schemas, /version, kubelet version)
KUBERNETES_VERSION = "1.37"
KUBERNETES_MINOR = KUBERNETES_VERSION.split(".")[1]

#: the Neutron-style port of a pod, written by the network controller, read by the CNI step
PORT_ANNOTATION = "network.podlife.io/port"
#: the Neutron-style subnet of that port (written with it, in the same patch)
SUBNET_ANNOTATION = "network.podlife.io/subnet"
#: on a pod or a simulated node: fault injection for simulated nodes (``crash``, ``oom``, ...)
CHAOS_ANNOTATION = "podlife.io/chaos"
#: the simulator's acknowledgement that it carried out a chaos request
CHAOS_ACK_ANNOTATION = "podlife.io/chaos-ack"
#: how long a simulated container runs before it completes (read by the default stages)
SIM_DURATION_ANNOTATION = "podlife.io/sim-duration"

#: The user the API server is when it calls a kubelet (kubeadm's ``apiserver-kubelet-client``
#: certificate): the one client a kubelet's endpoint lets in by certificate.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
