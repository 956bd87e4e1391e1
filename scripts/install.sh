#!/usr/bin/env bash
# Installs everything ocinet's demo, tests and benchmarks need, at pinned
# versions. Idempotent: what is already installed at the pinned version is
# skipped. Must run as root on Debian with Go on PATH.
set -euo pipefail

CNI_PLUGINS_VERSION=v1.9.1
CONTAINERD_VERSION=v2.2.1
PREFIX=${OCINET_PREFIX:-/opt/ocinet}
CNI_BIN=$PREFIX/cni/bin
BIN=$PREFIX/bin

log() { printf 'install: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (it installs Debian packages and builds into $PREFIX)"
	exit 1
fi
command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

# Debian packages.
pkgs=(runc iptables iproute2 busybox-static curl)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# has_version BIN MODULE VERSION: true when BIN was built from MODULE@VERSION.
has_version() {
	[ -x "$1" ] && go version -m "$1" 2>/dev/null | awk '$1=="mod"{print $2, $3}' | grep -qx "$2 $3"
}

# CNI plugins.
mkdir -p "$CNI_BIN"
plugins=(main/bridge main/loopback main/macvlan main/ipvlan ipam/host-local meta/portmap meta/firewall meta/tuning)
need=()
for p in "${plugins[@]}"; do
	has_version "$CNI_BIN/${p#*/}" github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" ||
		need+=("github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION")
done
if [ ${#need[@]} -gt 0 ]; then
	log "building CNI plugins $CNI_PLUGINS_VERSION into $CNI_BIN"
	GOBIN=$CNI_BIN CGO_ENABLED=0 go install "${need[@]}"
fi

# containerd and its runc shim.
mkdir -p "$BIN"
need=()
for c in containerd containerd-shim-runc-v2; do
	has_version "$BIN/$c" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" ||
		need+=("github.com/containerd/containerd/v2/cmd/$c@$CONTAINERD_VERSION")
done
if [ ${#need[@]} -gt 0 ]; then
	log "building containerd $CONTAINERD_VERSION into $BIN (takes a few minutes)"
	GOBIN=$BIN go install -tags "no_btrfs no_devmapper no_zfs" "${need[@]}"
fi
log "ok: plugins in $CNI_BIN, containerd in $BIN"
