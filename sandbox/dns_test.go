package sandbox_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/sandbox"
)

// Aliases reach the hosts record; this test binary runs no helpers, so no
// responder starts, and on a network in hosts mode "hosts" the attach goes
// on without one (peers are in /etc/hosts), while on one in hosts mode
// "dns" it is refused and rolled back.
func TestAttachDNSOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	if _, err := sandbox.Attach(ctx, e.Sandbox, "web1", e.NetNS("web1"), sandbox.Request{Name: "web1", Aliases: []string{"web", "www"}}); err != nil {
		t.Fatal(err)
	}
	store, err := e.Sandbox.HostsStore()
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Get("web1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Aliases, []string{"web", "www"}) || r.Networks[0].PeersByDNS {
		t.Errorf("record: aliases %q, PeersByDNS %v; want [web www], false", r.Aliases, r.Networks[0].PeersByDNS)
	}

	if _, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "dnsonly", DNS: ocinet.DNSOptions{HostsMode: ocinet.HostsModeDNS}}); err != nil {
		t.Fatal(err)
	}
	_, err = sandbox.Attach(ctx, e.Sandbox, "d1", e.NetNS("d1"), sandbox.Request{Name: "d1", Networks: []string{"dnsonly"}})
	if err == nil {
		t.Fatal("attach on a DNS-only network without a responder succeeded")
	}
	t.Logf("refused: %v", err)
	if _, err := store.Get("d1"); !errors.Is(err, hosts.ErrNotFound) {
		t.Errorf("the refused attach left a hosts record: %v", err)
	}
	if a, err := e.Manager.List(); err != nil || slices.ContainsFunc(a, func(x *ocinet.Attachment) bool { return x.ID == e.Sandbox.AttachmentID("d1") }) {
		t.Errorf("the refused attach left its attachment: %v", err)
	}
	if err := sandbox.Detach(ctx, e.Sandbox, "web1"); err != nil {
		t.Fatal(err)
	}
	if left := e.Leftovers(); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}
