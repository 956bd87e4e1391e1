package dns_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/ocinettest"
)

// Which networks get a responder, on which addresses, with which upstreams:
// ocinet's own networks and nerdctl v2.3.5's configs.
func TestNetworkConfig(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	nerdctl := filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d")
	for _, f := range []string{"default/nerdctl-dual.conflist", "default/nerdctl-internalnet.conflist", "default/nerdctl-fixed.conflist"} {
		b, err := os.ReadFile(filepath.Join(nerdctl, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.ConfDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []ocinet.NetworkConfig{
		{Name: "plain", Subnet: netip.MustParsePrefix("10.213.91.0/24")},
		{Name: "internal", Subnet: netip.MustParsePrefix("10.213.92.0/24"), Internal: true},
		{Name: "off", Subnet: netip.MustParsePrefix("10.213.93.0/24"), DNS: ocinet.DNSOptions{Disabled: true}},
	} {
		if _, err := e.Manager.CreateNetwork(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dns.Dir(e.StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dns.Dir(e.StateDir), "resolv.conf"), []byte("nameserver 127.0.0.53\nnameserver 192.0.2.53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53"), netip.MustParseAddrPort("192.0.2.53:53")}
	tests := []struct {
		network string
		want    *dns.Config // nil: no responder
	}{
		{"plain", &dns.Config{Listen: addrs("10.213.91.1"), Subnets: prefixes("10.213.91.0/24"), Upstreams: up}},
		// Internal networks take nerdctl's shape: no isGateway, so the
		// bridge holds no address a responder could listen on.
		{"internal", nil},
		{"off", nil},
		{"dual", &dns.Config{Listen: addrs("10.213.3.1", "fd00:213:3::1"), Subnets: prefixes("10.213.3.0/24", "fd00:213:3::/64"), Upstreams: up}},
		{"fixed", &dns.Config{Listen: addrs("10.213.1.254"), Subnets: prefixes("10.213.1.0/24"), Upstreams: up}},
		{"internalnet", nil}, // nerdctl's: the bridge holds no gateway address
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			n, err := e.Manager.Network(tt.network)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := dns.NetworkConfig(e.StateDir, n)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.want != nil) {
				t.Fatalf("responder: %v, want %v", ok, tt.want != nil)
			}
			if !ok {
				return
			}
			want := *tt.want
			want.Network, want.StateDir, want.Port, want.Nerdctl = tt.network, e.StateDir, dns.DefaultPort, dns.DefaultNerdctlRoot
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}
