package ocinet_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/ocinettest"
)

// fixtures is the conf dir nerdctl v2.3.5 wrote (see its README).
const fixtures = "testdata/nerdctl-v2.3.5/net.d"

// These tests run over ocinettest's fake plugins, without root: the conf
// dir, its layout, the templates and the locks are the Manager's own
// logic. The real plugins run on the fixtures in internal/e2e.

// nsManager returns a Manager on e's state that sees namespace ns ("" for
// none).
func nsManager(t *testing.T, e *ocinettest.Env, ns string, opts ...ocinet.Option) *ocinet.Manager {
	t.Helper()
	all := e.Options()
	if ns != "" {
		all = append(all, ocinet.WithNamespace(ns))
	}
	m, err := ocinet.New(e.StateDir, append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// installFirewall puts the installed firewall plugin (v1.9.1) into the
// Env's plugin directory, where the Manager asks it its release: the fake
// runs every plugin, but the release check reads the binary.
func installFirewall(t *testing.T, e *ocinettest.Env) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.PluginDir, "firewall"))
	if err != nil {
		testenv.Skip(t, "needs the CNI plugin firewall in "+testenv.PluginDir+" (run scripts/install.sh)")
	}
	if err := os.WriteFile(filepath.Join(e.Sandbox.PluginDirs[0], "firewall"), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// confFiles lists the conflists under dir, relative to it.
func confFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".conflist") {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// sameJSON fails the test unless got and the fixture file decode to the
// same value.
func sameJSON(t *testing.T, got []byte, fixture string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(fixtures, fixture))
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("ocinet's conflist for %s: %v", fixture, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("conflist differs from nerdctl's %s (-nerdctl +ocinet):\n%s", fixture, d)
	}
}

