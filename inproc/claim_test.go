package inproc_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
)

const claimedBridge = `{"type":"bridge","bridge":"br0","isGateway":true,"ipMasq":true,"hairpinMode":true,"mtu":1400,
	"ipam":{"type":"host-local","ranges":[[{"subnet":"10.4.0.0/24","gateway":"10.4.0.1"}]],"routes":[{"dst":"0.0.0.0/0"}]}}`

func TestClaimsPlugin(t *testing.T) {
	with := func(base, key, value string) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(base), &m); err != nil {
			t.Fatal(err)
		}
		m[key] = json.RawMessage(value)
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct {
		name, conf string
		err        error  // nil: claimed
		names      string // what the error names
	}{
		{"bridge", claimedBridge, nil, ""},
		{"bridge with injected fields", with(with(with(claimedBridge, "name", `"n"`), "cniVersion", `"1.0.0"`), "runtimeConfig", `{"ips":["10.4.0.9"],"mac":"02:00:00:00:00:01"}`), nil, ""},
		{"bridge with args", with(claimedBridge, "args", `{"cni":{"ips":["10.4.0.9"]}}`), nil, ""},
		{"bridge with dns", with(claimedBridge, "dns", `{"nameservers":["10.4.0.1"]}`), nil, ""},
		{"tuning", `{"type":"tuning","mac":"02:00:00:00:00:01","sysctl":{"net.ipv4.conf.IFNAME.rp_filter":"1"}}`, nil, ""},
		{"loopback", `{"type":"loopback","cniVersion":"1.0.0","name":"lo"}`, nil, ""},
		{"portmap", `{"type":"portmap","capabilities":{"portMappings":true}}`, nil, ""},
		{"portmap with injected fields", `{"type":"portmap","name":"n","cniVersion":"1.0.0","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}}`, nil, ""},
		{"portmap snat", `{"type":"portmap","capabilities":{"portMappings":true},"snat":true}`, inproc.ErrNotSupported, `"snat"`},
		{"portmap conditionsV4", `{"type":"portmap","capabilities":{"portMappings":true},"conditionsV4":["-s","1.2.3.4"]}`, inproc.ErrNotSupported, `"conditionsV4"`},
		{"portmap backend", `{"type":"portmap","capabilities":{"portMappings":true},"backend":"nftables"}`, inproc.ErrNotSupported, `"backend"`},
		{"portmap other capability", `{"type":"portmap","capabilities":{"portMappings":true,"bandwidth":true}}`, inproc.ErrNotSupported, `capability "bandwidth"`},
		{"firewall", `{"type":"firewall","ingressPolicy":"same-bridge"}`, nil, ""},
		{"firewall without ingressPolicy", `{"type":"firewall"}`, nil, ""},
		{"firewall ingressPolicy none", `{"type":"firewall","ingressPolicy":"none"}`, nil, ""},
		{"firewall other ingressPolicy", `{"type":"firewall","ingressPolicy":"isolated"}`, inproc.ErrNotSupported, `"isolated"`},
		{"firewall backend", `{"type":"firewall","backend":"firewalld"}`, inproc.ErrNotSupported, `"backend"`},
		{"firewall admin chain", `{"type":"firewall","iptablesAdminChainName":"X"}`, inproc.ErrNotSupported, `"iptablesAdminChainName"`},
		{"unknown bridge field", with(claimedBridge, "vlan", `100`), inproc.ErrNotSupported, `"vlan"`},
		{"unknown tuning field", `{"type":"tuning","mtu":1400}`, inproc.ErrNotSupported, `"mtu"`},
		{"unknown runtime field", with(claimedBridge, "runtimeConfig", `{"portMappings":[]}`), inproc.ErrNotSupported, `"portMappings"`},
		{"unknown capability", with(claimedBridge, "capabilities", `{"ips":true,"portMappings":true}`), inproc.ErrNotSupported, `capability "portMappings"`},
		{"capability off", with(claimedBridge, "capabilities", `{"portMappings":false}`), nil, ""},
		{"known capabilities", with(claimedBridge, "capabilities", `{"ips":true,"mac":true}`), nil, ""},
		{"unknown args field", with(claimedBridge, "args", `{"cni":{"ipRanges":[]}}`), inproc.ErrNotSupported, `"ipRanges"`},
		{"other ipam", with(claimedBridge, "ipam", `{"type":"dhcp"}`), inproc.ErrNotSupported, `"dhcp"`},
		{"no ipam", `{"type":"bridge","bridge":"br0"}`, inproc.ErrNotSupported, "ipam"},
		{"unknown ipam field", with(claimedBridge, "ipam", `{"type":"host-local","resolvConf":"/etc/resolv.conf","ranges":[[{"subnet":"10.4.0.0/24"}]]}`), inproc.ErrNotSupported, `"resolvConf"`},
		{"two ranges in a set", with(claimedBridge, "ipam", `{"type":"host-local","ranges":[[{"subnet":"10.4.0.0/25"},{"subnet":"10.4.0.128/25"}]]}`), inproc.ErrNotSupported, "range set 0"},
		{"unknown range field", with(claimedBridge, "ipam", `{"type":"host-local","ranges":[[{"subnet":"10.4.0.0/24","exclude":[]}]]}`), inproc.ErrNotSupported, `"exclude"`},
		{"unknown route field", with(claimedBridge, "ipam", `{"type":"host-local","ranges":[[{"subnet":"10.4.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0","priority":5}]}`), inproc.ErrNotSupported, `"priority"`},
		{"old CNI version", with(claimedBridge, "cniVersion", `"0.2.0"`), inproc.ErrNotSupported, "0.2.0"},
		{"not an object", `[1,2]`, inproc.ErrInvalid, "not a JSON object"},
		{"key twice", `{"type":"bridge","type":"tuning"}`, inproc.ErrInvalid, `"type" given twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := inproc.ClaimsPlugin([]byte(c.conf))
			switch {
			case c.err == nil && err != nil:
				t.Fatalf("not claimed: %v", err)
			case c.err != nil && !errors.Is(err, c.err):
				t.Fatalf("error %v, want one wrapping %v", err, c.err)
			case c.err != nil && !strings.Contains(err.Error(), c.names):
				t.Fatalf("error %q does not name %s", err, c.names)
			}
		})
	}
}

// TestClaimsFixtures: of nerdctl's configs, the bridge plugin, portmap,
// firewall and tuning are claimed, macvlan and ipvlan are not; a whole
// conflist is claimed only without them.
func TestClaimsFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "*", "*.conflist"))
	top, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "*.conflist"))
	files = append(files, top...)
	if len(files) < 10 {
		t.Fatalf("found %d fixtures", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Plugins []json.RawMessage `json:"plugins"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatal(err)
		}
		all := true
		for _, p := range list.Plugins {
			var head struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(p, &head)
			want := slices.Contains([]string{"bridge", "tuning", "loopback", "portmap", "firewall"}, head.Type)
			all = all && want
			if err := inproc.ClaimsPlugin(p); (err == nil) != want {
				t.Errorf("%s: plugin %s: claimed=%v, want %v (%v)", filepath.Base(f), head.Type, err == nil, want, err)
			}
		}
		if err := inproc.Claims(b); (err == nil) != all {
			t.Errorf("%s: conflist claimed=%v, want %v (%v)", filepath.Base(f), err == nil, all, err)
		} else if err != nil && !errors.Is(err, inproc.ErrNotSupported) {
			t.Errorf("%s: %v does not wrap ErrNotSupported", filepath.Base(f), err)
		}
	}
}

