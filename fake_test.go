package ocinet_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/ocinettest"
)

// These tests check the Manager's own logic (the journal, labels, the
// order of plugin calls, refusals before anything runs) over ocinettest's
// fake plugins: no root. What the real plugins do is checked by the other
// tests of the package.

func TestAttachLabels(t *testing.T) {
	e := ocinettest.NewEnv(t)
	m, ns := e.Manager, e.NetNS("labelled")
	ctx := context.Background()
	labels := map[string]string{"ocinet/container": "web", "ocinet/namespace": "default"}
	if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "labelled", NetNS: ns, Labels: labels}); err != nil {
		t.Fatal(err)
	}
	a, err := m.Get("labelled")
	if err != nil || a.Labels["ocinet/container"] != "web" || a.Labels["ocinet/namespace"] != "default" {
		t.Errorf("Get = %+v, %v", a, err)
	}
	if err := m.Detach(ctx, "labelled"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]string{{"": "x"}, {"k": "a\nb"}, {"k": strings.Repeat("v", 257)}} {
		if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "badlabel", NetNS: ns, Labels: bad}); !errors.Is(err, ocinet.ErrInvalid) {
			t.Errorf("labels %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	e.CheckClean(t)
}

// Attaching an attached ID tears the first attachment down before the
// second ADD, with the first one's recorded namespace.
func TestAttachTwiceTearsDownFirst(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	first, second := e.NetNS("first"), e.NetNS("second")
	for _, ns := range []string{first, second} {
		if _, err := e.Manager.Attach(ctx, ocinet.AttachRequest{ID: "twice", NetNS: ns}); err != nil {
			t.Fatal(err)
		}
	}
	var seq []string
	for _, c := range e.CNI.Calls() {
		if c.Plugin == "bridge" {
			seq = append(seq, c.Command+" "+c.NetNS)
		}
	}
	if want := []string{"ADD " + first, "DEL " + first, "ADD " + second}; !slices.Equal(seq, want) {
		t.Errorf("bridge calls = %v, want %v", seq, want)
	}
	if n := len(e.CNI.Leases()); n != 1 {
		t.Errorf("%d addresses held, want 1", n)
	}
	if err := e.Manager.Detach(ctx, "twice"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

// Bad requests are refused before any plugin runs, and nothing is
// recorded.
func TestRefusedBeforeAnyPluginRuns(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ns := e.NetNS("web")
	if _, err := e.Manager.CreateNetwork(context.Background(), ocinet.NetworkConfig{Name: "front", Subnet: netip.MustParsePrefix("10.4.9.0/24")}); err != nil {
		t.Fatal(err)
	}
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	for _, tc := range []struct {
		name string
		req  ocinet.AttachRequest
		want error
	}{
		{"bad id", ocinet.AttachRequest{ID: "../x", NetNS: ns}, ocinet.ErrInvalid},
		{"no namespace", ocinet.AttachRequest{ID: "web"}, ocinet.ErrInvalid},
		{"namespace gone", ocinet.AttachRequest{ID: "web", NetNS: ns + "-gone"}, ocinet.ErrInvalid},
		{"unknown network", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"nosuch"}}, ocinet.ErrNotFound},
		{"bad network name", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"../etc"}}, ocinet.ErrInvalid},
		{"network twice", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"front", "front"}}, ocinet.ErrInvalid},
		{"settings for another network", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"front"},
			PerNetwork: []ocinet.NetworkOptions{{Network: "bridge"}}}, ocinet.ErrInvalid},
		{"static outside the subnet", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"front"},
			PerNetwork: []ocinet.NetworkOptions{{Network: "front", IPs: ip("10.4.8.5")}}}, ocinet.ErrInvalid},
		{"static is the gateway", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"front"},
			PerNetwork: []ocinet.NetworkOptions{{Network: "front", IPs: ip("10.4.9.1")}}}, ocinet.ErrInvalid},
		{"multicast MAC", ocinet.AttachRequest{ID: "web", NetNS: ns, Networks: []string{"front"},
			PerNetwork: []ocinet.NetworkOptions{{Network: "front", MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}}}, ocinet.ErrInvalid},
		{"bad hostname", ocinet.AttachRequest{ID: "web", NetNS: ns, Hostname: "a b"}, ocinet.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.Manager.Attach(context.Background(), tc.req); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if calls := e.CNI.Calls(); len(calls) != 0 {
		t.Errorf("%d plugin calls for refused requests, the first %+v", len(calls), calls[0])
	}
	e.CheckClean(t)
	if err := e.Manager.RemoveNetwork(context.Background(), "front"); err != nil {
		t.Fatal(err)
	}
}
