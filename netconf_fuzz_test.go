package ocinet

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containernetworking/cni/libcni"
)

// FuzzValidNamespace: a namespace name is accepted exactly when containerd
// accepts it.
func FuzzValidNamespace(f *testing.F) {
	for _, s := range []string{"default", "k8s.io", "a_b-c.d", "-a", "a-", "a..b", "", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ours, theirs := validNamespace(s), identifiers.Validate(s)
		if (ours == nil) != (theirs == nil) {
			t.Fatalf("namespace %q: ocinet says %v, containerd says %v", s, ours, theirs)
		}
	})
}

// FuzzParseVersion: what parses prints back as itself (without a suffix).
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"v1.9.1", "v1.1.0-rc.1", "v1.0", "1.2.3", "v01.2.3+x", "v-1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseVersion(s)
		if !ok {
			return
		}
		back, ok := parseVersion(fmt.Sprintf("v%d.%d.%d", v[0], v[1], v[2]))
		if !ok || back != v {
			t.Fatalf("%q parsed as %v, printed back as %v (%v)", s, v, back, ok)
		}
	})
}

// FuzzNetworkConfig: any config checkNetworkConfig accepts renders to a
// conflist the CNI library reads back with the same name and driver.
func FuzzNetworkConfig(f *testing.F) {
	f.Add("plain", "", "", "", "", "", "", "", false)
	f.Add("ranged", "bridge", "", "", "10.213.2.0/24", "", "10.213.2.128/25", "", false)
	f.Add("dual", "", "", "", "10.213.3.0/24", "", "", "fd00:213:3::/64", false)
	f.Add("mv", "macvlan", "parent", "eth0", "10.4.4.0/24", "10.4.4.254", "", "", false)
	f.Add("iv", "ipvlan", "mode", "l3", "", "", "", "", true)
	f.Fuzz(func(t *testing.T, name, driver, key, value, subnet, gateway, ipRange, v6 string, internal bool) {
		cfg := NetworkConfig{Name: name, Driver: driver, Internal: internal}
		if key != "" {
			cfg.Options = map[string]string{key: value}
			if driver == "macvlan" || driver == "ipvlan" {
				cfg.Options["parent"] = "eth0"
				if key == "parent" {
					cfg.Options[key] = value
				}
			}
		}
		cfg.Subnet, _ = netip.ParsePrefix(subnet)
		cfg.Gateway, _ = netip.ParseAddr(gateway)
		cfg.IPRange, _ = netip.ParsePrefix(ipRange)
		cfg.IPv6Subnet, _ = netip.ParsePrefix(v6)
		s, err := checkNetworkConfig(cfg)
		if err != nil {
			return
		}
		if !s.v4.subnet.IsValid() {
			s.v4 = ipRange4(netip.MustParsePrefix("10.4.1.0/24"))
		}
		b, err := confList(s)
		if err != nil {
			t.Fatal(err)
		}
		list, err := libcni.ConfListFromBytes(b)
		if err != nil {
			t.Fatalf("config %+v rendered as a conflist the CNI library refuses: %v\n%s", cfg, err, b)
		}
		if list.Name != name || len(list.Plugins) == 0 || list.Plugins[0].Network.Type != s.driver {
			t.Fatalf("config %+v read back as %s with %d plugins", cfg, list.Name, len(list.Plugins))
		}
	})
}

func ipRange4(p netip.Prefix) ipRange { return ipRange{subnet: p, gateway: p.Addr().Next()} }
