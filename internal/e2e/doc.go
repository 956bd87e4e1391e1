// Package e2e holds the end-to-end tests: ocictl, a private containerd,
// runc, the OCI hook and the real CNI plugins, with a leak check around
// every test. They need root and the tools scripts/install.sh installs.
package e2e
