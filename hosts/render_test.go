package hosts

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocinet/ocinet/internal/fsutil"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		records []Record
		id      string
		want    []string // the lines after the local entries
	}{
		{
			name: "own entries",
			records: []Record{{ID: "c1", Name: "web", Hostname: "web-host",
				Networks: []Network{net1("bridge", "10.4.0.2", "fd00::2")}}},
			id:   "c1",
			want: []string{"10.4.0.2\tweb-host web", "fd00::2\tweb-host web"},
		},
		{
			name: "hostname equal to name is written once",
			records: []Record{{ID: "c1", Name: "web", Hostname: "web",
				Networks: []Network{net1("bridge", "10.4.0.2")}}},
			id:   "c1",
			want: []string{"10.4.0.2\tweb"},
		},
		{
			name:    "no name and no hostname gives no own entry",
			records: []Record{{ID: "c1", Networks: []Network{net1("bridge", "10.4.0.2")}}},
			id:      "c1",
		},
		{
			name: "dotted hostname",
			records: []Record{{ID: "c1", Hostname: "web.example.com",
				Networks: []Network{net1("bridge", "10.4.0.2")}}},
			id:   "c1",
			want: []string{"10.4.0.2\tweb.example.com"},
		},
		{
			name: "peers on a shared network are visible, sorted by ID",
			records: []Record{
				{ID: "c3", Name: "cache", Networks: []Network{net1("a", "10.0.0.4")}},
				{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
				{ID: "c2", Name: "db", Hostname: "db-host", Networks: []Network{net1("a", "10.0.0.3")}},
			},
			id:   "c1",
			want: []string{"10.0.0.2\tweb", "10.0.0.3\tdb-host db", "10.0.0.4\tcache"},
		},
		{
			name: "a peer on another network is invisible",
			records: []Record{
				{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
				{ID: "c2", Name: "db", Networks: []Network{net1("b", "10.1.0.2")}},
			},
			id:   "c1",
			want: []string{"10.0.0.2\tweb"},
		},
		{
			name: "a peer on two networks shared through one shows that network's address",
			records: []Record{
				{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
				{ID: "c2", Name: "db", Networks: []Network{net1("b", "10.1.0.3"), net1("a", "10.0.0.3")}},
			},
			id:   "c1",
			want: []string{"10.0.0.2\tweb", "10.0.0.3\tdb"},
		},
		{
			name: "a peer sharing two networks shows both addresses, in the order of the container's networks",
			records: []Record{
				{ID: "c1", Name: "web", Networks: []Network{net1("b", "10.1.0.2"), net1("a", "10.0.0.2")}},
				{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3"), net1("b", "10.1.0.3")}},
			},
			id:   "c1",
			want: []string{"10.1.0.2\tweb", "10.0.0.2\tweb", "10.1.0.3\tdb", "10.0.0.3\tdb"},
		},
		{
			name: "a peer without name or hostname is not listed",
			records: []Record{
				{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")}},
				{ID: "c2", Networks: []Network{net1("a", "10.0.0.3")}},
			},
			id:   "c1",
			want: []string{"10.0.0.2\tweb"},
		},
		{
			name: "extra hosts first, in order, the same name with two addresses",
			records: []Record{{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")},
				ExtraHosts: []ExtraHost{
					{Name: "api", IP: ip("192.0.2.1")},
					{Name: "api", IP: ip("2001:db8::1")},
					{Name: "blocked.example.com", IP: ip("0.0.0.0")},
				}}},
			id:   "c1",
			want: []string{"192.0.2.1\tapi", "2001:db8::1\tapi", "0.0.0.0\tblocked.example.com", "10.0.0.2\tweb"},
		},
		{
			name: "host-gateway is the gateway of the first network",
			records: []Record{{ID: "c1", Name: "web",
				Networks: []Network{
					{Name: "a", IPs: ips("10.0.0.2"), Gateway: ip("10.0.0.1")},
					{Name: "b", IPs: ips("10.1.0.2"), Gateway: ip("10.1.0.1")},
				},
				ExtraHosts: []ExtraHost{{Name: "host.docker.internal", Gateway: true}}}},
			id:   "c1",
			want: []string{"10.0.0.1\thost.docker.internal", "10.0.0.2\tweb", "10.1.0.2\tweb"},
		},
		{
			name: "an extra host wins over a peer of the same name",
			records: []Record{
				{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")},
					ExtraHosts: []ExtraHost{{Name: "db", IP: ip("10.0.0.9")}}},
				{ID: "c2", Name: "db", Hostname: "db-host", Networks: []Network{net1("a", "10.0.0.3")}},
				{ID: "c3", Name: "DB", Networks: []Network{net1("a", "10.0.0.4")}},
			},
			id:   "c1",
			want: []string{"10.0.0.9\tdb", "10.0.0.2\tweb", "10.0.0.3\tdb-host"},
		},
		{
			name: "an extra host wins over the container's own name and hostname",
			records: []Record{{ID: "c1", Name: "web", Hostname: "web.example",
				Networks:   []Network{net1("a", "10.0.0.2")},
				ExtraHosts: []ExtraHost{{Name: "Web", IP: ip("192.0.2.7")}, {Name: "web.example", IP: ip("192.0.2.8")}}}},
			id:   "c1",
			want: []string{"192.0.2.7\tWeb", "192.0.2.8\tweb.example"},
		},
		{
			name: "the peers see the container's own name, not its extra hosts",
			records: []Record{
				{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")},
					ExtraHosts: []ExtraHost{{Name: "db", IP: ip("10.0.0.9")}}},
				{ID: "c2", Name: "db", Networks: []Network{net1("a", "10.0.0.3")}},
			},
			id:   "c2",
			want: []string{"10.0.0.3\tdb", "10.0.0.2\tweb"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			mustJoin(t, s, tt.records...)
			got := mustRender(t, s, tt.id)
			if diff := cmp.Diff(tt.want, entries(t, got)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if file := readFile(t, s.HostsPath(tt.id)); file != got {
				t.Errorf("hosts file differs from Render:\nfile:\n%s\nrender:\n%s", file, got)
			}
		})
	}
}

// TestRenderOldHostGateway: a record stored before Join refused host-gateway
// without a gateway is still read and rendered; the entry is left out.
func TestRenderOldHostGateway(t *testing.T) {
	s := openStore(t)
	r := Record{ID: "c1", Name: "web", Networks: []Network{net1("a", "10.0.0.2")},
		ExtraHosts: []ExtraHost{{Name: "gw", Gateway: true}, {Name: "x", IP: ip("192.0.2.9")}}}
	data, err := encodeRecord(&r)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, recordsDir, r.ID+recordSuffix), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Repair(); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.9\tx", "10.0.0.2\tweb"}
	if diff := cmp.Diff(want, entries(t, mustRender(t, s, "c1"))); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestRenderNotFound(t *testing.T) {
	s := openStore(t)
	if _, err := s.Render("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Render of a missing record: got %v, want ErrNotFound", err)
	}
}

func TestUserLines(t *testing.T) {
	block := beginLine + "\n" + localEntries + "10.0.0.2\tweb\n" + endMarker + "\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "empty", in: ""},
		{name: "only the block", in: block},
		{name: "user lines after the block", in: block + "1.2.3.4 a\n# note\n", want: []string{"1.2.3.4 a", "# note"}},
		{name: "user lines before the block move after it", in: "1.2.3.4 a\n" + block + "5.6.7.8 b", want: []string{"1.2.3.4 a", "5.6.7.8 b"}},
		{name: "missing end marker drops the rest", in: "1.2.3.4 a\n" + beginLine + "\n10.0.0.9 ghost\n5.6.7.8 b\n", want: []string{"1.2.3.4 a"}},
		{name: "half a begin marker is a user line", in: "# ocinet: beg\n", want: []string{"# ocinet: beg"}},
		{name: "stray end marker dropped", in: endMarker + "\n1.2.3.4 a\n", want: []string{"1.2.3.4 a"}},
		{name: "markers with CRLF", in: beginLine + "\r\nx\r\n" + endMarker + "\r\ny\r\n", want: []string{"y\r"}},
		{name: "padding and trailing blank lines dropped", in: block + "1.2.3.4 a\n#      \n\n\n", want: []string{"1.2.3.4 a"}},
		{name: "inner blank lines kept", in: block + "a\n\nb\n", want: []string{"a", "", "b"}},
		{name: "two blocks", in: block + "a\n" + block + "b\n", want: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, l := range userLines([]byte(tt.in)) {
				got = append(got, string(l))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("userLines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPadding(t *testing.T) {
	for n := 1; n < 20; n++ {
		p := padding(n)
		if len(p) != n || p[n-1] != '\n' {
			t.Fatalf("padding(%d) = %q", n, p)
		}
		content := []byte("a\n")
		if got := userLines(append(content, p...)); len(got) != 1 || string(got[0]) != "a" {
			t.Errorf("userLines after padding(%d) = %q, want [a]", n, got)
		}
	}
}
