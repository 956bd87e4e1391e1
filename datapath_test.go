package ocinet_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
)

// managerWith returns a Manager on e's state whose datapath is d.
func (e *env) managerWith(d ocinet.Datapath) *ocinet.Manager {
	e.t.Helper()
	m, err := ocinet.New(e.state, append(managerOptions(e.confDir, e.runtimeDir, e.pluginDirs), ocinet.WithDatapath(d))...)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// TestDatapathChoice: each setting decides who runs a network's plugins,
// the journal records it per network, and the attachment says so; DEL
// follows the record whatever the setting is then, so switching it never
// strands an attachment; native refuses a chain it cannot run, naming
// the plugin, before anything changes.
func TestDatapathChoice(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	// A chain package inproc runs whole: bridge and tuning.
	e.writeConf("50-dp.conflist", `{"cniVersion":"1.0.0","name":"ocit-dp","plugins":[`+
		`{"type":"bridge","bridge":"`+fpBridge+`","isGateway":true,"ipMasq":true,"hairpinMode":true,`+
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.213.40.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},`+
		`{"type":"tuning"}]}`)
	ctx := context.Background()
	for _, tc := range []struct {
		set      ocinet.Datapath
		networks []string
		want     []ocinet.Datapath
	}{
		{ocinet.DatapathAuto, []string{ocinet.DefaultNetworkName, "ocit-dp"}, []ocinet.Datapath{ocinet.DatapathNative, ocinet.DatapathNative}},
		{ocinet.DatapathPlugins, []string{ocinet.DefaultNetworkName, "ocit-dp"}, []ocinet.Datapath{ocinet.DatapathPlugins, ocinet.DatapathPlugins}},
		{ocinet.DatapathNative, []string{"ocit-dp"}, []ocinet.Datapath{ocinet.DatapathNative}},
	} {
		m := e.managerWith(tc.set)
		a, err := m.Attach(ctx, ocinet.AttachRequest{ID: "dp-" + string(tc.set), NetNS: e.ns(), Networks: tc.networks})
		if err != nil {
			t.Fatalf("%s: attach: %v", tc.set, err)
		}
		for i, iface := range a.Interfaces {
			if iface.Datapath != tc.want[i] {
				t.Errorf("%s: network %s ran through %q, want %q", tc.set, iface.Network, iface.Datapath, tc.want[i])
			}
		}
		// The other setting detaches it: DEL goes the recorded way.
		other := ocinet.DatapathPlugins
		if tc.set == ocinet.DatapathPlugins {
			other = ocinet.DatapathNative
		}
		if err := e.managerWith(other).Detach(ctx, a.ID); err != nil {
			t.Fatalf("%s: detach with datapath %s: %v", tc.set, other, err)
		}
	}

	// native and a chain with a field package inproc does not implement
	// (the bridge plugin's forceAddress): refused, naming the plugin and the field,
	// before anything changes (no record, no reservation, no bridge).
	e.writeConf("51-dpx.conflist", `{"cniVersion":"1.0.0","name":"ocit-dpx","plugins":[`+
		`{"type":"bridge","bridge":"ocitest9","forceAddress":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.213.41.0/24"}]]}}]}`)
	m := e.managerWith(ocinet.DatapathNative)
	_, err := m.Attach(ctx, ocinet.AttachRequest{ID: "dp-refused", NetNS: e.ns(), Networks: []string{"ocit-dpx"}})
	if !errors.Is(err, ocinet.ErrNotSupported) || !strings.Contains(err.Error(), "bridge") || !strings.Contains(err.Error(), "forceAddress") {
		t.Errorf("native on a chain with an unknown field: %v, want ErrNotSupported naming the bridge plugin and forceAddress", err)
	}
	if _, gerr := m.Get("dp-refused"); !errors.Is(gerr, ocinet.ErrNotFound) {
		t.Errorf("a refused attach left a record: %v", gerr)
	}
	if owners, _ := m.Ports().Owners(); len(owners) != 0 {
		t.Errorf("a refused attach left port reservations: %v", owners)
	}
	// auto runs the same chain through the binary.
	testenv.RemoveLinkAtEnd(t, "ocitest9")
	a, err := e.managerWith(ocinet.DatapathAuto).Attach(ctx, ocinet.AttachRequest{ID: "dp-auto", NetNS: e.ns(), Networks: []string{"ocit-dpx"}})
	if err != nil {
		t.Fatalf("auto on the chain native refuses: %v", err)
	}
	if a.Interfaces[0].Datapath != ocinet.DatapathPlugins {
		t.Errorf("auto ran %q through %q, want the binaries", "ocit-dpx", a.Interfaces[0].Datapath)
	}
	e.detach("dp-auto")
}
