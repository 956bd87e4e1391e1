# ocinet: `make demo` runs the demo, `make test` runs every test. Both
# install what they need first (scripts/install.sh) and must run as root.

.PHONY: all install demo test build vet bench

all: build

install:
	bash scripts/install.sh

build:
	go build ./...

vet:
	go vet ./...

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

# `make bench` measures ocinet against its baselines and prints one table
# (cmd/ocinet-bench); BENCHFLAGS passes flags, e.g. BENCHFLAGS="-n 20".
bench:
	bash scripts/install.sh
	go run ./cmd/ocinet-bench $(BENCHFLAGS)