// FuzzClaimsPlugin: any input gives nil or an error wrapping ErrInvalid or
// ErrNotSupported, never a panic; what is claimed is a JSON object of a
// claimed type.
func FuzzClaimsPlugin(f *testing.F) {
	f.Add([]byte(claimedBridge))
	f.Add([]byte(`{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}`))
	f.Add([]byte(`{"type":"loopback"}`))
	f.Add([]byte(`{"type":"portmap","capabilities":{"portMappings":true}}`))
	f.Add([]byte(`{"type":"firewall","ingressPolicy":"same-bridge"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := inproc.ClaimsPlugin(b)
		if err != nil {
			if !errors.Is(err, inproc.ErrInvalid) && !errors.Is(err, inproc.ErrNotSupported) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &head) != nil || !slices.Contains([]string{"bridge", "tuning", "loopback", "portmap", "firewall"}, head.Type) {
			t.Fatalf("claimed %q", b)
		}
	})
}

// countingExec records the plugin types the fallback runs.
type countingExec struct {
	invoke.Exec
	mu  sync.Mutex
	ran []string
}

func (c *countingExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	c.mu.Lock()
	c.ran = append(c.ran, filepath.Base(path))
	c.mu.Unlock()
	return c.Exec.ExecPlugin(ctx, path, stdin, environ)
}

// TestFallback: on nerdctl's default network nothing runs as a binary; a
// bridge, portmap or firewall config with a field inproc does not
// implement runs as the binary, and the attachment works either way.
func TestFallback(t *testing.T) {
	testenv.RequireRoot(t)
	fixture, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "nerdctl-bridge.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"nerdctl default", func(s string) string { return s }, nil},
		{"unknown bridge field", func(s string) string {
			return strings.Replace(s, `"isGateway": true,`, `"isGateway": true, "forceAddress": false,`, 1)
		}, []string{"bridge"}},
		{"unknown portmap and firewall fields", func(s string) string {
			s = strings.Replace(s, `"type": "portmap",`, `"type": "portmap", "snat": true,`, 1)
			return strings.Replace(s, `"type": "firewall",`, `"type": "firewall", "backend": "iptables",`, 1)
		}, []string{"firewall", "portmap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			conf := strings.ReplaceAll(strings.ReplaceAll(tc.edit(string(fixture)), "nerdctl0", "inpfb0"), "10.4.0.", "10.216.30.")
			n := e.writeNetwork("nerdctl-bridge.conflist", []byte(conf))
			fb := &countingExec{Exec: defaultExec()}
			x, err := inproc.New(fb, inproc.WithRuntimeDir(e.lockDir))
			if err != nil {
				t.Fatal(err)
			}
			m := e.manager(t.TempDir(), x)
			ctx := context.Background()
			if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "fallback", NetNS: newNS(t), Networks: []string{n.Name}}); err != nil {
				t.Fatal(err)
			}
			if err := m.Detach(ctx, "fallback"); err != nil {
				t.Fatal(err)
			}
			slices.Sort(fb.ran)
			got := slices.Compact(fb.ran)
			if !slices.Equal(got, tc.want) {
				t.Errorf("binaries run: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVersion: VERSION is answered in process with what the binary says.
func TestVersion(t *testing.T) {
	bin := filepath.Join(testenv.PluginDir, "bridge")
	if _, err := os.Stat(bin); err != nil {
		testenv.Skip(t, "needs the bridge plugin in "+testenv.PluginDir+" (run scripts/install.sh)")
	}
	x, err := inproc.New(defaultExec())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want, err := invoke.GetVersionInfo(ctx, bin, defaultExec())
	if err != nil {
		t.Fatal(err)
	}
	got, err := invoke.GetVersionInfo(ctx, "/nonexistent/bridge", x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.SupportedVersions(), want.SupportedVersions()) {
		t.Errorf("supported versions %v, the binary says %v", got.SupportedVersions(), want.SupportedVersions())
	}
}

// TestUnclaimedWithoutBinary: a claimed plugin type whose config needs the
// binary, which is not there, fails naming the field, and FindInPath still
// finds the type (it may run in process).
func TestUnclaimedWithoutBinary(t *testing.T) {
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := x.FindInPath("bridge", []string{dir})
	if err != nil || p != filepath.Join(dir, "bridge") {
		t.Fatalf("FindInPath(bridge) = %q, %v", p, err)
	}
	if _, err := x.FindInPath("macvlan", []string{dir}); err == nil {
		t.Errorf("FindInPath(macvlan) found a binary that is not there")
	}
	conf := `{"cniVersion":"1.0.0","name":"n","type":"bridge","vlan":100,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.4.0.0/24"}]]}}`
	env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/none", "CNI_IFNAME=eth0", "CNI_PATH=" + dir}
	_, err = x.ExecPlugin(context.Background(), p, []byte(conf), env)
	var te *types.Error
	if !errors.As(err, &te) || !errors.Is(err, inproc.ErrNotSupported) || !strings.Contains(te.Msg, `"vlan"`) {
		t.Fatalf("error %v, want a CNI error wrapping ErrNotSupported naming \"vlan\"", err)
	}
}
