package inproc_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/inproc"
)

// TestTuningRefuses: tuning's checks, made before anything is touched
// (so without root): sysctls outside net., a path that climbs out of it, a
// key given twice, an interface name with a slash, a missing prevResult.
func TestTuningRefuses(t *testing.T) {
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	const prev = `"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}]}`
	for _, c := range []struct{ name, conf, ifname, names string }{
		{"outside net", `{"cniVersion":"1.0.0","name":"n","type":"tuning","sysctl":{"kernel.hostname":"x"},` + prev + `}`, "eth0", "kernel.hostname"},
		// Dots become slashes, then IFNAME is the interface's name: ".."
		// would climb out of net.
		{"climbs out", `{"cniVersion":"1.0.0","name":"n","type":"tuning","sysctl":{"net.IFNAME.kernel.hostname":"x"},` + prev + `}`, "..", "net.IFNAME.kernel.hostname"},
		{"key twice", `{"cniVersion":"1.0.0","name":"n","type":"tuning","sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"},` + prev + `}`, "eth0", "given twice"},
		{"slash in ifname", `{"cniVersion":"1.0.0","name":"n","type":"tuning",` + prev + `}`, "a/b", "a/b"},
		{"no prevResult", `{"cniVersion":"1.0.0","name":"n","type":"tuning"}`, "eth0", "prevResult"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/none", "CNI_IFNAME=" + c.ifname, "CNI_PATH=/nonexistent"}
			_, err := x.ExecPlugin(context.Background(), "/nonexistent/tuning", []byte(c.conf), env)
			if !errors.Is(err, inproc.ErrInvalid) || !strings.Contains(err.Error(), c.names) {
				t.Fatalf("error %v, want one wrapping ErrInvalid naming %s", err, c.names)
			}
		})
	}
}

// TestTuningNothingToDoNeedsTheNamespace: a tuning config that changes
// nothing still fails, as the plugin does, when the namespace is not
// there.
func TestTuningNothingToDoNeedsTheNamespace(t *testing.T) {
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"1.0.0","name":"n","type":"tuning","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}]}}`
	missing := t.TempDir() + "/no-such-namespace"
	env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=" + missing, "CNI_IFNAME=eth0", "CNI_PATH=/nonexistent"}
	_, err = x.ExecPlugin(context.Background(), "/nonexistent/tuning", []byte(conf), env)
	if !errors.Is(err, inproc.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error %v, want one wrapping ErrNotFound naming %s", err, missing)
	}
}
