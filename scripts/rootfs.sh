#!/usr/bin/env bash
# Makes a container root file system in DIR from Debian's busybox-static (no
# image registry is needed): busybox with its applets, and a web page at
# /www/index.html for `httpd -h /www`.
set -euo pipefail
dir=${1:?usage: rootfs.sh DIR}
bb=/bin/busybox
[ -x "$bb" ] || { echo "rootfs: $bb missing: run scripts/install.sh" >&2; exit 1; }
mkdir -p "$dir"/{bin,etc,proc,sys,dev,tmp,www,run}
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
	[ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
echo "hello from ocinet" >"$dir/www/index.html"
: >"$dir/etc/hosts"
: >"$dir/etc/resolv.conf"
echo "root:x:0:0:root:/:/bin/sh" >"$dir/etc/passwd"