// TestTemplatesMatchNerdctl replays the commands that made each fixture
// (README of the fixtures) and compares what ocinet writes with what
// nerdctl wrote, field by field, and where: the default network at the top
// level, the others in their namespace's directory.
func TestTemplatesMatchNerdctl(t *testing.T) {
	ctx := context.Background()
	e := ocinettest.NewEnv(t, ocinet.WithNamespace("default"), ocinet.WithDefaultBridge("nerdctl0"))
	installFirewall(t, e)
	m := e.Manager
	def, err := m.Network("bridge")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, def.Bytes, "nerdctl-bridge.conflist")
	steps := []struct {
		fixture string
		cfg     ocinet.NetworkConfig
	}{
		{"default/nerdctl-plain.conflist", ocinet.NetworkConfig{Name: "plain"}},
		{"default/nerdctl-fixed.conflist", ocinet.NetworkConfig{Name: "fixed", Subnet: netip.MustParsePrefix("10.213.1.0/24"), Gateway: netip.MustParseAddr("10.213.1.254")}},
		{"default/nerdctl-ranged.conflist", ocinet.NetworkConfig{Name: "ranged", Subnet: netip.MustParsePrefix("10.213.2.0/24"), IPRange: netip.MustParsePrefix("10.213.2.128/25")}},
		{"default/nerdctl-dual.conflist", ocinet.NetworkConfig{Name: "dual", Subnet: netip.MustParsePrefix("10.213.3.0/24"), IPv6Subnet: netip.MustParsePrefix("fd00:213:3::/64")}},
		{"default/nerdctl-internalnet.conflist", ocinet.NetworkConfig{Name: "internalnet", Internal: true}},
		{"default/nerdctl-labelled.conflist", ocinet.NetworkConfig{Name: "labelled", Labels: map[string]string{"team": "blue", "tier": "web"}}},
		{"default/nerdctl-mvlan.conflist", ocinet.NetworkConfig{Name: "mvlan", Driver: "macvlan", Options: map[string]string{"parent": "eth0"}}},
	}
	for _, s := range steps {
		n, err := m.CreateNetwork(ctx, s.cfg)
		if err != nil {
			t.Fatalf("%s: %v", s.fixture, err)
		}
		sameJSON(t, n.Bytes, s.fixture)
		if rel, _ := filepath.Rel(e.ConfDir, n.File); rel != s.fixture || n.Namespace != "default" {
			t.Errorf("%s written as %s (namespace %q)", s.fixture, rel, n.Namespace)
		}
	}

	// nerdctl chose 10.4.4.0/24 for ivlan as well as for mvlan, and
	// 10.4.1.0/24 for othernsnet in namespace other as well as for plain
	// in default: it counts only bridge networks of its own namespace.
	// ocinet counts every network of every namespace, so it chooses the
	// next free ones here, and gives nerdctl's shapes in conf dirs where
	// those subnets are free.
	iv, err := m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "ivlan", Driver: "ipvlan", Options: map[string]string{"parent": "eth0"}})
	if err != nil || !slices.Equal(iv.Subnets, []netip.Prefix{netip.MustParsePrefix("10.4.5.0/24")}) {
		t.Errorf("ivlan after mvlan: %v, %v; want 10.4.5.0/24", iv, err)
	}
	other := nsManager(t, e, "other")
	on, err := other.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "othernsnet"})
	if err != nil || !slices.Equal(on.Subnets, []netip.Prefix{netip.MustParsePrefix("10.4.6.0/24")}) {
		t.Errorf("othernsnet in namespace other: %v, %v; want 10.4.6.0/24", on, err)
	}

	e2 := ocinettest.NewEnv(t, ocinet.WithDefaultBridge("nerdctl0"))
	installFirewall(t, e2)
	on2, err := nsManager(t, e2, "other").CreateNetwork(ctx, ocinet.NetworkConfig{Name: "othernsnet"})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, on2.Bytes, "other/nerdctl-othernsnet.conflist")
	iv2, err := nsManager(t, e2, "default").CreateNetwork(ctx, ocinet.NetworkConfig{Name: "ivlan", Driver: "ipvlan",
		Options: map[string]string{"parent": "eth0"}, Subnet: netip.MustParsePrefix("10.4.4.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, iv2.Bytes, "default/nerdctl-ivlan.conflist")

	// Together the two conf dirs hold a file for each fixture, where
	// nerdctl put it (the default network made on first use in e only).
	got := append(confFiles(t, e.ConfDir), confFiles(t, e2.ConfDir)...)
	want := append(confFiles(t, fixtures), "default/nerdctl-ivlan.conflist", "other/nerdctl-othernsnet.conflist")
	slices.Sort(got)
	slices.Sort(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
}

// TestFirewallRelease: ingressPolicy only when the firewall plugin's
// release has it (v1.1.0 and later), as nerdctl decides; a plugin that
// cannot tell gets none. Plugins without Go build information are asked
// with --version.
func TestFirewallRelease(t *testing.T) {
	for _, tc := range []struct {
		says string
		want bool
	}{
		{"CNI firewall plugin v1.0.1", false},
		{"CNI firewall plugin v1.1.0", true},
		{"CNI firewall plugin v1.9.1-rc.1", true},
		{"CNI firewall plugin version unknown", false},
	} {
		t.Run(tc.says, func(t *testing.T) {
			e := ocinettest.NewEnv(t)
			script := "#!/bin/sh\n[ \"$1\" = --version ] || exit 1\necho '" + tc.says + "'\necho 'CNI protocol versions supported: 1.0.0'\n"
			if err := os.WriteFile(filepath.Join(e.Sandbox.PluginDirs[0], "firewall"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			n, err := e.Manager.CreateNetwork(context.Background(), ocinet.NetworkConfig{Name: "fw"})
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Plugins []map[string]any `json:"plugins"`
			}
			if err := json.Unmarshal(n.Bytes, &c); err != nil {
				t.Fatal(err)
			}
			fw := c.Plugins[2]
			if fw["type"] != "firewall" {
				t.Fatalf("third plugin %v", fw)
			}
			if got := fw["ingressPolicy"] == "same-bridge"; got != tc.want {
				t.Errorf("ingressPolicy in %v: %v, want %v", fw, got, tc.want)
			}
		})
	}
}

// TestNamespacedNetworks: nerdctl's conf dir read as nerdctl v2 reads it:
// each namespace sees the top level and its own directory; names are
// unique in what a namespace sees; subnets of every namespace are taken;
// the default network nerdctl made is the default network.
func TestNamespacedNetworks(t *testing.T) {
	ctx := context.Background()
	e := ocinettest.NewEnv(t)
	testenv.CopyTree(t, fixtures, e.ConfDir)
	names := func(m *ocinet.Manager) []string {
		t.Helper()
		nets, err := m.Networks()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range nets {
			out = append(out, n.Namespace+"/"+n.Name)
		}
		return out
	}
	def, other, none := nsManager(t, e, "default"), nsManager(t, e, "other"), nsManager(t, e, "")
	if d := cmp.Diff([]string{"/bridge", "default/dual", "default/fixed", "default/internalnet", "default/ivlan",
		"default/labelled", "default/mvlan", "default/plain", "default/ranged"}, names(def)); d != "" {
		t.Errorf("namespace default sees (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"/bridge", "other/othernsnet"}, names(other)); d != "" {
		t.Errorf("namespace other sees (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"/bridge"}, names(none)); d != "" {
		t.Errorf("no namespace sees (-want +got):\n%s", d)
	}
	n, err := def.Network("plain")
	if err != nil || n.Bridge != "br-a116c9ed46d6" || n.File != filepath.Join(e.ConfDir, "default", "nerdctl-plain.conflist") {
		t.Errorf("Network(plain) = %+v, %v", n, err)
	}

	// The default network is nerdctl's: adopted, not written again.
	before := confFiles(t, e.ConfDir)
	for _, m := range []*ocinet.Manager{def, other, none} {
		d, err := m.Network("bridge")
		if err != nil || d.Bridge != "nerdctl0" || !d.Default() || d.File != filepath.Join(e.ConfDir, "nerdctl-bridge.conflist") {
			t.Errorf("default network = %+v, %v; want nerdctl's", d, err)
		}
	}
	if _, err := def.Attach(ctx, ocinet.AttachRequest{ID: "on-default", NetNS: e.NetNS("on-default")}); err != nil {
		t.Fatal(err)
	}
	if err := def.Detach(ctx, "on-default"); err != nil {
		t.Fatal(err)
	}
	if after := confFiles(t, e.ConfDir); !slices.Equal(before, after) {
		t.Errorf("conf dir changed from %v to %v; a second default network?", before, after)
	}

	third := nsManager(t, e, "third")
	for _, tc := range []struct {
		name string
		m    *ocinet.Manager
		cfg  ocinet.NetworkConfig
		want error
		text string
	}{
		{"name seen in the namespace", def, ocinet.NetworkConfig{Name: "plain"}, ocinet.ErrConflict, "nerdctl-plain.conflist"},
		{"name of another namespace, at the top level", none, ocinet.NetworkConfig{Name: "othernsnet"}, ocinet.ErrConflict, "exists"},
		{"subnet of another namespace", third, ocinet.NetworkConfig{Name: "x", Subnet: netip.MustParsePrefix("10.213.2.128/25")}, ocinet.ErrConflict, `network "ranged"`},
		{"subnet of a macvlan network", third, ocinet.NetworkConfig{Name: "x", Subnet: netip.MustParsePrefix("10.4.4.0/24")}, ocinet.ErrConflict, "10.4.4.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.m.CreateNetwork(ctx, tc.cfg); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	if after := confFiles(t, e.ConfDir); !slices.Equal(before, after) {
		t.Errorf("refusals changed the conf dir: %v", after)
	}

	// Another namespace may use the name; the automatic subnet is past
	// every namespace's (10.4.0 to 10.4.4).
	p3, err := third.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if p3.File != filepath.Join(e.ConfDir, "third", "nerdctl-plain.conflist") || !slices.Equal(p3.Subnets, []netip.Prefix{netip.MustParsePrefix("10.4.5.0/24")}) {
		t.Errorf("plain in namespace third: file %s, subnets %v; want third/nerdctl-plain.conflist, 10.4.5.0/24", p3.File, p3.Subnets)
	}

	// Removing a network nerdctl made: its file goes; the default stays.
	if err := other.RemoveNetwork(ctx, "othernsnet"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.ConfDir, "other", "nerdctl-othernsnet.conflist")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("othernsnet's file: %v", err)
	}
	if err := def.RemoveNetwork(ctx, "bridge"); !errors.Is(err, ocinet.ErrInvalid) {
		t.Errorf("RemoveNetwork(bridge): %v, want ErrInvalid", err)
	}
	if err := def.RemoveNetwork(ctx, "othernsnet"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("RemoveNetwork of another namespace's network: %v, want ErrNotFound", err)
	}
	e.CheckClean(t)
}

func TestNamespaceNames(t *testing.T) {
	e := ocinettest.NewEnv(t)
	for _, ns := range []string{"default", "k8s.io", "a_b-c.d", "A1", strings.Repeat("n", 76)} {
		if _, err := ocinet.New(e.StateDir, append(e.Options(), ocinet.WithNamespace(ns))...); err != nil {
			t.Errorf("namespace %q: %v", ns, err)
		}
	}
	for _, ns := range []string{"-a", "a-", "a..b", "a/b", "..", "a b", "é", strings.Repeat("n", 77)} {
		if _, err := ocinet.New(e.StateDir, append(e.Options(), ocinet.WithNamespace(ns))...); !errors.Is(err, ocinet.ErrInvalid) || !strings.Contains(err.Error(), "namespace") {
			t.Errorf("namespace %q: err = %v, want ErrInvalid naming the namespace", ns, err)
		}
	}
}

// TestDrivers: macvlan and ipvlan in nerdctl's shape, and the refusals of
// bad driver options, which change nothing.
func TestDrivers(t *testing.T) {
	ctx := context.Background()
	e := ocinettest.NewEnv(t, ocinet.WithNamespace("default"))
	m := e.Manager
	n, err := m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "mv", Driver: "macvlan", Options: map[string]string{"parent": "veth9", "mode": "private"},
		Subnet: netip.MustParsePrefix("10.213.60.0/24"), Gateway: netip.MustParseAddr("10.213.60.254"), IPRange: netip.MustParsePrefix("10.213.60.64/26")})
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := json.Unmarshal(n.Bytes, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"cniVersion": "1.0.0", "name": "mv", "nerdctlID": n.ID, "plugins": []any{map[string]any{
		"type": "macvlan", "master": "veth9", "mode": "private",
		"ipam": map[string]any{"type": "host-local", "routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
			"ranges": []any{[]any{map[string]any{"subnet": "10.213.60.0/24", "gateway": "10.213.60.254",
				"ipRange": "10.213.60.64/26", "rangeStart": "10.213.60.65", "rangeEnd": "10.213.60.127"}}}},
	}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("macvlan conflist (-want +got):\n%s", d)
	}
	if !slices.Equal(n.Plugins, []string{"macvlan"}) || n.Bridge != "" {
		t.Errorf("macvlan network read as %+v", n)
	}

	before := confFiles(t, e.ConfDir)
	for _, tc := range []struct {
		name string
		cfg  ocinet.NetworkConfig
		want error
		text string
	}{
		{"no parent", ocinet.NetworkConfig{Name: "x", Driver: "macvlan"}, ocinet.ErrInvalid, "parent"},
		{"bad parent", ocinet.NetworkConfig{Name: "x", Driver: "ipvlan", Options: map[string]string{"parent": "a/b"}}, ocinet.ErrInvalid, "parent"},
		{"macvlan mode", ocinet.NetworkConfig{Name: "x", Driver: "macvlan", Options: map[string]string{"parent": "veth9", "mode": "l2"}}, ocinet.ErrInvalid, "bridge, private, vepa, passthru"},
		{"ipvlan mode", ocinet.NetworkConfig{Name: "x", Driver: "ipvlan", Options: map[string]string{"parent": "veth9", "mode": "bridge"}}, ocinet.ErrInvalid, "l2, l3, l3s"},
		{"unknown option", ocinet.NetworkConfig{Name: "x", Driver: "macvlan", Options: map[string]string{"parent": "veth9", "mtu": "1400"}}, ocinet.ErrInvalid, `"mtu"`},
		{"bridge option", ocinet.NetworkConfig{Name: "x", Options: map[string]string{"parent": "veth9"}}, ocinet.ErrInvalid, "bridge driver"},
		{"unknown driver", ocinet.NetworkConfig{Name: "x", Driver: "overlay"}, ocinet.ErrInvalid, `"overlay"`},
		{"internal macvlan", ocinet.NetworkConfig{Name: "x", Driver: "macvlan", Internal: true, Options: map[string]string{"parent": "veth9"}}, ocinet.ErrNotSupported, "internal"},
		{"ipv6 ipvlan", ocinet.NetworkConfig{Name: "x", Driver: "ipvlan", IPv6Subnet: netip.MustParsePrefix("fd00:60::/64"), Options: map[string]string{"parent": "veth9"}}, ocinet.ErrNotSupported, "IPv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.CreateNetwork(ctx, tc.cfg); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	if after := confFiles(t, e.ConfDir); !slices.Equal(before, after) {
		t.Errorf("refusals changed the conf dir: %v", after)
	}
	e.CNI.Uninstall("ipvlan")
	if _, err := m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "iv", Driver: "ipvlan", Options: map[string]string{"parent": "veth9"}}); !errors.Is(err, ocinet.ErrPluginNotFound) {
		t.Errorf("ipvlan without its plugin: %v, want ErrPluginNotFound", err)
	}
}

// TestPruneNetworks: networks without containers go, the default network
// and networks in use stay.
func TestPruneNetworks(t *testing.T) {
	ctx := context.Background()
	e := ocinettest.NewEnv(t, ocinet.WithNamespace("default"))
	m := e.Manager
	for _, name := range []string{"used", "idle1", "idle2"} {
		if _, err := m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Network("bridge"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "c1", NetNS: e.NetNS("c1"), Networks: []string{"used"}}); err != nil {
		t.Fatal(err)
	}
	removed, err := m.PruneNetworks(ctx)
	if err != nil || !slices.Equal(removed, []string{"idle1", "idle2"}) {
		t.Errorf("PruneNetworks = %v, %v; want [idle1 idle2]", removed, err)
	}
	nets, _ := m.Networks()
	var left []string
	for _, n := range nets {
		left = append(left, n.Name)
	}
	if !slices.Equal(left, []string{"bridge", "used"}) {
		t.Errorf("left %v, want [bridge used]", left)
	}
	if err := m.Detach(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if removed, err := m.PruneNetworks(ctx); err != nil || !slices.Equal(removed, []string{"used"}) {
		t.Errorf("second prune = %v, %v; want [used]", removed, err)
	}
	e.CheckClean(t)
}

// TestCreateWaitsForNerdctlLock: while another process holds nerdctl's
// lock on the conf dir, CreateNetwork and RemoveNetwork wait, and go on
// once it is released.
func TestCreateWaitsForNerdctlLock(t *testing.T) {
	testenv.RequireTools(t, "flock")
	ctx := context.Background()
	e := ocinettest.NewEnv(t, ocinet.WithNamespace("default"))
	m := e.Manager
	if _, err := m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "old"}); err != nil {
		t.Fatal(err)
	}
	hold := func() (release func()) {
		t.Helper()
		cmd := exec.Command("flock", "--exclusive", filepath.Join(e.ConfDir, ".nerdctl.lock"), "sh", "-c", "echo held; read x; true")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "held\n" {
			t.Fatalf("flock: %q, %v", line, err)
		}
		return func() {
			stdin.Close()
			_, _ = io.Copy(io.Discard, stdout)
			if err := cmd.Wait(); err != nil {
				t.Errorf("flock: %v", err)
			}
		}
	}
	for _, op := range []struct {
		name string
		run  func() error
		done func() bool
	}{
		{"create", func() error {
			_, err := m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "new"})
			return err
		}, func() bool {
			_, err := os.Stat(filepath.Join(e.ConfDir, "default", "nerdctl-new.conflist"))
			return err == nil
		}},
		{"remove", func() error { return m.RemoveNetwork(ctx, "old") },
			func() bool {
				_, err := os.Stat(filepath.Join(e.ConfDir, "default", "nerdctl-old.conflist"))
				return err != nil
			}},
	} {
		release := hold()
		errc := make(chan error, 1)
		go func() { errc <- op.run() }()
		select {
		case err := <-errc:
			release()
			t.Fatalf("%s finished while nerdctl's lock was held: %v", op.name, err)
		case <-time.After(500 * time.Millisecond):
		}
		if op.done() {
			t.Errorf("%s changed the conf dir while nerdctl's lock was held", op.name)
		}
		release()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("%s: %v", op.name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s still waiting a minute after the lock was released", op.name)
		}
		if !op.done() {
			t.Errorf("%s did not happen", op.name)
		}
	}
}
