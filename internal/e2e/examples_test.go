package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet/internal/testenv"
)

// runExample builds and runs an example program and returns its output.
func runExample(t *testing.T, pkg string, args ...string) string {
	t.Helper()
	bin := testenv.Build(t, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pkg, err, out)
	}
	return string(out)
}

// TestExampleRuncBundle: a hand-made bundle run by plain runc gets the
// bridge network, NAT and a published port through ocinet's hooks.
func TestExampleRuncBundle(t *testing.T) {
	testenv.RequireTools(t, "runc")
	e := newEnv(t, "")
	out := runExample(t, "./examples/runc-bundle", "--rootfs", e.rootfs, "--state", e.state,
		"--cni-netconfpath", e.netconf, "--cni-path", e.pluginDir, "--publish", "127.0.0.1:18120:80")
	for _, want := range []string{"GET http://127.0.0.1:18120/: " + page, "runc delete bundle-web"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestExampleCRISandbox: a namespace made and attached before the
// container, which joins it and answers on the sandbox's address.
func TestExampleCRISandbox(t *testing.T) {
	e := newEnv(t, "")
	out := runExample(t, "./examples/cri-sandbox", "--address", e.address, "--rootfs", e.rootfs, "--state", e.state,
		"--cni-netconfpath", e.netconf, "--cni-path", e.pluginDir)
	for _, want := range []string{"created namespace /var/run/netns/cni-", ": " + page, "detached sandbox", "removed namespace"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestExamplePidPathPlugin: a plugin that accepts only /proc/<pid>/ns/net
// refuses a named namespace and works through netns.Hold.
func TestExamplePidPathPlugin(t *testing.T) {
	e := newEnv(t, "")
	pluginDir := t.TempDir()
	if err := os.Symlink(testenv.Build(t, "./examples/pid-path-plugin/plugin"), filepath.Join(pluginDir, "pid-only")); err != nil {
		t.Fatal(err)
	}
	out := runExample(t, "./examples/pid-path-plugin", "--plugin-dir", pluginDir, "--cni-path", e.pluginDir)
	for _, want := range []string{"invalid nw name space", "attached through /proc/", "detached"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
