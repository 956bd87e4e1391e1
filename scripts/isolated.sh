#!/usr/bin/env bash
# Runs a command (as root) in a network and mount namespace of its own, with
# empty private directories where ocinet, the CNI plugins and the netns
# package keep host-wide state: a developer can run the root tests while
# another suite runs on the same host, and neither's leak check sees the
# other's bridges, firewall rules, namespaces or leases. CI and `make test`
# do not use it. Usage: scripts/isolated.sh go test -count=1 ./inproc/
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "isolated.sh: must run as root" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: scripts/isolated.sh COMMAND [ARG...]" >&2; exit 2; }
exec unshare --net --mount --propagation private -- bash -c '
set -e
for d in /run/netns /var/lib/cni /run/ocinet /var/lib/ocinet /etc/cni/net.d; do
	mkdir -p "$d"
	mount -t tmpfs -o mode=0755 tmpfs "$d"
done
# /sys/class/net shows the namespace that mounted sysfs: mount a fresh one,
# keeping the cgroup mounts that runc needs.
cg=$(mktemp -d)
mount --rbind /sys/fs/cgroup "$cg"
mount -t sysfs sysfs /sys
mount --move "$cg" /sys/fs/cgroup
rmdir "$cg"
ip link set lo up
exec "$@"' isolated "$@"
