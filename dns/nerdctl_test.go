package dns_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet/dns"
)

// nerdctlStore is a nerdctl data store of one containerd address, as
// nerdctl lays it out: <root>/<address hash>/etchosts/<namespace>/<ID>.
type nerdctlStore struct {
	t    *testing.T
	root string
}

func newNerdctlStore(t *testing.T) *nerdctlStore {
	return &nerdctlStore{t: t, root: t.TempDir()}
}

// put writes the meta.json of a container as nerdctl does (a temporary
// file renamed into place): its ID, name, host name and, per network, the
// CNI result's addresses.
func (n *nerdctlStore) put(ns, id, name, hostname string, nets map[string][]string) {
	n.t.Helper()
	type ip struct {
		Address string `json:"address"`
	}
	results := map[string]any{}
	for net, addrs := range nets {
		var ips []ip
		for _, a := range addrs {
			ips = append(ips, ip{a})
		}
		results[net] = map[string]any{"cniVersion": "1.0.0", "ips": ips}
	}
	b, err := json.Marshal(map[string]any{"ID": id, "Networks": results, "Hostname": hostname, "ExtraHosts": map[string]string{}, "Name": name, "Domainname": ""})
	if err != nil {
		n.t.Fatal(err)
	}
	n.write(ns, id, b)
}

func (n *nerdctlStore) write(ns, id string, b []byte) {
	n.t.Helper()
	dir := filepath.Join(n.root, "0123abcd", "etchosts", ns, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".meta.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "meta.json")); err != nil {
		n.t.Fatal(err)
	}
}

func (n *nerdctlStore) remove(ns, id string) {
	n.t.Helper()
	if err := os.RemoveAll(filepath.Join(n.root, "0123abcd", "etchosts", ns, id)); err != nil {
		n.t.Fatal(err)
	}
}

// TestNerdctlContainers: the responder answers for the containers nerdctl
// attached to its network (by name, host name, short ID, name.network, and
// PTR), beside ocinet's, but not for nerdctl's containers on other
// networks or with addresses outside the network's subnets, and not for
// names a container of nerdctl's may not have; a damaged meta.json is
// skipped; containers nerdctl adds and removes later are followed; they do
// not keep the responder from its linger.
func TestNerdctlContainers(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	join(t, newStore(t, state, "default"), rec("web", "10.99.0.20"))
	nc := newNerdctlStore(t)
	id := strings.Repeat("ab12", 16)
	nc.put("default", id, "nweb", "nweb-host", map[string][]string{"testnet": {"10.99.0.40/24", "fd99::40/64"}})
	nc.put("other", "outside", "nout", "", map[string][]string{"testnet": {"10.50.0.5/24"}})
	nc.put("default", "elsewhere", "nfar", "", map[string][]string{"farnet": {"10.99.0.41/24"}})
	nc.put("default", "badname", "bad name", "ngood", map[string][]string{"testnet": {"10.99.0.42/24"}})
	nc.write("default", "damaged", []byte(`{"ID":`))
	idle := make(chan struct{}, 1)
	serve(t, tp, dns.Config{StateDir: state, Nerdctl: nc.root, Upstreams: []netip.AddrPort{upstream(t, 0)}},
		dns.WithIdle(20*time.Millisecond, func() bool {
			select {
			case idle <- struct{}{}:
			default:
			}
			return false
		}))
	for _, tt := range []struct {
		name  string
		q     *mdns.Msg
		rcode int
		want  []string
	}{
		{"ocinet's container", question("web.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.20"}},
		{"nerdctl's by name", question("nweb.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.40"}},
		{"nerdctl's by host name, AAAA", question("nweb-host.", mdns.TypeAAAA), mdns.RcodeSuccess, []string{"fd99::40"}},
		{"nerdctl's by short ID", question(id[:12]+".", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.40"}},
		{"nerdctl's by name and network", question("nweb.testnet.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.40"}},
		{"nerdctl's PTR", question("40.0.99.10.in-addr.arpa.", mdns.TypePTR), mdns.RcodeSuccess, []string{"nweb.", "nweb-host."}},
		{"address outside the subnets", question("nout.", mdns.TypeA), mdns.RcodeNameError, nil},
		{"another network", question("nfar.", mdns.TypeA), mdns.RcodeNameError, nil},
		{"invalid name dropped, host name kept", question("ngood.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.42"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := queryFrom(t, tp, client4, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswer(t, resp, tt.rcode, tt.want)
		})
	}
	answers := func(name, want string) func() bool {
		return func() bool {
			resp, err := queryFrom(t, tp, client4, question(name, mdns.TypeA))
			if err != nil {
				return false
			}
			if want == "" {
				return resp.Rcode == mdns.RcodeNameError
			}
			got := answerAddrs(resp)
			return len(got) == 1 && got[0] == want
		}
	}
	nc.put("other", "later", "nlater", "", map[string][]string{"testnet": {"10.99.0.43/24"}})
	eventually(t, "a container nerdctl adds later", answers("nlater.", "10.99.0.43"))
	nc.remove("default", id)
	eventually(t, "a container nerdctl removes", answers("nweb.", ""))

	// With ocinet's container gone, nerdctl's do not keep the network
	// busy: the linger runs out.
	if err := newStore(t, state, "default").Leave("web"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-idle:
	case <-time.After(3 * time.Second):
		t.Fatal("the linger did not run out with only nerdctl's containers left")
	}
	eventually(t, "nerdctl's container is still answered", answers("nlater.", "10.99.0.43"))
}

// TestNerdctlRootLater: a nerdctl root that appears after the responder
// started (nerdctl's first container on the host) is followed from then
// on.
func TestNerdctlRootLater(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	nc := &nerdctlStore{t: t, root: filepath.Join(t.TempDir(), "nerdctl")}
	serve(t, tp, dns.Config{StateDir: state, Nerdctl: nc.root, Upstreams: []netip.AddrPort{upstream(t, 0)}})
	if resp, err := queryFrom(t, tp, client4, question("nlate.", mdns.TypeA)); err != nil || resp.Rcode != mdns.RcodeNameError {
		t.Fatalf("before nerdctl's root exists: %v %v", resp, err)
	}
	nc.put("default", "late", "nlate", "", map[string][]string{"testnet": {"10.99.0.44/24"}})
	eventually(t, "a container in a nerdctl root made later", func() bool {
		resp, err := queryFrom(t, tp, client4, question("nlate.", mdns.TypeA))
		return err == nil && len(answerAddrs(resp)) == 1 && answerAddrs(resp)[0] == "10.99.0.44"
	})
}
