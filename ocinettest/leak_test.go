package ocinettest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a command and fails the test if it fails.
func run(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The leak oracle reports each kind of leak it claims to: one of each is
// made on purpose, found, then cleaned, after which none is reported. The
// links and firewall rules are made in a namespace of the test's own, so
// that other tests' leak checks on this host never see them.
func TestLeakOracleFindsEachKind(t *testing.T) {
	ocinettest.RequireRoot(t)
	testenv.RequireTools(t, "ip", "iptables", "iptables-save")
	h, err := netns.Open(ocinettest.NetNS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tmp := t.TempDir()
	c := ocinettest.LeakConfig{
		NetNSDir:      filepath.Join(tmp, "netns"),
		CNIDataDir:    filepath.Join(tmp, "networks"),
		CNICacheDir:   filepath.Join(tmp, "results"),
		TuningDataDir: filepath.Join(tmp, "tuning"),
		StateDirs:     []string{filepath.Join(tmp, "state")},
		// Counted here so that the test also checks those kinds.
		ContainerFiles: true,
	}
	// Do runs the function on a thread inside the namespace; the commands
	// it starts are forked from that thread, so they run there too.
	err = h.Do(func() error {
		checkOracle(t, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkOracle(t *testing.T, c ocinettest.LeakConfig) {
	before, err := ocinettest.TakeSnapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	tag := randomHex(4)
	id := "ocinettest-" + tag
	state := c.StateDirs[0]
	var want []string
	var clean []func()

	// A namespace file (the oracle counts names in the directory; a plain
	// file stands in for a bind mount).
	writeFile(t, filepath.Join(c.NetNSDir, "leak-"+tag))
	clean = append(clean, func() { _ = os.Remove(filepath.Join(c.NetNSDir, "leak-"+tag)) })
	want = append(want, "netns: leak-"+tag)
	// A veth pair and a bridge.
	veth, peer, br := "oktv"+tag, "oktp"+tag, "oktb"+tag
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
	clean = append(clean, func() { run(t, "ip", "link", "del", veth) })
	run(t, "ip", "link", "add", br, "type", "bridge")
	clean = append(clean, func() { run(t, "ip", "link", "del", br) })
	want = append(want, "veth: "+veth, "veth: "+peer, "bridge: "+br)
	// For each family: a rule naming a container, in a chain of the test's
	// own, and a per-container chain as the plugins name them.
	for _, fam := range [][2]string{{"iptables", "iptables-save"}, {"ip6tables", "ip6tables-save"}} {
		if _, err := exec.LookPath(fam[1]); err != nil || exec.Command(fam[1]).Run() != nil {
			continue
		}
		chain, cni := "OCINETTEST-"+strings.ToUpper(tag), "CNI-"+tag+randomHex(8)
		run(t, fam[0], "-w", "-t", "filter", "-N", chain)
		run(t, fam[0], "-w", "-t", "filter", "-A", chain, "-m", "comment", "--comment", `id: "`+id+`"`, "-j", "RETURN")
		run(t, fam[0], "-w", "-t", "nat", "-N", cni)
		clean = append(clean, func() {
			run(t, fam[0], "-w", "-t", "filter", "-F", chain)
			run(t, fam[0], "-w", "-t", "filter", "-X", chain)
			run(t, fam[0], "-w", "-t", "nat", "-X", cni)
		})
		want = append(want,
			fam[1]+`: filter -A `+chain+` -m comment --comment "id: \"`+id+`\"" -j RETURN`,
			fam[1]+`: nat :`+cni+` -`)
		// Isolation rules as the firewall plugin writes them: one naming
		// a device that does not exist (a leak), one naming the bridge
		// above, which does (not a leak).
		gone := "oktg" + tag
		run(t, fam[0], "-w", "-t", "filter", "-N", "CNI-ISOLATION-STAGE-1")
		run(t, fam[0], "-w", "-t", "filter", "-A", "CNI-ISOLATION-STAGE-1", "-i", gone, "!", "-o", gone, "-j", "RETURN")
		run(t, fam[0], "-w", "-t", "filter", "-A", "CNI-ISOLATION-STAGE-1", "-i", br, "!", "-o", br, "-j", "RETURN")
		clean = append(clean, func() {
			run(t, fam[0], "-w", "-t", "filter", "-F", "CNI-ISOLATION-STAGE-1")
			run(t, fam[0], "-w", "-t", "filter", "-X", "CNI-ISOLATION-STAGE-1")
		})
		want = append(want, "isolation: "+fam[1]+" -A CNI-ISOLATION-STAGE-1 -i "+gone+" ! -o "+gone+" -j RETURN")
	}
	// An IPAM lease per family, a cached result, and ocinet's records.
	for _, f := range []struct{ path, item string }{
		{filepath.Join(c.CNIDataDir, "net-"+tag, "10.99.0.7"), "ipam: net-" + tag + "/10.99.0.7"},
		{filepath.Join(c.CNIDataDir, "net-"+tag, "fd00::7"), "ipam: net-" + tag + "/fd00::7"},
		{filepath.Join(c.CNICacheDir, "net-"+tag+"-"+id+"-eth0"), "cni-cache: net-" + tag + "-" + id + "-eth0"},
		{filepath.Join(c.TuningDataDir, id+"_eth0.json"), "tuning-backup: " + id + "_eth0.json"},
		{filepath.Join(state, "attachments", id+".json"), "journal: " + filepath.Join(state, "attachments", id+".json")},
		{filepath.Join(state, "ports", id+".json"), "ports: " + filepath.Join(state, "ports", id+".json")},
		{filepath.Join(state, "hosts", "default", "records", id+".json"), "hosts: " + filepath.Join(state, "hosts", "default", "records", id+".json")},
		{filepath.Join(state, "dns", "net-"+tag+".pid"), "dns: " + filepath.Join(state, "dns", "net-"+tag+".pid")},
	} {
		writeFile(t, f.path)
		clean = append(clean, func() { _ = os.Remove(f.path) })
		want = append(want, f.item)
	}
	// With ContainerFiles: a container's directory of hosts files and its
	// directory of logs, counted as directories.
	for _, f := range []struct{ dir, file, kind string }{
		{filepath.Join(state, "hosts", "default", "containers", id), "resolv.conf", "hosts-files"},
		{filepath.Join(state, "containers", "default", id), "hook.log", "container-dirs"},
	} {
		writeFile(t, filepath.Join(f.dir, f.file))
		clean = append(clean, func() { _ = os.RemoveAll(f.dir) })
		want = append(want, f.kind+": "+f.dir)
	}
	// In the in-process datapath's table: a network's chain with its rule,
	// the jump to it in the static chain, and a set with an element; and
	// what is not a leak, the static chain's own rule.
	want = append(want, ocinetTableItems(t, tag)...)
	clean = append(clean, func() { removeOcinetTable(t) })
	// A DNS responder process of the state root (a shell under the
	// responder's name and arguments stands in for one), and one of
	// another state root, which is not counted.
	for _, root := range []string{state, state + "-other"} {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{dns.HelperName, "-c", "sleep 60 & wait", "sh", "-state", root, "-network", "net-" + tag},
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		clean = append(clean, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	}
	want = append(want, "dns-responder: "+state+" net-"+tag)
	// Not leaks: a lease directory's own files.
	writeFile(t, filepath.Join(c.CNIDataDir, "net-"+tag, "lock"))
	writeFile(t, filepath.Join(c.CNIDataDir, "net-"+tag, "last_reserved_ip.0"))

	after, err := ocinettest.TakeSnapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	leaks := ocinettest.Diff(before, after)
	for _, w := range want {
		if !slices.Contains(leaks, w) {
			t.Errorf("not reported: %s", w)
		}
	}
	for _, l := range leaks {
		if !slices.Contains(want, l) {
			t.Errorf("reported, but not made by the test: %s", l)
		}
	}
	noFiles := c
	noFiles.ContainerFiles = false
	if s, err := ocinettest.TakeSnapshot(noFiles); err != nil || len(s["hosts-files"])+len(s["container-dirs"]) > 0 {
		t.Errorf("container files counted without ContainerFiles (%v): %v %v", err, s["hosts-files"], s["container-dirs"])
	}
	ignored := c
	ignored.IgnoreBridges = []string{br}
	if s, err := ocinettest.TakeSnapshot(ignored); err != nil || s["bridge"][br] {
		t.Errorf("ignored bridge %s still counted (%v)", br, err)
	}

	for i := len(clean) - 1; i >= 0; i-- {
		clean[i]()
	}
	final, err := ocinettest.TakeSnapshot(c)
	if err != nil {
		t.Fatal(err)
	}
	if left := ocinettest.Diff(before, final); len(left) > 0 {
		t.Errorf("still reported after cleaning:\n  %s", strings.Join(left, "\n  "))
	}
}

func TestNetNS(t *testing.T) {
	var path string
	t.Run("inner", func(t *testing.T) {
		path = ocinettest.NetNS(t)
		if err := netns.Check(path); err != nil {
			t.Fatalf("NetNS gave %s: %v", path, err)
		}
	})
	if path == "" {
		t.Skip("the inner test skipped")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the test: %v", path, err)
	}
}

func TestFailpointPlugin(t *testing.T) {
	dir := ocinettest.FailpointPlugin(t)
	log := filepath.Join(t.TempDir(), "log")
	entry, err := (ocinettest.Failpoint{FailAt: "ADD", Mode: "fail", After: 1, Log: log}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	conf := []byte(`{"cniVersion":"1.0.0","name":"fp",` + strings.TrimPrefix(string(entry), "{"))
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}
	path := filepath.Join(dir, "failpoint")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	add := func(id string) error {
		args := &invoke.Args{Command: "ADD", ContainerID: id, NetNS: "/nonexistent", IfName: "eth0", Path: dir}
		_, err := invoke.ExecPluginWithResult(ctx, path, conf, args, exec)
		return err
	}
	if err := add("first"); err != nil {
		t.Fatalf("first ADD (let pass): %v", err)
	}
	err = add("second")
	var ce *cnitypes.Error
	if !errors.As(err, &ce) || ce.Code != ocinettest.FaultCode {
		t.Fatalf("second ADD: err = %v, want a CNI error with code %d", err, ocinettest.FaultCode)
	}
	calls, err := ocinettest.ReadFailpointLog(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0].Acted || !calls[1].Acted || calls[1].ContainerID != "second" {
		t.Errorf("log = %+v, want first passed, second acted", calls)
	}
}

// ocinetTableItems makes, in table inet ocinet of the current thread's
// namespace, what a network of the in-process datapath would own, and
// returns the items the oracle must report.
func ocinetTableItems(t *testing.T, tag string) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := c.AddTable(&nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily})
	base := c.AddChain(&nftables.Chain{Name: inproc.PostroutingChain, Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	masq := c.AddChain(&nftables.Chain{Name: inproc.MasqChain("oktb" + tag), Table: table})
	comment := userdata.AppendString(nil, userdata.TypeComment, inproc.NetworkComment("oktb"+tag))
	c.AddRule(&nftables.Rule{Table: table, Chain: base, UserData: userdata.AppendString(nil, userdata.TypeComment, "static"),
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}})
	c.AddRule(&nftables.Rule{Table: table, Chain: base, UserData: comment, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: masq.Name}}})
	c.AddRule(&nftables.Rule{Table: table, Chain: masq, UserData: comment, Exprs: []expr.Any{&expr.Masq{}}})
	set := &nftables.Set{Table: table, Name: "okts" + tag, KeyType: nftables.TypeIPAddr}
	if err := c.AddSet(set, []nftables.SetElement{{Key: []byte{10, 99, 0, 7}}}); err != nil {
		t.Fatal(err)
	}
	// In a set with timeouts, an element a DEL expired is on its way out
	// and not counted; one without a timeout is.
	timed := &nftables.Set{Table: table, Name: "oktt" + tag, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := c.AddSet(timed, []nftables.SetElement{{Key: []byte{10, 99, 0, 8}}, {Key: []byte{10, 99, 0, 9}, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	// A static set is shared and not counted; its elements are.
	key := make([]byte, 16)
	copy(key, "okti"+tag)
	static := &nftables.Set{Table: table, Name: inproc.IsolatedSet, KeyType: nftables.TypeIFName}
	if err := c.AddSet(static, []nftables.SetElement{{Key: key, Comment: "okc" + tag}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables: %v", err)
	}
	items := []string{"nftables-ocinet: chain " + masq.Name, "nftables-ocinet: set okts" + tag, "nftables-ocinet: element okts" + tag + " 0a630007",
		"nftables-ocinet: set oktt" + tag, "nftables-ocinet: element oktt" + tag + " 0a630008",
		"nftables-ocinet: element " + inproc.IsolatedSet + " " + hex.EncodeToString(key) + " okc" + tag}
	for _, ch := range []*nftables.Chain{base, masq} {
		rules, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if com := inproc.RuleComment(r); com != "static" {
				items = append(items, fmt.Sprintf("nftables-ocinet: rule %s #%d %s", ch.Name, r.Handle, com))
			}
		}
	}
	return items
}

// removeOcinetTable removes what ocinetTableItems made.
func removeOcinetTable(t *testing.T) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables: %v", err)
	}
}
