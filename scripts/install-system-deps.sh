#!/usr/bin/env bash
# Installs the system packages podlife's real-container runtime needs, when they are missing:
#   runc            the OCI runtime that creates and runs containers (Debian's runc 1.1 works with
#                   cgroup v1, hybrid layouts and v2; crun refuses hybrid layouts)
#   conmon          the per-container monitor CRI-O uses: owns the container process, writes the
#                   CRI log file and the exit file, outlives the node agent
#   busybox-static  the `busybox` image of the host image class (podlife/kubelet/oci/images.yaml)
#   nginx-light     the `nginx` image of the host image class (installed without starting the
#                   host's nginx service: only containers run it)
#   docker-registry the registry the tests pull images from, on loopback (no service is started)
#   iproute2        `ip`: network namespaces, veths and routes of pod networking (and test_netns)
#   nftables        `nft`: the service proxy and NetworkPolicy rules inside each node namespace
#   etcd-server     `etcd`: the store of `--store etcd://...`; tests start their own members on free
#                   loopback ports (the package's own service is not started)
#   etcd-client     `etcdctl`: the etcd docs' and tests' way to look at the store
#   chromium        Debian's Chromium at /usr/bin/chromium: the web UI's browser tests drive it headless
#                   (with Playwright); installed with its recommended packages (fonts), as `apt-get install -y chromium`
# Idempotent: installs nothing when every command is present, and says what it did either way.
# Needs root (apt-get); without root it says what is missing and exits 0, so `make test` still runs.
set -euo pipefail

# package:command pairs; a package is installed only when its command is not on PATH.
WANTED=("runc:runc" "conmon:conmon" "busybox-static:busybox" "nginx-light:nginx" "docker-registry:docker-registry"
        "iproute2:ip" "nftables:nft" "etcd-server:etcd" "etcd-client:etcdctl")

missing=()
# chromium is checked by its path (the tests launch /usr/bin/chromium) and installed on its own, below
want_chromium=""
if [ -x /usr/bin/chromium ]; then
    echo "system-deps: chromium present (/usr/bin/chromium)"
else
    want_chromium=1
fi
for pair in "${WANTED[@]}"; do
    package=${pair%%:*}
    command=${pair#*:}
    if command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ]; then
        echo "system-deps: $package present ($(command -v "$command"))"
    else
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ] && [ -z "$want_chromium" ]; then
    echo "system-deps: nothing to install"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: not root, so not installing: ${missing[*]} ${want_chromium:+chromium} (real containers and the" \
         "browser tests need them; run as root or install them)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: no apt-get on this machine; install by hand: ${missing[*]} ${want_chromium:+chromium}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -n "$want_chromium" ]; then
    echo "system-deps: installing chromium"
    if ! apt-get install -y chromium; then
        apt-get update
        apt-get install -y chromium
    fi
    echo "system-deps: installed chromium"
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# No service starts because of this install (nginx's package would start one on port 80):
# policy-rc.d answering 101 tells invoke-rc.d "not allowed"; an existing one is kept.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
trap '[ -n "$own_policy" ] && rm -f "$policy"' EXIT
# An install can fail on a stale package list (first run on a fresh machine): update once, retry.
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "system-deps: installed ${missing[*]}"
