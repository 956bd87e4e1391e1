package hosts

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func dnsNet(name string, addrs ...string) Network {
	n := net1(name, addrs...)
	n.PeersByDNS = true
	return n
}

// On a network whose peers come from DNS, a join and a leave write the
// joining container's file alone, and that file lists no peer.
func TestPeersByDNSWriteOneFile(t *testing.T) {
	s := openStore(t)
	for i := range 20 {
		id := "p" + string(rune('a'+i))
		mustJoin(t, s, Record{ID: id, Name: id, Networks: []Network{dnsNet("d", "10.0.0."+string(rune('2'+i%8)))}})
	}
	var w writeCounter
	s.wrote = w.hook
	mustJoin(t, s, Record{ID: "new", Name: "new", Hostname: "new.example", Aliases: []string{"web"},
		Networks: []Network{dnsNet("d", "10.0.0.99")}, ExtraHosts: []ExtraHost{{Name: "db", IP: ip("192.0.2.7")}}})
	if diff := cmp.Diff([]string{"new"}, w.ids()); diff != "" {
		t.Errorf("files written by a join on a DNS network (-want +got):\n%s", diff)
	}
	// The --add-host entries come first, as everywhere.
	want := beginLine + "\n" + localEntries + "192.0.2.7\tdb\n10.0.0.99\tnew.example new\n" + endMarker + "\n"
	if got := readFile(t, s.HostsPath("new")); got != want {
		t.Errorf("hosts file on a DNS network:\n%s\nwant:\n%s", got, want)
	}
	w.paths = nil
	if err := s.Leave("new"); err != nil {
		t.Fatal(err)
	}
	if len(w.paths) != 0 {
		t.Errorf("a leave from a DNS network wrote %v", w.paths)
	}
}

// A container on a DNS network and a files network is written into the
// files network's peers only.
func TestPeersByDNSMixed(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "f1", Name: "f1", Networks: []Network{net1("files", "10.1.0.2")}},
		Record{ID: "d1", Name: "d1", Networks: []Network{dnsNet("dns", "10.2.0.2")}},
	)
	var w writeCounter
	s.wrote = w.hook
	mustJoin(t, s, Record{ID: "both", Name: "both", Networks: []Network{dnsNet("dns", "10.2.0.3"), net1("files", "10.1.0.3")}})
	got := w.ids()
	slices.Sort(got)
	if diff := cmp.Diff([]string{"both", "f1"}, got); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	if f := readFile(t, s.HostsPath("both")); !strings.Contains(f, "10.1.0.2\tf1\n") || strings.Contains(f, "d1") {
		t.Errorf("hosts file of a container on both networks:\n%s", f)
	}
}

func TestAliases(t *testing.T) {
	s := openStore(t)
	r := Record{ID: "c1", Name: "web", Aliases: []string{"www", "app.example"}, Networks: []Network{dnsNet("d", "10.0.0.2")}}
	mustJoin(t, s, r)
	got, err := s.Get("c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got, equateAddr); diff != "" {
		t.Errorf("record read back (-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{{"bad_name"}, {""}, {"a..b"}, slices.Repeat([]string{"a"}, MaxAliases+1)} {
		r := Record{ID: "c2", Aliases: bad}
		if err := s.Join(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("Join with aliases %q = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := os.Stat(s.recordPath("c2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused join left a record: %v", err)
	}
}

func TestMembers(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "b", Name: "b", Networks: []Network{net1("x", "10.0.0.3")}},
		Record{ID: "a", Name: "a", Networks: []Network{net1("x", "10.0.0.2"), net1("y", "10.1.0.2")}},
		Record{ID: "c", Name: "c", Networks: []Network{net1("y", "10.1.0.3")}},
	)
	// A stale index entry (a crash between the index and the record) is
	// not a member.
	if err := os.WriteFile(filepath.Join(s.dir, networksDir, "x", "ghost"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := s.Members("x")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range m {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"a", "b"}, ids); diff != "" {
		t.Errorf("members of x (-want +got):\n%s", diff)
	}
	if m, err := s.Members("none"); err != nil || len(m) != 0 {
		t.Errorf("Members(none) = %v, %v; want none", m, err)
	}
	if _, err := s.Members("../x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Members(../x) = %v, want ErrInvalid", err)
	}
	if got := RecordID("a.json"); got != "a" {
		t.Errorf("RecordID(a.json) = %q", got)
	}
	for _, name := range []string{".tmp-a.json", "a", "../a.json"} {
		if got := RecordID(name); got != "" {
			t.Errorf("RecordID(%q) = %q, want empty", name, got)
		}
	}
}

func TestUpstreams(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stub := write("stub", "nameserver 127.0.0.53\nnameserver ::1\n")
	empty := write("empty", "# nothing\n")
	up := write("up", "nameserver 192.0.2.1\nnameserver 2001:db8::1\n")
	tests := []struct {
		name string
		o    ResolvOptions
		want []string
	}{
		{"loopback stub kept", ResolvOptions{HostPath: stub, UpstreamPath: up}, []string{"127.0.0.53"}},
		{"loopback stub kept, IPv6 too", ResolvOptions{HostPath: stub, UpstreamPath: up, IPv6: true}, []string{"127.0.0.53", "::1"}},
		{"empty host file: upstream file", ResolvOptions{HostPath: empty, UpstreamPath: up}, []string{"192.0.2.1"}},
		{"nothing: defaults", ResolvOptions{HostPath: empty, UpstreamPath: filepath.Join(dir, "missing")}, strings.Fields(DefaultNameservers)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Upstreams(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if diff := cmp.Diff(tt.want, s); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvConfFirst(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.1\nnameserver 10.4.1.1\nsearch lan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dns  DNS
		want string
	}{
		{"host servers after the responder, repeat dropped", DNS{}, "nameserver 10.4.1.1\nnameserver 192.0.2.1\nsearch lan\n"},
		{"--dns, --dns-search and --dns-option still apply", DNS{Servers: ips("192.0.2.9"), Search: []string{"corp"}, Options: []string{"ndots:1"}},
			"nameserver 10.4.1.1\nnameserver 192.0.2.9\nsearch corp\noptions ndots:1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := BuildResolvConf(ResolvOptions{HostPath: host, DNS: tt.dns, First: ips("10.4.1.1")})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff("# Generated by ocinet.\n"+tt.want, string(b)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
