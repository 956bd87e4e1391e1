package errdefs_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/errdefs"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// Every refusal of bad input wraps the one ErrInvalid, whichever package
// refuses it: errors.Is holds with every package's re-exported sentinel.
func TestErrInvalidAcrossPackages(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"ocinet: attachment id", func() error { _, err := e.Manager.Get("../x"); return err }},
		{"ocinet: network name", func() error {
			_, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "a b"})
			return err
		}},
		{"ocinet: multicast MAC", func() error {
			_, err := e.Manager.Attach(ctx, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web"),
				PerNetwork: []ocinet.NetworkOptions{{Network: ocinet.DefaultNetworkName, MAC: mac("01:00:5e:00:00:01")}}})
			return err
		}},
		{"sandbox: multicast MAC", func() error {
			_, err := sandbox.Attach(ctx, e.Sandbox, "web", e.NetNS("web2"), sandbox.Request{
				Static: []sandbox.Static{{Network: ocinet.DefaultNetworkName, MAC: mac("01:00:5e:00:00:01")}}})
			return err
		}},
		{"sandbox: container id", func() error {
			_, err := sandbox.Attach(ctx, e.Sandbox, "a/b", e.NetNS("web3"), sandbox.Request{})
			return err
		}},
		{"sandbox: namespace", func() error {
			cfg := e.Sandbox
			cfg.Namespace = "-bad"
			_, err := sandbox.Attach(ctx, cfg, "web", e.NetNS("web4"), sandbox.Request{})
			return err
		}},
		{"hook: annotation", func() error { _, err := hook.DecodeRequest(`{"version":1,"name":"a\nb"}`); return err }},
		{"hook: container id", func() error { return hook.ValidateContainerID("web.") }},
		{"hosts: name", func() error { return hosts.ValidateName("a_b") }},
		{"hosts: extra host", func() error { _, err := hosts.ParseExtraHost("db:not-an-ip"); return err }},
		{"portmap: spec", func() error { _, err := portmap.Parse("80/tpc"); return err }},
		{"netns: name", func() error { _, err := netns.Create(t.TempDir(), "../x"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			for pkg, sentinel := range map[string]error{
				"errdefs": errdefs.ErrInvalid, "ocinet": ocinet.ErrInvalid, "sandbox": sandbox.ErrInvalid,
				"hook": hook.ErrInvalid, "hosts": hosts.ErrInvalid, "portmap": portmap.ErrInvalid, "netns": netns.ErrInvalid,
			} {
				if !errors.Is(err, sentinel) {
					t.Errorf("err = %v; errors.Is(err, %s.ErrInvalid) is false", err, pkg)
				}
			}
		})
	}
	e.CheckClean(t)
}

// A network name CreateNetwork accepts is accepted in a request, by the
// hook's annotation codec and by sandbox, and the container attaches to it.
func TestNetworkNamesAcceptedEverywhere(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	for i, name := range []string{"net-", "a__b", "x.-y", "N0", "a.b_c-d"} {
		if _, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: name, Subnet: netip.MustParsePrefix("10.99." + string(rune('1'+i)) + ".0/24")}); err != nil {
			t.Fatalf("CreateNetwork(%q): %v", name, err)
		}
		r := sandbox.Request{Networks: []string{name}, Static: []sandbox.Static{{Network: name}}}
		enc, err := hook.EncodeRequest(r)
		if err != nil {
			t.Fatalf("EncodeRequest with network %q: %v", name, err)
		}
		if _, err := hook.DecodeRequest(enc); err != nil {
			t.Fatalf("DecodeRequest with network %q: %v", name, err)
		}
		id := "c" + string(rune('1'+i))
		if _, err := sandbox.Attach(ctx, e.Sandbox, id, e.NetNS(id), r); err != nil {
			t.Fatalf("attach to %q: %v", name, err)
		}
		if err := sandbox.Detach(ctx, e.Sandbox, id); err != nil {
			t.Fatal(err)
		}
	}
	e.CheckClean(t)
}
