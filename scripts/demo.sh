#!/usr/bin/env bash
# The demo: a private containerd, busybox httpd published on 127.0.0.1:8080
# through ocinet's OCI hook, fetched from the host through the published
# port and through the container's own address, then removed, and a check
# that nothing is left. Run as root: `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

work=$(mktemp -d /tmp/ocinet-demo-XXXXXX)
bridge=ocinet0
bridge_existed=false
ip link show "$bridge" >/dev/null 2>&1 && bridge_existed=true
# host-local's directory for the default network ("bridge"): its lock and
# last reserved address stay after the last lease, as with the plugin.
leases=/var/lib/cni/networks/bridge
leases_existed=false
[ -d "$leases" ] && leases_existed=true
addr=
cleanup() {
	set +e
	[ -n "$addr" ] && "${ocictl[@]}" rm -f web >/dev/null 2>&1
	bash scripts/containerd.sh stop "$work/containerd"
	# The default network's bridge and its firewall state stay as long as
	# the network does; the demo removes them when it made them.
	$bridge_existed || [ ! -x "$work/tidybridge" ] || "$work/tidybridge" "$bridge" >/dev/null
	$leases_existed || { rm -f "$leases"/lock "$leases"/last_reserved_ip.*; rmdir "$leases" 2>/dev/null; }
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" | sed "s#$work#\$WORK#g"; "$@"; }

say "building ocictl and a busybox root file system in $work"
CGO_ENABLED=0 go build -o "$work/ocictl" ./examples/ocictl
CGO_ENABLED=0 go build -o "$work/tidybridge" ./internal/tidybridge
bash scripts/rootfs.sh "$work/rootfs"

say "starting a private containerd"
addr=$(bash scripts/containerd.sh start "$work/containerd")
echo "containerd listening on $addr"
ocictl=("$work/ocictl" --address="$addr" --data-root="$work/state" --cni-netconfpath="$work/net.d" --cni-path=/opt/ocinet/cni/bin)
echo "ocictl below stands for: ${ocictl[*]}" | sed "s#$work#\$WORK#g"
# ocictl shows a command with its global flags left out, then runs it.
ocictl() { printf '$ ocictl %s\n' "$*" | sed "s#$work#\$WORK#g"; "${ocictl[@]}" "$@"; }

# What a container can leave behind, counted before and after.
leftovers() {
	local n=0
	n=$((n + $(ls /var/run/netns 2>/dev/null | grep -c '^ocinet-' || true)))
	n=$((n + $(iptables-save 2>/dev/null | grep -c 'id: "default-web"' || true)))
	n=$((n + $(ls "$work/state/attachments" 2>/dev/null | grep -c json || true)))
	n=$((n + $(ls "$work/state/ports" 2>/dev/null | grep -c json || true)))
	n=$((n + $(ls "$work/state/hosts/default/records" 2>/dev/null | grep -c json || true)))
	n=$((n + $(pgrep -fc "^ocinet-dns -state $work/state " || true)))
	echo "$n"
}
before_veth=$(ip -o link show type veth | wc -l)
before=$(leftovers)

say "run busybox httpd with -p 127.0.0.1:8080:80"
start=$(date +%s%N)
ocictl run -d --name web -p 127.0.0.1:8080:80 --rootfs "$work/rootfs" -- /bin/httpd -f -p 80 -h /www
for _ in $(seq 1 50); do
	curl -fsS -m 2 -o /dev/null http://127.0.0.1:8080/ 2>/dev/null && break
	sleep 0.1
done
echo "run to first answered request: $(( ($(date +%s%N) - start) / 1000000 )) ms"

say "ps and port"
ocictl ps
ocictl port web
ip=$("${ocictl[@]}" ps | awk '$1=="web"{print $3}')

say "fetch the page from the host through the published port"
show curl -fsS -m 5 http://127.0.0.1:8080/
say "fetch the page through the container's own address"
show curl -fsS -m 5 "http://$ip/"
say "the container's /etc/hosts and /etc/resolv.conf (written by the hook)"
show cat "$work/state/hosts/default/containers/web/hosts"
show cat "$work/state/hosts/default/containers/web/resolv.conf"

say "remove the container"
ocictl rm -f web
ocictl ps

say "nothing is left"
# The network's DNS responder stops on its own once the network has had no
# container for 2 s (ocictl --dns-linger), so that a next container would
# find it running.
for _ in $(seq 1 100); do
	pgrep -f "^ocinet-dns -state $work/state " >/dev/null || break
	sleep 0.1
done
after=$(leftovers)
after_veth=$(ip -o link show type veth | wc -l)
echo "pinned namespaces, iptables rules of the container, journal, port and hosts records, DNS responders: $before before, $after after"
echo "veth links: $before_veth before, $after_veth after"
if [ "$after" != "$before" ] || [ "$after_veth" != "$before_veth" ]; then
	echo "demo: something was left behind" >&2
	exit 1
fi
if ! $bridge_existed; then
	say "remove the default network's bridge and its firewall state (the demo made them)"
	"$work/tidybridge" "$bridge"
fi
if ! $leases_existed; then
	# What host-local keeps of a network once its last lease is gone.
	rm -f "$leases"/lock "$leases"/last_reserved_ip.*
	rmdir "$leases"
	echo "host-local's directory of the default network: removed"
fi
echo "demo: OK"
