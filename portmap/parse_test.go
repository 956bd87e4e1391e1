package portmap

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func rng(start, end uint16) PortRange { return PortRange{Start: start, End: end} }
func one(p uint16) PortRange          { return PortRange{Start: p, End: p} }
func ip(s string) netip.Addr          { return netip.MustParseAddr(s) }

// validSpecs covers every -p example of Docker's and nerdctl's documentation
// and the edges of the grammar. str is the canonical String form.
var validSpecs = []struct {
	spec string
	want Mapping
	str  string
}{
	// Docker and nerdctl documentation.
	{"8080:80", Mapping{HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "8080:80/tcp"},
	{"192.168.1.100:8080:80", Mapping{HostIP: ip("192.168.1.100"), HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "192.168.1.100:8080:80/tcp"},
	{"8080:80/udp", Mapping{HostPorts: one(8080), ContainerPorts: one(80), Protocol: "udp"}, "8080:80/udp"},
	{"8080:80/tcp", Mapping{HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "8080:80/tcp"},
	{"127.0.0.1:80:8080", Mapping{HostIP: ip("127.0.0.1"), HostPorts: one(80), ContainerPorts: one(8080), Protocol: "tcp"}, "127.0.0.1:80:8080/tcp"},
	{"127.0.0.1::80", Mapping{HostIP: ip("127.0.0.1"), ContainerPorts: one(80), Protocol: "tcp"}, "127.0.0.1::80/tcp"},
	{"127.0.0.1:8080:80/udp", Mapping{HostIP: ip("127.0.0.1"), HostPorts: one(8080), ContainerPorts: one(80), Protocol: "udp"}, "127.0.0.1:8080:80/udp"},
	{"80", Mapping{ContainerPorts: one(80), Protocol: "tcp"}, "80/tcp"},
	{"80-81", Mapping{ContainerPorts: rng(80, 81), Protocol: "tcp"}, "80-81/tcp"},
	{"3000-3001:8080-8081", Mapping{HostPorts: rng(3000, 3001), ContainerPorts: rng(8080, 8081), Protocol: "tcp"}, "3000-3001:8080-8081/tcp"},
	{"8000-8010:80", Mapping{HostPorts: rng(8000, 8010), ContainerPorts: one(80), Protocol: "tcp"}, "8000-8010:80/tcp"},
	{"[::]:8080:80", Mapping{HostIP: ip("::"), HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "[::]:8080:80/tcp"},
	{"[::1]:8080:80", Mapping{HostIP: ip("::1"), HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "[::1]:8080:80/tcp"},
	{"8080:80/sctp", Mapping{HostPorts: one(8080), ContainerPorts: one(80), Protocol: "sctp"}, "8080:80/sctp"},
	{"127.0.0.1:5000-5010:5000-5010", Mapping{HostIP: ip("127.0.0.1"), HostPorts: rng(5000, 5010), ContainerPorts: rng(5000, 5010), Protocol: "tcp"}, "127.0.0.1:5000-5010:5000-5010/tcp"},
	{"53:53/udp", Mapping{HostPorts: one(53), ContainerPorts: one(53), Protocol: "udp"}, "53:53/udp"},
	// Edges.
	{"[::1]::80", Mapping{HostIP: ip("::1"), ContainerPorts: one(80), Protocol: "tcp"}, "[::1]::80/tcp"},
	{"[::]::80/udp", Mapping{HostIP: ip("::"), ContainerPorts: one(80), Protocol: "udp"}, "[::]::80/udp"},
	{":80", Mapping{ContainerPorts: one(80), Protocol: "tcp"}, "80/tcp"},
	{"8080:80/TCP", Mapping{HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "8080:80/tcp"},
	{"8080:80/Udp", Mapping{HostPorts: one(8080), ContainerPorts: one(80), Protocol: "udp"}, "8080:80/udp"},
	{"80/SCTP", Mapping{ContainerPorts: one(80), Protocol: "sctp"}, "80/sctp"},
	{"0.0.0.0:8080:80", Mapping{HostIP: ip("0.0.0.0"), HostPorts: one(8080), ContainerPorts: one(80), Protocol: "tcp"}, "0.0.0.0:8080:80/tcp"},
	{"65535:65535", Mapping{HostPorts: one(65535), ContainerPorts: one(65535), Protocol: "tcp"}, "65535:65535/tcp"},
	{"1:1", Mapping{HostPorts: one(1), ContainerPorts: one(1), Protocol: "tcp"}, "1:1/tcp"},
	{"080:0080", Mapping{HostPorts: one(80), ContainerPorts: one(80), Protocol: "tcp"}, "80:80/tcp"},
	{"80-80", Mapping{ContainerPorts: one(80), Protocol: "tcp"}, "80/tcp"},
	{"8000-8002:80-82/udp", Mapping{HostPorts: rng(8000, 8002), ContainerPorts: rng(80, 82), Protocol: "udp"}, "8000-8002:80-82/udp"},
	{"[2001:DB8::1]:443:8443", Mapping{HostIP: ip("2001:db8::1"), HostPorts: one(443), ContainerPorts: one(8443), Protocol: "tcp"}, "[2001:db8::1]:443:8443/tcp"},
	{"[::ffff]:80:80", Mapping{HostIP: ip("::ffff"), HostPorts: one(80), ContainerPorts: one(80), Protocol: "tcp"}, "[::ffff]:80:80/tcp"},
	{"1.2.3.4:1-65535:1-65535", Mapping{HostIP: ip("1.2.3.4"), HostPorts: rng(1, 65535), ContainerPorts: rng(1, 65535), Protocol: "tcp"}, "1.2.3.4:1-65535:1-65535/tcp"},
	{"10.0.0.1:8080-8090:80/udp", Mapping{HostIP: ip("10.0.0.1"), HostPorts: rng(8080, 8090), ContainerPorts: one(80), Protocol: "udp"}, "10.0.0.1:8080-8090:80/udp"},
	{"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535-65535:65535-65535/sctp", Mapping{HostIP: ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), HostPorts: one(65535), ContainerPorts: one(65535), Protocol: "sctp"}, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535:65535/sctp"},
}

// invalidSpecs: each must fail with ErrInvalid and a message containing
// part.
var invalidSpecs = []struct {
	spec string
	part string
}{
	// Docker's and nerdctl's documented failures.
	{"::1:8080:80", `IPv6 host IP "::1" must be in brackets, as in "[::1]:8080:80"`},
	{"127.0.0.1:3000:0.0.0.0:8080", `too many ":" in "127.0.0.1:3000:0.0.0.0:8080"`},
	{"8080:80/tpc", `unknown protocol "tpc"`},
	{"0:80", `host port 0 is out of range 1-65535`},
	{"65536:80", `host port 65536 is out of range 1-65535`},
	{"8082-8080:80", `host port range 8082-8080 is reversed`},
	{"8080-8082:80-81", `host port range 8080-8082 and container port range 80-81 differ in length`},
	{":", `no container port given`},
	{"", `no container port given`},
	{"8080::80", `invalid host IP "8080"`},
	// Ports.
	{"80:0", `container port 0 is out of range`},
	{"0", `container port 0 is out of range`},
	{"0-5:80", `host port 0 is out of range`},
	{"80:65536", `container port 65536 is out of range`},
	{"99999999999999999999:80", `host port 99999999999999999999 is out of range`},
	{"80-70", `container port range 80-70 is reversed`},
	{"8080:", `no container port given`},
	{"127.0.0.1:8080:", `no container port given`},
	{"8080:80-81", `host port 8080 is one port but container ports 80-81 are 2`},
	{"a:80", `invalid host port "a"`},
	{"80:x", `invalid container port "x"`},
	{"0x50", `invalid container port "0x50"`},
	{"-80", `invalid container port range "-80"`},
	{"80-", `invalid container port range "80-"`},
	{"80--81", `invalid container port range "80--81"`},
	{"80-81-82", `invalid container port range "80-81-82"`},
	{"8080-:80", `invalid host port range "8080-"`},
	{"127.0.0.1:80", `invalid host port "127.0.0.1"`},
	{"80%", `invalid container port "80%"`},
	// Signs, whitespace, odd characters, length.
	{"+80", `unexpected '+' at offset 0`},
	{"8080:+80", `unexpected '+' at offset 5`},
	{"8080 :80", `whitespace ' ' at offset 4`},
	{" 80", `whitespace ' ' at offset 0`},
	{"80\n", `whitespace '\n' at offset 2`},
	{"80\t/tcp", `whitespace '\t' at offset 2`},
	{"８０", `unexpected '８' at offset 0`},
	{"80,81", `unexpected ',' at offset 2`},
	{strings.Repeat("1", 200), `publish value of 200 bytes is too long`},
	// Protocol and slashes.
	{"80/tcp/udp", `unexpected "/udp" after protocol "tcp"`},
	{"8080:80/tcp/", `unexpected "/" after protocol "tcp"`},
	{"80/", `empty protocol after "/"`},
	{"80/TCPX", `unknown protocol "TCPX"`},
	{"/tcp", `no container port given`},
	// Host IPs.
	{"1.2.3:80:80", `invalid host IP "1.2.3"`},
	{"256.0.0.1:80:80", `invalid host IP "256.0.0.1"`},
	{"01.2.3.4:80:80", `invalid host IP "01.2.3.4"`},
	{"::80", `empty host IP before the host port`},
	{"[]:80:80", `empty host IP "[]"`},
	{"[::1:8080:80", `missing "]" after host IP "::1:8080:80"`},
	{"[::1]8080:80", `want ":" after host IP [::1]`},
	{"[::1]", `want ":" after host IP [::1]`},
	{"[::1]:80", `want hostPort:containerPort after host IP [::1]`},
	{"[::1]:80:80:80", `too many ":" after host IP [::1]`},
	{"[::1]:80:80]", `invalid container port "80]"`},
	{"[127.0.0.1]:80:80", `IPv4 host IP "127.0.0.1" must not be in brackets`},
	{"[fe80::1%eth0]:80:80", `host IP "fe80::1%eth0" has a zone`},
	{"[fe80::1%]:80:80", `host IP "fe80::1%" has a zone`},
	{"1.2.3.4%eth0:80:80", `host IP "1.2.3.4%eth0" has a zone`},
	{"[::ffff:127.0.0.1]:80:80", `host IP "::ffff:127.0.0.1" is IPv4-mapped; write it as 127.0.0.1`},
	{"[::1x]:80:80", `invalid host IP "::1x"`},
	{"80:80:80:80", `too many ":" in "80:80:80:80"`},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validSpecs {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := Parse(tc.spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.spec, err)
			}
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tc.spec, diff)
			}
			if s := got.String(); s != tc.str {
				t.Errorf("String() = %q, want %q", s, tc.str)
			}
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(String()=%q): %v", got.String(), err)
			}
			if diff := cmp.Diff(got, again, addrCmp); diff != "" {
				t.Errorf("round trip through %q (-first +second):\n%s", got.String(), diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalidSpecs {
		t.Run(tc.spec, func(t *testing.T) {
			m, err := Parse(tc.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tc.spec, m)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", tc.spec, err)
			}
			if errors.Is(err, ErrConflict) || errors.Is(err, ErrExhausted) {
				t.Errorf("Parse(%q) error %v wraps another sentinel", tc.spec, err)
			}
			if !strings.Contains(err.Error(), tc.part) {
				t.Errorf("Parse(%q) error %q does not contain %q", tc.spec, err, tc.part)
			}
			if len(tc.spec) <= maxSpecLen && !strings.HasPrefix(err.Error(), "publish "+quote(tc.spec)+": ") {
				t.Errorf("Parse(%q) error %q does not start with the quoted value", tc.spec, err)
			}
			if m != (Mapping{}) {
				t.Errorf("Parse(%q) returned %+v with its error, want the zero Mapping", tc.spec, m)
			}
		})
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s) // close enough to %q for these ASCII cases
	return strings.ReplaceAll(string(b), `\u0026`, "&")
}

func TestParseErrorExample(t *testing.T) {
	_, err := Parse("8080:80/tpc")
	want := `publish "8080:80/tpc": unknown protocol "tpc" (want tcp, udp or sctp)`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse error = %v, want %s", err, want)
	}
}

func TestMappingJSON(t *testing.T) {
	var ms []Mapping
	for _, tc := range validSpecs {
		ms = append(ms, tc.want)
	}
	data, err := json.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	var back []Mapping
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ms, back, addrCmp); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}

	data, err = json.Marshal(map[string]Mapping{"p": validSpecs[1].want})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `{"p":"192.168.1.100:8080:80/tcp"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}

	var m Mapping
	err = json.Unmarshal([]byte(`"8080:80/tpc"`), &m)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Unmarshal of a bad spec: %v, want ErrInvalid", err)
	}
	if _, err := json.Marshal(Mapping{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Marshal of the zero Mapping: %v, want ErrInvalid", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Mapping
		part string // "" = valid
	}{
		{"default protocol", Mapping{ContainerPorts: one(80)}, ""},
		{"explicit everything", Mapping{HostIP: ip("::1"), HostPorts: rng(1, 2), ContainerPorts: rng(3, 4), Protocol: "udp"}, ""},
		{"pool", Mapping{HostPorts: rng(8000, 8010), ContainerPorts: one(80), Protocol: "sctp"}, ""},
		{"zero", Mapping{}, "no container port given"},
		// Parse lowers the case of what it reads; a Mapping holds it lowered.
		{"upper-case protocol", Mapping{ContainerPorts: one(80), Protocol: "TCP"}, `unknown protocol "TCP"`},
		{"unknown protocol", Mapping{ContainerPorts: one(80), Protocol: "icmp"}, `unknown protocol "icmp"`},
		{"zoned", Mapping{HostIP: ip("fe80::1%eth0"), HostPorts: one(1), ContainerPorts: one(1)}, "has a zone"},
		{"4in6", Mapping{HostIP: ip("::ffff:10.0.0.1"), HostPorts: one(1), ContainerPorts: one(1)}, "write it as 10.0.0.1"},
		{"half range", Mapping{ContainerPorts: PortRange{Start: 80}}, "container port 0 is out of range"},
		{"reversed", Mapping{HostPorts: rng(9, 8), ContainerPorts: rng(2, 1)}, "host port range 9-8 is reversed"},
		{"lengths", Mapping{HostPorts: rng(1, 3), ContainerPorts: rng(1, 2)}, "differ in length"},
		{"single host port for a range", Mapping{HostPorts: one(1), ContainerPorts: rng(1, 2)}, "is one port but container ports 1-2 are 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.part == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				back, err := Parse(tc.m.String())
				if err != nil {
					t.Fatalf("Parse(%q): %v", tc.m.String(), err)
				}
				want := tc.m
				want.Protocol = want.protocol()
				if diff := cmp.Diff(want, back, addrCmp); diff != "" {
					t.Errorf("round trip (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.part) {
				t.Fatalf("Validate = %v, want ErrInvalid containing %q", err, tc.part)
			}
			if _, perr := Parse(tc.m.String()); perr == nil && tc.m.Protocol != "TCP" {
				t.Errorf("Parse(%q) accepts what Validate refuses", tc.m.String())
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		spec string
		want []Port
		part string
	}{
		{"8080:80", []Port{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}, ""},
		{"127.0.0.1:8000-8002:80-82/udp", []Port{
			{HostIP: ip("127.0.0.1"), HostPort: 8000, ContainerPort: 80, Protocol: "udp"},
			{HostIP: ip("127.0.0.1"), HostPort: 8001, ContainerPort: 81, Protocol: "udp"},
			{HostIP: ip("127.0.0.1"), HostPort: 8002, ContainerPort: 82, Protocol: "udp"},
		}, ""},
		{"[::1]:65535:1/sctp", []Port{{HostIP: ip("::1"), HostPort: 65535, ContainerPort: 1, Protocol: "sctp"}}, ""},
		{"80", nil, "no host port given"},
		{"127.0.0.1::80-81", nil, "no host port given"},
		{"8000-8010:80", nil, "host port range 8000-8010 is a pool"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			m, err := Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Expand()
			if tc.part != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.part) {
					t.Fatalf("Expand = %v, %v; want ErrInvalid containing %q", got, err, tc.part)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("Expand (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := (Mapping{HostPorts: one(1)}).Expand(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Expand of an invalid Mapping: %v, want ErrInvalid", err)
	}
}

func TestPortFormats(t *testing.T) {
	ports := []Port{
		{HostIP: ip("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: ip("::1"), HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
	}
	wantStr := []string{"80/tcp -> 127.0.0.1:8080", "53/udp -> [::1]:5353", "443/tcp -> *:8443"}
	for i, p := range ports {
		if got := p.String(); got != wantStr[i] {
			t.Errorf("String() = %q, want %q", got, wantStr[i])
		}
	}

	data, err := json.Marshal(ports)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `[{"hostIP":"127.0.0.1","hostPort":8080,"containerPort":80,"protocol":"tcp"},` +
		`{"hostIP":"::1","hostPort":5353,"containerPort":53,"protocol":"udp"},` +
		`{"hostPort":8443,"containerPort":443,"protocol":"tcp"}]`
	if string(data) != wantJSON {
		t.Errorf("JSON:\n got %s\nwant %s", data, wantJSON)
	}
	var back []Port
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ports, back, addrCmp); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}

}

func TestConflictErrorMessage(t *testing.T) {
	tests := []struct {
		err  *ConflictError
		want string
	}{
		{&ConflictError{Port: Port{HostIP: ip("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, Owner: "default/web", Label: "web"},
			"publish 127.0.0.1:8080/tcp: host port 8080 is in use by another container (web)"},
		{&ConflictError{Port: Port{HostIP: ip("0.0.0.0"), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
			"publish 0.0.0.0:8080/tcp: host port 8080 is in use by a process on the host"},
		{&ConflictError{Port: Port{HostPort: 8080, ContainerPort: 80, Protocol: "udp"}, Owner: "default/db"},
			"publish 8080/udp: host port 8080 is in use by another container (default/db)"},
		{&ConflictError{Port: Port{HostIP: ip("::1"), HostPort: 53, ContainerPort: 53, Protocol: "udp"}},
			"publish [::1]:53/udp: host port 53 is in use by a process on the host"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		var err error = tc.err
		if !errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrExhausted) {
			t.Errorf("%v: errors.Is is wrong", err)
		}
	}
}
