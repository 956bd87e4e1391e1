package dns

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet/hosts"
)

// FuzzReverseAddr: the parse of a reverse name is the inverse of miekg's
// ReverseAddr, and never accepts anything else.
func FuzzReverseAddr(f *testing.F) {
	for _, s := range []string{"10.0.99.10.in-addr.arpa.", "1.2.3.in-addr.arpa.", "01.0.0.10.in-addr.arpa", "256.0.0.10.in-addr.arpa.",
		"0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.9.d.f.ip6.arpa.", "x.ip6.arpa.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := reverseAddr(s)
		if !ok {
			return
		}
		back, err := mdns.ReverseAddr(a.String())
		if err != nil {
			t.Fatalf("reverseAddr(%q) = %s, which has no reverse name: %v", s, a, err)
		}
		if lowerASCII(back) != lowerASCII(mdns.Fqdn(s)) {
			t.Fatalf("reverseAddr(%q) = %s, whose reverse name is %q", s, a, back)
		}
	})
}

// FuzzQuery: whatever a datagram holds, the responder answers with a
// message that packs, or drops it, and never panics.
func FuzzQuery(f *testing.F) {
	q := new(mdns.Msg)
	q.SetQuestion("srv.", mdns.TypeA)
	b, _ := q.Pack()
	f.Add(b)
	q.SetQuestion("10.0.99.10.in-addr.arpa.", mdns.TypePTR)
	b, _ = q.Pack()
	f.Add(b)
	f.Add([]byte{0, 1, 2})
	f.Add(append(b[:12:12], 0xc0, 0x0c, 0, 1, 0, 1))
	s := &Server{cfg: Config{Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}, fwd: make(chan struct{}, 1)}
	r := hosts.Record{ID: "srv", Name: "srv", Aliases: []string{"web"},
		Networks: []hosts.Network{{Name: "n", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.10"), netip.MustParseAddr("fd99::10")}}}}
	m, _ := memberOf(&r, "n")
	s.table.Store(buildTable(map[string]member{"a/srv": m}))
	src := netip.MustParseAddr("10.99.0.2")
	f.Fuzz(func(t *testing.T, b []byte) {
		req, resp := s.parse(b, src)
		if resp == nil {
			return // dropped or forwarded
		}
		if !resp.Response {
			t.Fatalf("answer to %x is not a response", b)
		}
		if req != nil && resp.Id != req.Id {
			t.Fatalf("answer id %d, query id %d", resp.Id, req.Id)
		}
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("answer to %x does not pack: %v", b, err)
		}
	})
}

// FuzzNerdctlRecord: whatever nerdctl's meta.json holds (the responder
// reads it, the container's owner may write it), a record comes out only
// with addresses in the network's subnets and names the hosts store
// accepts, and nothing panics.
func FuzzNerdctlRecord(f *testing.F) {
	for _, s := range []string{
		`{"ID":"a73955cbc376","Networks":{"testnet":{"ips":[{"address":"10.99.0.2/24"}]}},"Hostname":"a73955cbc376","Name":"nweb"}`,
		`{"Networks":{"testnet":{"ips":[{"address":"10.50.0.2/24"},{"address":"::ffff:10.99.0.9/120"}]}},"Name":"a b"}`,
		`{"Networks":{"testnet":null}}`, `{"ID":`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	subnets := []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24"), netip.MustParsePrefix("fd99::/64")}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := nerdctlRecord(b, "testnet", subnets)
		if !ok {
			return
		}
		if len(r.Networks) != 1 || r.Networks[0].Name != "testnet" || len(r.Networks[0].IPs) == 0 {
			t.Fatalf("record %+v", r)
		}
		for _, a := range r.Networks[0].IPs {
			if !subnets[0].Contains(a) && !subnets[1].Contains(a) {
				t.Fatalf("address %s outside the subnets", a)
			}
		}
		for _, n := range []string{r.Name, r.Hostname} {
			if n != "" && hosts.ValidateName(n) != nil {
				t.Fatalf("name %q that the store refuses", n)
			}
		}
		_ = entryOf(&r)
	})
}
