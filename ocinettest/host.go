package ocinettest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// RequireRoot skips the test, with the reason, when it does not run as
// root; under CI=true it fails it instead, because a CI run that skips
// what it was meant to run proves nothing.
func RequireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
}

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	testenv.RequireTools(t, tools...)
}

// NetNS creates a network namespace for the test (a bind-mounted file in
// /var/run/netns, with only a loopback interface, down) and removes it
// when the test ends. It needs root: without it the test skips, or fails
// under CI=true.
func NetNS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	path, err := netns.Create("", "")
	if err != nil {
		t.Fatalf("ocinettest: create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Errorf("ocinettest: remove namespace: %v", err)
		}
	})
	return path
}

// failpointPkg is the failpoint plugin's package.
const failpointPkg = "github.com/ocinet/ocinet/internal/failpoint"

// FailpointPlugin builds the failpoint CNI plugin into a directory of the
// test's own and returns the directory, to put in the plugin path beside
// the real plugins. The plugin does no network work: it fails, exits,
// sleeps or hangs where its entry in the conflist says (see [Failpoint]),
// and otherwise passes the previous result on.
//
// It runs `go build` in the test's working directory, so the module under
// test must require github.com/ocinet/ocinet (any module that imports this
// package does). The plugin itself needs no root (the real plugins beside
// it do); building it needs the go command: without it the test skips, or
// fails under CI=true.
func FailpointPlugin(t testing.TB) string {
	t.Helper()
	requireTools(t, "go")
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", filepath.Join(dir, "failpoint"), failpointPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocinettest: go build %s: %v\n%s", failpointPkg, err, out)
	}
	return dir
}
