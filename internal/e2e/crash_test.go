package e2e

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
)

// TestCrashRecovery: containerd, the shims and the containers are killed
// with SIGKILL and containerd is started again. Then
//
//   - crash-rm (whose poststop hook containerd may run as it cleans up the
//     dead task): `rm -f` leaves nothing of it, files included;
//   - crash-gc, whose runc state is lost as at a reboot (so no poststop hook
//     runs and its attachment stays in the journal) and which containerd
//     then no longer knows (another client removed it): `gc` releases it
//     and leaves nothing of it;
//   - crash-stopped, whose runc state is lost too but which containerd
//     still knows, stopped: `gc` releases its network and hosts record and
//     keeps its files, which `rm` then removes;
//   - crash-forgot, whose runc state is lost and which containerd no longer
//     knows: `rm -f` still releases it and leaves nothing of it.
//
// gc prints each container it released, one a line. At the end the leak
// oracle (hosts records and files included) finds nothing.
func TestCrashRecovery(t *testing.T) {
	e := newEnv(t, "")
	d := testenv.CrashableContainerd(t)
	e.address = d.Address
	baseline, err := leakcheck.Take(e.leakConfig())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"crash-forgot", "crash-gc", "crash-rm", "crash-stopped"}
	ips := map[string]string{}
	for _, n := range names {
		e.run(n, e.httpd()...)
		ips[n] = e.attachment(n).Interfaces[0].IPs[0].Addr().String()
	}
	// leftOf lists what the host and the state root hold of container n
	// that they did not hold before the test: what names it or its address.
	leftOf := func(n string) []string {
		t.Helper()
		now, err := leakcheck.Take(e.leakConfig())
		if err != nil {
			t.Fatal(err)
		}
		addr := regexp.MustCompile(regexp.QuoteMeta(ips[n]) + `(\D|$)`)
		var out []string
		for _, l := range leakcheck.Diff(baseline, now) {
			if strings.Contains(l, n) || addr.MatchString(l) {
				out = append(out, l)
			}
		}
		return out
	}
	for _, n := range names {
		if left := leftOf(n); !slices.ContainsFunc(left, func(l string) bool { return strings.HasPrefix(l, "journal: ") }) {
			t.Fatalf("before the crash, the oracle does not see %s's attachment: %q", n, left)
		}
	}

	if kids := d.Kill(t); len(kids) != len(names) {
		t.Fatalf("killed %d container processes (%v), want %d", len(kids), kids, len(names))
	}
	for _, n := range []string{"crash-forgot", "crash-gc", "crash-stopped"} {
		testenv.ForgetRuncState(t, "default", n)
	}
	d.Restart(t)
	if ps := e.mustOcictl("ps"); strings.Contains(ps, "running") {
		t.Fatalf("a container runs after the crash:\n%s", ps)
	}

	e.mustOcictl("rm", "-f", "crash-rm")
	if left := leftOf("crash-rm"); len(left) > 0 {
		t.Errorf("rm -f crash-rm after the crash left:\n  %s", strings.Join(left, "\n  "))
	}

	for _, n := range []string{"crash-forgot", "crash-gc", "crash-stopped"} {
		e.attachment(n) // fails the test unless the journal still has it: rm and gc have work to do
	}
	forget(t, d.Address, "crash-forgot")
	e.mustOcictl("rm", "-f", "crash-forgot")
	if left := leftOf("crash-forgot"); len(left) > 0 {
		t.Errorf("rm -f crash-forgot, which containerd no longer knows, left:\n  %s", strings.Join(left, "\n  "))
	}
	if _, errOut, err := e.ocictl("rm", "-f", "crash-forgot"); err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("a second rm -f crash-forgot: %v, %q; want a not-found error", err, errOut)
	}

	forget(t, d.Address, "crash-gc")
	if out, want := e.mustOcictl("gc"), "crash-gc\ncrash-stopped\n"; out != want {
		t.Errorf("gc printed %q, want %q", out, want)
	}
	if left := leftOf("crash-gc"); len(left) > 0 {
		t.Errorf("gc left of crash-gc, which containerd no longer knows:\n  %s", strings.Join(left, "\n  "))
	}
	var kinds []string
	for _, l := range leftOf("crash-stopped") {
		kinds = append(kinds, l[:strings.Index(l, ":")])
	}
	if want := []string{"container-dirs", "hosts-files"}; !slices.Equal(kinds, want) {
		t.Errorf("after gc, crash-stopped (stopped, still known) holds %q, want only %q", kinds, want)
	}
	if out := e.mustOcictl("gc"); out != "" {
		t.Errorf("a second gc released %q", out)
	}
	e.mustOcictl("rm", "crash-stopped")
	if left := leftOf("crash-stopped"); len(left) > 0 {
		t.Errorf("rm crash-stopped after gc left:\n  %s", strings.Join(left, "\n  "))
	}
}

// forget removes a container from containerd's metadata directly, as
// another client would, without ocictl.
func forget(t *testing.T, address, name string) {
	t.Helper()
	client, err := containerd.New(address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), 30*time.Second)
	defer cancel()
	c, err := client.LoadContainer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatalf("delete %s from containerd: %v", name, err)
	}
}
