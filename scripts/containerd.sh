#!/usr/bin/env bash
# Starts or stops a private containerd whose config, root, state and socket
# all live under DIR. It never touches a system containerd.
#
#   containerd.sh start DIR   start it (again, after it died); prints the socket address
#   containerd.sh stop DIR    stop it, kill its shims, unmount and remove DIR
set -euo pipefail

PREFIX=${OCINET_PREFIX:-/opt/ocinet}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
sock=$dir/containerd.sock

# alive PID: the process runs (a zombie, killed but not yet reaped, does not).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

case $cmd in
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	sock=$dir/containerd.sock
	# Starting again in the same DIR restarts a daemon that died (a crash
	# test kills it): its root and state are kept, its socket is stale.
	if [ -f "$dir/containerd.pid" ] && alive "$(cat "$dir/containerd.pid")"; then
		echo "containerd already runs for $dir (pid $(cat "$dir/containerd.pid"))" >&2
		exit 1
	fi
	rm -f "$sock" "$sock.ttrpc"
	cat >"$dir/config.toml" <<CONF
version = 3
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"
CONF
	PATH=$PREFIX/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		setsid "$PREFIX/bin/containerd" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
	echo $! >"$dir/containerd.pid"
	for _ in $(seq 1 200); do
		[ -S "$sock" ] && { echo "$sock"; exit 0; }
		alive "$(cat "$dir/containerd.pid")" || break
		sleep 0.05
	done
	echo "containerd did not start; its log:" >&2
	tail -20 "$dir/containerd.log" >&2
	exit 1
	;;
stop)
	[ -d "$dir" ] || exit 0
	dir=$(cd "$dir" && pwd)
	sock=$dir/containerd.sock
	if [ -f "$dir/containerd.pid" ]; then
		pid=$(cat "$dir/containerd.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	# Shims outlive their daemon; end the ones that served this one.
	pkill -9 -f -- "-address $sock" 2>/dev/null || true
	# Unmount anything left below the directory, deepest first.
	{ grep -F " $dir/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 start|stop DIR" >&2
	exit 2
	;;
esac
