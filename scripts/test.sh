#!/usr/bin/env bash
# Installs what the tests need, then runs every test (root ones included: run
# as root), then each fuzz target for a bounded time. `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
FUZZTIME=${FUZZTIME:-10s}

# -p 1: the integration packages share the host's firewall and bridges, and
# their leak checks must not see each other's work.
go test -p 1 -count=1 ./...

for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target for $FUZZTIME"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" >/tmp/ocinet-fuzz.log 2>&1 || {
			cat /tmp/ocinet-fuzz.log
			exit 1
		}
	done
done
echo "fuzz targets: ok"
