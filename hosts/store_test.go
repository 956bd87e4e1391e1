package hosts

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ocinet/ocinet/internal/fsutil"
)

func TestPrepare(t *testing.T) {
	s := openStore(t)
	if err := s.Prepare("c1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.HostsPath("c1"), s.ResolvConfPath("c1")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 0 || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: size %d mode %v, want empty 0644", p, fi.Size(), fi.Mode().Perm())
		}
	}
	if err := os.WriteFile(s.HostsPath("c1"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare("c1"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, s.HostsPath("c1")); got != "keep\n" {
		t.Errorf("second Prepare changed the hosts file to %q", got)
	}
	if err := s.Prepare("../c1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Prepare(../c1) = %v, want ErrInvalid", err)
	}
}

func TestPathsOfInvalidID(t *testing.T) {
	s := openStore(t)
	for _, id := range []string{"", ".", "..", "../x", "a/b", "-a", strings.Repeat("a", 77)} {
		if p := s.HostsPath(id); p != "" {
			t.Errorf("HostsPath(%q) = %q, want empty", id, p)
		}
		if p := s.ResolvConfPath(id); p != "" {
			t.Errorf("ResolvConfPath(%q) = %q, want empty", id, p)
		}
	}
}

func TestJoinInvalid(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 63)+".", 4)[:254]
	good := func(mod func(*Record)) Record {
		r := Record{ID: "c9", Name: "web", Hostname: "web",
			Networks:   []Network{net1("a", "10.0.0.9")},
			ExtraHosts: []ExtraHost{{Name: "x", IP: ip("192.0.2.1")}}}
		mod(&r)
		return r
	}
	tests := []struct {
		name  string
		r     Record
		quote string // the bad value, quoted, that the error must show
	}{
		{"space in name", good(func(r *Record) { r.Name = "my web" }), `"my web"`},
		{"newline in name", good(func(r *Record) { r.Name = "web\n10.6.6.6 evil" }), `"web\n10.6.6.6 evil"`},
		{"hash in hostname", good(func(r *Record) { r.Hostname = "web#1" }), `"web#1"`},
		{"NUL in hostname", good(func(r *Record) { r.Hostname = "web\x00" }), `"web\x00"`},
		{"empty label", good(func(r *Record) { r.Hostname = "web..example" }), `"web..example"`},
		{"label over 63 bytes", good(func(r *Record) { r.Name = strings.Repeat("b", 64) }), strings.Repeat("b", 64)},
		{"leading hyphen", good(func(r *Record) { r.Name = "-web" }), `"-web"`},
		{"254 bytes", good(func(r *Record) { r.Hostname = long }), long},
		{"bad extra host name", good(func(r *Record) { r.ExtraHosts[0].Name = "a b" }), `"a b"`},
		{"extra host without address", good(func(r *Record) { r.ExtraHosts[0] = ExtraHost{Name: "x"} }), `"x"`},
		{"extra host with address and gateway", good(func(r *Record) { r.ExtraHosts[0].Gateway = true }), `"x"`},
		{"host-gateway on a network without a gateway", good(func(r *Record) { r.ExtraHosts[0] = ExtraHost{Name: "gw", Gateway: true} }), `network "a" has no gateway`},
		{"host-gateway without a network", good(func(r *Record) {
			r.Networks = nil
			r.ExtraHosts[0] = ExtraHost{Name: "gw", Gateway: true}
		}), `"gw:host-gateway"`},
		{"bad ID", good(func(r *Record) { r.ID = "../c9" }), `"../c9"`},
		{"empty ID", good(func(r *Record) { r.ID = "" }), `""`},
		{"bad network name", good(func(r *Record) { r.Networks[0].Name = "../a" }), `"../a"`},
		{"network twice", good(func(r *Record) { r.Networks = append(r.Networks, net1("a", "10.0.0.8")) }), `"a"`},
		{"zero address", good(func(r *Record) { r.Networks[0].IPs = append(r.Networks[0].IPs, netip.Addr{}) }), `"invalid IP"`},
		{"unspecified address", good(func(r *Record) { r.Networks[0].IPs = ips("0.0.0.0") }), `"0.0.0.0"`},
		{"address with zone", good(func(r *Record) { r.Networks[0].IPs = ips("fe80::1%eth0") }), `"fe80::1%eth0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			mustJoin(t, s, Record{ID: "c1", Name: "peer", Networks: []Network{net1("a", "10.0.0.2")}})
			before := snapshot(t, s.dir)
			err := s.Join(tt.r)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Join = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.quote) {
				t.Errorf("error %q does not quote %s", err, tt.quote)
			}
			if diff := cmp.Diff(before, snapshot(t, s.dir)); diff != "" {
				t.Errorf("a refused Join changed the store (-before +after):\n%s", diff)
			}
		})
	}
}

func TestUserLineSurvives(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s, Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}})
	f, err := os.OpenFile(s.HostsPath("c1"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	const user = "192.0.2.50 mine # added by hand\n# a comment\n"
	if _, err := f.WriteString(user); err != nil {
		t.Fatal(err)
	}
	f.Close()

	mustJoin(t, s, Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
	got := readFile(t, s.HostsPath("c1"))
	if want := mustRender(t, s, "c1") + user; got != want {
		t.Errorf("after a peer joined:\n%s\nwant:\n%s", got, want)
	}
	if !hasLine(got, "10.0.0.3\tdb") {
		t.Errorf("the new peer is missing:\n%s", got)
	}
	if err := s.Leave("c2"); err != nil {
		t.Fatal(err)
	}
	got = readFile(t, s.HostsPath("c1"))
	if want := mustRender(t, s, "c1") + user; got != want {
		t.Errorf("after the peer left:\n%s\nwant:\n%s", got, want)
	}
}

// TestSeed: Seed makes a host's hosts file the user part of a container's,
// before its record (the file then holds only those lines) and after it
// (the managed block stays first); rewrites keep it; a managed block
// inside the content is dropped; seeding again replaces the old lines;
// oversized content changes nothing.
func TestSeed(t *testing.T) {
	s := openStore(t)
	const host = "127.0.0.1\tlocalhost\n127.0.1.1\tbuildhost.example buildhost\n# a comment\n"
	if err := s.Prepare("c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed("c1", []byte(host)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, s.HostsPath("c1")); got != host {
		t.Errorf("seeded before the record:\n%s\nwant:\n%s", got, host)
	}
	r := Record{ID: "c1", Hostname: "buildhost", ExtraHosts: []ExtraHost{{Name: "db.example", IP: netip.MustParseAddr("10.1.2.3")}}}
	if err := s.Join(r); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, s.HostsPath("c1"))
	if want := mustRender(t, s, "c1") + host; got != want {
		t.Errorf("after Join:\n%s\nwant:\n%s", got, want)
	}
	if !hasLine(got, "10.1.2.3\tdb.example") {
		t.Errorf("the extra host is missing:\n%s", got)
	}
	const again = "192.0.2.9\tother\n"
	block := mustRender(t, s, "c1")
	if err := s.Seed("c1", []byte(block+again)); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, s.HostsPath("c1")), block+again; got != want {
		t.Errorf("seeded again with a managed block inside:\n%s\nwant:\n%s", got, want)
	}
	before := readFile(t, s.HostsPath("c1"))
	if err := s.Seed("c1", make([]byte, 1<<20+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized content: err = %v, want ErrInvalid", err)
	}
	if err := s.Seed("../c1", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad ID: err = %v, want ErrInvalid", err)
	}
	if got := readFile(t, s.HostsPath("c1")); got != before {
		t.Errorf("a refused Seed changed the file:\n%s", got)
	}
}

func TestTornFileRepaired(t *testing.T) {
	const user = "192.0.2.50 mine\n"
	tests := []struct {
		name string
		torn func(good string) string // the damaged content from the good one
		want func(good string) string // what the file must hold after repair
	}{
		{
			name: "end marker missing",
			torn: func(good string) string { return user + beginLine + "\n127.0.0.1\tlocalhost\n10.0.0." },
			want: func(good string) string { return good + user },
		},
		{
			name: "random bytes",
			torn: func(string) string { return "\x8f\x00\xff garbage\x01\x02" },
			want: func(good string) string { return good + "\x8f\x00\xff garbage\x01\x02\n" },
		},
		{
			name: "crash between write and truncate",
			torn: func(good string) string {
				return good + user + string(padding(300))
			},
			want: func(good string) string { return good + user },
		},
		{
			name: "empty",
			torn: func(string) string { return "" },
			want: func(good string) string { return good },
		},
	}
	for _, tt := range tests {
		for _, how := range []string{"Repair", "Join"} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				s := openStore(t)
				r := Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}}
				mustJoin(t, s, r, Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
				good := mustRender(t, s, "c1")
				if err := os.WriteFile(s.HostsPath("c1"), []byte(tt.torn(good)), 0o644); err != nil {
					t.Fatal(err)
				}
				var err error
				if how == "Repair" {
					err = s.Repair()
				} else {
					err = s.Join(r)
				}
				if err != nil {
					t.Fatal(err)
				}
				if got, want := readFile(t, s.HostsPath("c1")), tt.want(good); got != want {
					t.Errorf("after %s:\n%q\nwant:\n%q", how, got, want)
				}
			})
		}
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestInPlace(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s, Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}})
	hosts, resolv := s.HostsPath("c1"), s.ResolvConfPath("c1")
	before, err := os.Stat(hosts)
	if err != nil {
		t.Fatal(err)
	}
	ino := inode(t, hosts)
	content := readFile(t, hosts)

	mustJoin(t, s, Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
	grown := readFile(t, hosts)
	if grown == content {
		t.Fatal("the join of a peer did not change the hosts file")
	}
	if err := s.Leave("c2"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, hosts); got != content {
		t.Errorf("after the peer left:\n%s\nwant:\n%s", got, content)
	}
	after, err := os.Stat(hosts)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || inode(t, hosts) != ino {
		t.Error("the hosts file was replaced, not edited in place")
	}

	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.53\nsearch a.example b.example c.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rino := inode(t, resolv)
	if err := s.WriteResolvConf("c1", ResolvOptions{HostPath: host, UpstreamPath: "/nonexistent"}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteResolvConf("c1", ResolvOptions{HostPath: host, UpstreamPath: "/nonexistent", DNS: DNS{Search: []string{"."}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, resolv), "# Generated by ocinet.\nnameserver 192.0.2.53\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	if inode(t, resolv) != rino {
		t.Error("resolv.conf was replaced, not edited in place")
	}
}

func TestOnlySharingPeersRewritten(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "a1", Name: "a1", Networks: []Network{net1("a", "10.0.0.2")}},
		Record{ID: "a2", Name: "a2", Networks: []Network{net1("a", "10.0.0.3")}},
		Record{ID: "ab", Name: "ab", Networks: []Network{net1("b", "10.1.0.9"), net1("a", "10.0.0.9")}},
		Record{ID: "b1", Name: "b1", Networks: []Network{net1("b", "10.1.0.2")}},
		Record{ID: "b2", Name: "b2", Networks: []Network{net1("b", "10.1.0.3")}},
	)
	before := map[string]string{}
	for _, id := range []string{"b1", "b2"} {
		before[id] = readFile(t, s.HostsPath(id))
	}
	var w writeCounter
	s.wrote = w.hook
	mustJoin(t, s, Record{ID: "a3", Name: "a3", Networks: []Network{net1("a", "10.0.0.4")}})
	got := w.ids()
	slices.Sort(got)
	if diff := cmp.Diff([]string{"a1", "a2", "a3", "ab"}, got); diff != "" {
		t.Errorf("files written by a join on network a (-want +got):\n%s", diff)
	}
	for id, want := range before {
		if got := readFile(t, s.HostsPath(id)); got != want {
			t.Errorf("%s's file changed:\n%s", id, got)
		}
	}

	w.paths = nil
	if err := s.Leave("a3"); err != nil {
		t.Fatal(err)
	}
	got = w.ids()
	slices.Sort(got)
	if diff := cmp.Diff([]string{"a1", "a2", "ab"}, got); diff != "" {
		t.Errorf("files written by a leave from network a (-want +got):\n%s", diff)
	}
}

func TestJoinIdempotent(t *testing.T) {
	s := openStore(t)
	r := Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}}
	mustJoin(t, s, r, Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
	want := snapshot(t, s.dir)
	var w writeCounter
	s.wrote = w.hook
	mustJoin(t, s, r)
	if len(w.paths) != 0 {
		t.Errorf("a repeated Join wrote %v", w.paths)
	}
	if diff := cmp.Diff(want, snapshot(t, s.dir)); diff != "" {
		t.Errorf("a repeated Join changed the store (-before +after):\n%s", diff)
	}
}

// TestJoinMendsLostIndexEntry: records and index entries are written
// without fsync, so a crash of the machine may lose an entry whose record
// survived. The container joining again (its restart) puts it back: its
// peers see it and the network's members include it.
func TestJoinMendsLostIndexEntry(t *testing.T) {
	s := openStore(t)
	r := Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}}
	mustJoin(t, s, r, Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
	entry := filepath.Join(s.dir, networksDir, "a", "c1")
	if err := os.Remove(entry); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, s, r)
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("joining again did not remake the index entry: %v", err)
	}
	members, err := s.Members("a")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	if diff := cmp.Diff([]string{"c1", "c2"}, ids); diff != "" {
		t.Errorf("members of a (-want +got):\n%s", diff)
	}
}

func TestJoinMovesNetworks(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "a1", Name: "a1", Networks: []Network{net1("a", "10.0.0.2")}},
		Record{ID: "b1", Name: "b1", Networks: []Network{net1("b", "10.1.0.2")}},
		Record{ID: "c1", Name: "mover", Networks: []Network{net1("a", "10.0.0.9")}},
	)
	if !hasLine(readFile(t, s.HostsPath("a1")), "10.0.0.9\tmover") {
		t.Fatal("a1 does not see the mover")
	}
	mustJoin(t, s, Record{ID: "c1", Name: "mover", Networks: []Network{net1("b", "10.1.0.9")}})
	if got := readFile(t, s.HostsPath("a1")); strings.Contains(got, "mover") {
		t.Errorf("a1 still sees the mover after it moved to b:\n%s", got)
	}
	if !hasLine(readFile(t, s.HostsPath("b1")), "10.1.0.9\tmover") {
		t.Error("b1 does not see the mover")
	}
	if _, err := os.Stat(filepath.Join(s.dir, networksDir, "a", "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the index still lists c1 on a: %v", err)
	}
}

func TestLeaveAndRemove(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
		Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}},
	)
	if err := s.Leave("c2"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, s.HostsPath("c1")); strings.Contains(got, "db") {
		t.Errorf("c1 still sees c2:\n%s", got)
	}
	if _, err := s.Get("c2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Leave = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(s.HostsPath("c2")); err != nil {
		t.Errorf("Leave removed the hosts file: %v", err)
	}
	if err := s.Leave("c2"); err != nil {
		t.Errorf("second Leave = %v", err)
	}
	if err := s.Leave("never"); err != nil {
		t.Errorf("Leave of an unknown container = %v", err)
	}
	for range 2 {
		if err := s.Remove("c1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove("c2"); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"c1", "c2"} {
		if _, err := os.Stat(filepath.Dir(s.HostsPath(id))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Remove left the directory of %s: %v", id, err)
		}
	}
	left := snapshot(t, s.dir)
	want := map[string]string{
		s.dir: "dir", filepath.Join(s.dir, lockName): "",
		filepath.Join(s.dir, recordsDir): "dir", filepath.Join(s.dir, networksDir): "dir", filepath.Join(s.dir, containersDir): "dir",
	}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("the store is not empty after removing everything (-want +got):\n%s", diff)
	}
}

func TestGetList(t *testing.T) {
	s := openStore(t)
	rs := []Record{
		{ID: "c2", Name: "db", Hostname: "db.example.com",
			Networks:   []Network{{Name: "a", IPs: ips("10.0.0.3", "fd00::3"), Gateway: ip("10.0.0.1")}, net1("b")},
			ExtraHosts: []ExtraHost{{Name: "gw", Gateway: true}, {Name: "x", IP: ip("2001:db8::1")}}},
		{ID: "c1"},
	}
	mustJoin(t, s, rs...)
	got, err := s.Get("c2")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs[0], got, equateAddr, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{rs[1], rs[0]}, all, equateAddr, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if _, err := s.Get("c3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(c3) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get("../c3"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Get(../c3) = %v, want ErrInvalid", err)
	}
}

func TestDamagedRecord(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s, Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}})
	bad := `{"version":1,"id":"c1","name":"web\n6.6.6.6 evil"}`
	if err := os.WriteFile(s.recordPath("c1"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get("c1")
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a damaged record = %v, want another error", err)
	}
	if !strings.Contains(err.Error(), s.recordPath("c1")) {
		t.Errorf("error %q does not name the file", err)
	}
	// A peer's join fails, naming the damaged record.
	err = s.Join(Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
	if err == nil || !strings.Contains(err.Error(), s.recordPath("c1")) {
		t.Errorf("Join of a peer = %v, want an error naming %s", err, s.recordPath("c1"))
	}
	// Joining the damaged container again mends it.
	mustJoin(t, s, Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}})
	if _, err := s.Get("c1"); err != nil {
		t.Errorf("Get after the record was mended: %v", err)
	}
	// Remove deletes a damaged record.
	if err := os.WriteFile(s.recordPath("c1"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("c1"); err != nil {
		t.Fatalf("Remove of a damaged record: %v", err)
	}
	if _, err := s.Get("c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove = %v, want ErrNotFound", err)
	}
	mustJoin(t, s, Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}})
}

func TestStaleIndexAndRepair(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
		Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}},
	)
	// A ghost entry (its record is gone) and junk in the index.
	for _, p := range []string{"a/ghost", "a/.junk", "z/ghost"} {
		p = filepath.Join(s.dir, networksDir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustJoin(t, s, Record{ID: "c3", Name: "cache", Networks: []Network{net1("a", "10.0.0.4")}})
	for _, p := range []string{"a/ghost", "a/.junk"} {
		if _, err := os.Stat(filepath.Join(s.dir, networksDir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale index entry %s was kept: %v", p, err)
		}
	}

	// Lose the index and leave a temporary record behind: Repair rebuilds.
	if err := os.RemoveAll(filepath.Join(s.dir, networksDir, "a")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(s.dir, recordsDir, fsutil.TempPrefix+"123")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Repair(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Repair kept %s", tmp)
	}
	if _, err := os.Stat(filepath.Join(s.dir, networksDir, "z")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Repair kept the stale network z: %v", err)
	}
	mustJoin(t, s, Record{ID: "c4", Name: "queue", Networks: []Network{net1("a", "10.0.0.5")}})
	want := []string{"10.0.0.5\tqueue", "10.0.0.2\tweb", "10.0.0.3\tdb", "10.0.0.4\tcache"}
	if diff := cmp.Diff(want, entries(t, readFile(t, s.HostsPath("c4")))); diff != "" {
		t.Errorf("c4 after Repair rebuilt the index (-want +got):\n%s", diff)
	}
}

func TestRepairWithDamagedRecord(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s,
		Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
		Record{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}},
	)
	if err := os.WriteFile(s.recordPath("c2"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.HostsPath("c1"), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := s.Repair()
	if err == nil || !strings.Contains(err.Error(), s.recordPath("c2")) {
		t.Fatalf("Repair = %v, want an error naming %s", err, s.recordPath("c2"))
	}
	got := readFile(t, s.HostsPath("c1"))
	want := beginLine + "\n" + localEntries + "10.0.0.2\tweb\n" + endMarker + "\ntorn\n"
	if got != want {
		t.Errorf("c1 after Repair:\n%q\nwant:\n%q", got, want)
	}
}

// TestInPlaceThroughOpenFile reads the files through descriptors opened
// before the rewrites, as a container's bind mount holds them: a rewrite
// that replaced the file (a rename, even one that gets the old inode number
// back) would leave the descriptor on the old content.
func TestInPlaceThroughOpenFile(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s, Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}})
	readAll := func(f *os.File) string {
		t.Helper()
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	hf, err := os.Open(s.HostsPath("c1"))
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	rf, err := os.Open(s.ResolvConfPath("c1"))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	for i := 3; i < 6; i++ {
		peer := fmt.Sprintf("peer%d", i)
		mustJoin(t, s, Record{ID: peer, Name: peer, Networks: []Network{net1("a", fmt.Sprintf("10.0.0.%d", i))}})
		if got := readAll(hf); !strings.Contains(got, peer) {
			t.Errorf("after %s joined, the open hosts file reads:\n%s", peer, got)
		}
	}
	host := filepath.Join(t.TempDir(), "resolv.conf")
	for _, server := range []string{"192.0.2.53", "192.0.2.54"} {
		if err := os.WriteFile(host, []byte("nameserver "+server+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteResolvConf("c1", ResolvOptions{HostPath: host, UpstreamPath: "/nonexistent"}); err != nil {
			t.Fatal(err)
		}
		if got := readAll(rf); !strings.Contains(got, "nameserver "+server) {
			t.Errorf("after writing %s, the open resolv.conf reads:\n%s", server, got)
		}
	}
}

// TestIDs: every container with a record or files is listed, once, sorted;
// a removed one is not.
func TestIDs(t *testing.T) {
	s := openStore(t)
	mustJoin(t, s, Record{ID: "c3", Name: "left", Networks: []Network{net1("a", "10.0.0.3")}},
		Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
		Record{ID: "c4", Name: "gone", Networks: []Network{net1("a", "10.0.0.4")}})
	for _, step := range []struct {
		name string
		do   func(string) error
		id   string
	}{{"prepare", s.Prepare, "c2"}, {"prepare", s.Prepare, "c1"}, {"prepare", s.Prepare, "c3"}, {"leave", s.Leave, "c3"}, {"remove", s.Remove, "c4"}} {
		if err := step.do(step.id); err != nil {
			t.Fatalf("%s %s: %v", step.name, step.id, err)
		}
	}
	got, err := s.IDs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"c1", "c2", "c3"}, got); diff != "" {
		t.Errorf("IDs (-want +got):\n%s", diff)
	}
}
