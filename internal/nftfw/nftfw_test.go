package nftfw_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/internal/nftfw"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
)

// newNS makes a network namespace for the test, removed at the end, and
// returns its path and an open descriptor.
func newNS(t *testing.T) (path string, fd int) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "iptables", "ip6tables", "nsenter")
	path = ocinettest.NetNS(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, int(f.Fd())
}

// ipt runs an iptables tool inside the namespace: the test's setup and
// oracle, what the firewall plugin itself runs.
func ipt(t *testing.T, ns, tool string, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns, tool}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// isolate writes the rules the firewall plugin writes for a bridge with
// ingressPolicy same-bridge (isolated adds the DROP within the bridge).
func isolate(t *testing.T, ns, tool, bridge string, isolated bool) {
	t.Helper()
	for _, c := range nftfw.Chains {
		if !strings.Contains(ipt(t, ns, tool, "-S"), "-N "+c) {
			ipt(t, ns, tool, "-N", c)
		}
	}
	ipt(t, ns, tool, "-A", "CNI-ISOLATION-STAGE-1", "-i", bridge, "!", "-o", bridge, "-m", "comment", "--comment", "name: same-bridge", "-j", "CNI-ISOLATION-STAGE-2")
	if isolated {
		ipt(t, ns, tool, "-A", "CNI-ISOLATION-STAGE-1", "-i", bridge, "-o", bridge, "-j", "DROP")
	}
	ipt(t, ns, tool, "-A", "CNI-ISOLATION-STAGE-2", "-o", bridge, "-j", "DROP")
}

func chainRules(t *testing.T, ns, tool string) []string {
	t.Helper()
	var out []string
	for _, c := range nftfw.Chains {
		for _, l := range strings.Split(strings.TrimSpace(ipt(t, ns, tool, "-S", c)), "\n") {
			if strings.HasPrefix(l, "-A ") {
				out = append(out, l)
			}
		}
	}
	return out
}

// TestRemoveBridge: the rules of one bridge go, in both families; those of
// another bridge, and of a bridge whose name the first's is a prefix of,
// stay.
func TestRemoveBridge(t *testing.T) {
	ns, fd := newNS(t)
	for _, tool := range []string{"iptables", "ip6tables"} {
		isolate(t, ns, tool, "br-gone", true)
		isolate(t, ns, tool, "br-stays", false)
		isolate(t, ns, tool, "br-gone2", false)
		ipt(t, ns, tool, "-A", "CNI-ISOLATION-STAGE-1", "-j", "RETURN")
	}
	all, err := nftfw.IsolationRules(nftfw.WithNetNS(fd))
	if err != nil {
		t.Fatal(err)
	}
	// 3 rules for br-gone, 2 each for the others, one RETURN: per family.
	if len(all) != 2*8 {
		t.Fatalf("listed %d rules, want 16: %v", len(all), all)
	}
	named := 0
	for _, r := range all {
		if r.Names("br-gone") {
			named++
			if !slices.Contains([]string{"ip", "ip6"}, r.Family) || len(r.Interfaces) == 0 {
				t.Errorf("rule %v", r)
			}
		}
	}
	if named != 6 {
		t.Errorf("%d rules name br-gone, want 6: %v", named, all)
	}

	rep, err := nftfw.RemoveBridge("br-gone", nftfw.WithNetNS(fd))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 6 || len(rep.Legacy) != 0 {
		t.Errorf("report %+v: want 6 rules removed, no legacy family", rep)
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		got := chainRules(t, ns, tool)
		want := []string{
			`-A CNI-ISOLATION-STAGE-1 -i br-stays ! -o br-stays -m comment --comment "name: same-bridge" -j CNI-ISOLATION-STAGE-2`,
			`-A CNI-ISOLATION-STAGE-1 -i br-gone2 ! -o br-gone2 -m comment --comment "name: same-bridge" -j CNI-ISOLATION-STAGE-2`,
			`-A CNI-ISOLATION-STAGE-1 -j RETURN`,
			`-A CNI-ISOLATION-STAGE-2 -o br-stays -j DROP`,
			`-A CNI-ISOLATION-STAGE-2 -o br-gone2 -j DROP`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s after removing br-gone:\n%s\nwant:\n%s", tool, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// Again: nothing left to remove, no error.
	if rep, err := nftfw.RemoveBridge("br-gone", nftfw.WithNetNS(fd)); err != nil || len(rep.Removed) != 0 {
		t.Errorf("second removal: %+v, %v", rep, err)
	}
}

// TestNoTables: a namespace without any filter table has no rules, and
// removing is a no-op.
func TestNoTables(t *testing.T) {
	_, fd := newNS(t)
	rules, err := nftfw.IsolationRules(nftfw.WithNetNS(fd))
	if err != nil || len(rules) != 0 {
		t.Fatalf("rules %v, err %v", rules, err)
	}
	rep, err := nftfw.RemoveBridge("br-x", nftfw.WithNetNS(fd))
	if err != nil || len(rep.Removed) != 0 {
		t.Fatalf("report %+v, err %v", rep, err)
	}
}

func TestBadName(t *testing.T) {
	for _, name := range []string{"", "a/b", "0123456789abcdefg"} {
		if _, err := nftfw.RemoveBridge(name); err == nil {
			t.Errorf("RemoveBridge(%q): no error", name)
		}
	}
}

// TestLegacy: rules that legacy iptables holds are out of nftables' reach:
// they are reported and left alone.
func TestLegacy(t *testing.T) {
	testenv.RequireTools(t, "iptables-legacy")
	ns, _ := newNS(t)
	ipt(t, ns, "iptables-legacy", "-N", "CNI-ISOLATION-STAGE-2")
	ipt(t, ns, "iptables-legacy", "-A", "CNI-ISOLATION-STAGE-2", "-o", "br-legacy", "-j", "DROP")
	h, err := netns.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var rep nftfw.Report
	// Inside the namespace's thread: the legacy tables are read from
	// there.
	if err := h.Do(func() error {
		var err error
		rep, err = nftfw.RemoveBridge("br-legacy")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 0 || !slices.Equal(rep.Legacy, []string{"ip"}) {
		t.Errorf("report %+v: want nothing removed, family ip legacy", rep)
	}
	if got := ipt(t, ns, "iptables-legacy", "-S", "CNI-ISOLATION-STAGE-2"); !strings.Contains(got, "-o br-legacy -j DROP") {
		t.Errorf("legacy rule gone:\n%s", got)
	}
}
