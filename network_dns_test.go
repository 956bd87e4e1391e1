package ocinet_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-cmp/cmp"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/ocinettest"
)

// A network's DNS settings are kept in the conflist under a key of its own,
// only when they differ from the defaults, and read back.
func TestNetworkDNSOptions(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		dns     ocinet.DNSOptions
		wantKey bool
	}{
		{"dflt", ocinet.DNSOptions{}, false},
		{"files", ocinet.DNSOptions{HostsMode: ocinet.HostsModeFiles}, true},
		{"dnsonly", ocinet.DNSOptions{HostsMode: ocinet.HostsModeDNS}, true},
		{"off", ocinet.DNSOptions{Disabled: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: tt.name, DNS: tt.dns})
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(n.Bytes, &top); err != nil {
				t.Fatal(err)
			}
			if _, ok := top["ocinetDNS"]; ok != tt.wantKey {
				t.Errorf("conflist has the ocinetDNS key: %v, want %v:\n%s", ok, tt.wantKey, n.Bytes)
			}
			if _, err := libcni.ConfListFromBytes(n.Bytes); err != nil {
				t.Errorf("libcni refuses the conflist: %v", err)
			}
			got, err := e.Manager.Network(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.dns, got.DNS); diff != "" {
				t.Errorf("DNS options read back (-want +got):\n%s", diff)
			}
		})
	}
	before, _ := os.ReadDir(e.ConfDir)
	for _, bad := range []ocinet.DNSOptions{{HostsMode: "nis"}, {HostsMode: ocinet.HostsModeDNS, Disabled: true}} {
		if _, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "bad", DNS: bad}); !errors.Is(err, ocinet.ErrInvalid) {
			t.Errorf("CreateNetwork with %+v = %v, want ErrInvalid", bad, err)
		}
	}
	if after, _ := os.ReadDir(e.ConfDir); len(after) != len(before) {
		t.Errorf("refused networks wrote files: %d before, %d after", len(before), len(after))
	}
}
