package portmap

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// procEntry is one row of a fake /proc/net table.
type procEntry struct {
	addr  string
	port  uint16
	state string // "0A" LISTEN, "01" ESTABLISHED, "07" CLOSE, "06" TIME_WAIT
}

// hexAddr encodes an address as the kernel prints it in /proc/net.
func hexAddr(a netip.Addr) string {
	b := a.AsSlice()
	var s strings.Builder
	for i := 0; i < len(b); i += 4 {
		fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[i:]))
	}
	return s.String()
}

// procNetTable renders a /proc/net/{tcp,udp}{,6} table.
func procNetTable(entries ...procEntry) string {
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i, e := range entries {
		a := netip.MustParseAddr(e.addr)
		remote := netip.IPv4Unspecified()
		if a.Is6() {
			remote = netip.IPv6Unspecified()
		}
		fmt.Fprintf(&b, "%4d: %s:%04X %s:0000 %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n",
			i, hexAddr(a), e.port, hexAddr(remote), e.state, 1000+i)
	}
	return b.String()
}

func TestParseSocketTable(t *testing.T) {
	tcp := procNetTable(
		procEntry{"127.0.0.1", 8080, "0A"},
		procEntry{"0.0.0.0", 22, "0A"},
		procEntry{"10.0.0.2", 40000, "01"}, // an outgoing connection: not a listener
		procEntry{"10.0.0.2", 40001, "06"}, // TIME_WAIT
	)
	got, err := parseSocketTable([]byte(tcp), formatTCP)
	if err != nil {
		t.Fatal(err)
	}
	want := []socket{{ip("127.0.0.1"), 8080}, {ip("0.0.0.0"), 22}}
	if diff := cmp.Diff(want, got, addrCmp, cmp.AllowUnexported(socket{})); diff != "" {
		t.Errorf("tcp (-want +got):\n%s", diff)
	}

	tcp6 := procNetTable(
		procEntry{"::", 80, "0A"},
		procEntry{"::1", 631, "0A"},
		procEntry{"::ffff:127.0.0.1", 9000, "0A"}, // IPv4-mapped: unmapped
		procEntry{"2001:db8::5", 443, "0A"},
	)
	got, err = parseSocketTable([]byte(tcp6), formatTCP)
	if err != nil {
		t.Fatal(err)
	}
	want = []socket{{ip("::"), 80}, {ip("::1"), 631}, {ip("127.0.0.1"), 9000}, {ip("2001:db8::5"), 443}}
	if diff := cmp.Diff(want, got, addrCmp, cmp.AllowUnexported(socket{})); diff != "" {
		t.Errorf("tcp6 (-want +got):\n%s", diff)
	}

	udp := procNetTable(
		procEntry{"0.0.0.0", 68, "07"},
		procEntry{"10.0.0.2", 51000, "01"}, // connected UDP still holds its port
	)
	got, err = parseSocketTable([]byte(udp), formatUDP)
	if err != nil {
		t.Fatal(err)
	}
	want = []socket{{ip("0.0.0.0"), 68}, {ip("10.0.0.2"), 51000}}
	if diff := cmp.Diff(want, got, addrCmp, cmp.AllowUnexported(socket{})); diff != "" {
		t.Errorf("udp (-want +got):\n%s", diff)
	}

	sctp := " ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n" +
		"ffff88017e0a0200 ffff880299f7fa00 2   10  29   11165     0 11742 10.0.0.1 10.0.0.2 \n" +
		"ffff88017e0a0201 ffff880299f7fa01 2   10  30   2905      0 11743 \n"
	got, err = parseSocketTable([]byte(sctp), formatSCTP)
	if err != nil {
		t.Fatal(err)
	}
	want = []socket{{ip("10.0.0.1"), 11165}, {ip("10.0.0.2"), 11165}, {ip("0.0.0.0"), 2905}, {ip("::"), 2905}}
	if diff := cmp.Diff(want, got, addrCmp, cmp.AllowUnexported(socket{})); diff != "" {
		t.Errorf("sctp (-want +got):\n%s", diff)
	}

	for _, bad := range []string{
		"header\n   0: 0100007F 00000000:0000 0A\n",
		"header\n   0: 0100007F:XYZ 00000000:0000 0A\n",
		"header\n   0: 0100007:1F90 00000000:0000 0A\n",
		"header\n   0: 0100007F:1F90\n",
	} {
		if _, err := parseSocketTable([]byte(bad), formatTCP); err == nil {
			t.Errorf("parseSocketTable(%q) succeeded", bad)
		}
	}
}

// TestParseHexAddrLittleEndian checks a row copied from an x86 machine.
func TestParseHexAddrLittleEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("big-endian machine")
	}
	row := "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1064 1"
	got, err := parseSocketTable([]byte("header\n"+row+"\n"), formatTCP)
	if err != nil {
		t.Fatal(err)
	}
	want := []socket{{ip("127.0.0.1"), 8080}}
	if diff := cmp.Diff(want, got, addrCmp, cmp.AllowUnexported(socket{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	a, err := parseHexAddr("00000000000000000000000001000000")
	if err != nil || a != ip("::1") {
		t.Errorf("parseHexAddr(::1) = %v, %v", a, err)
	}
}

func TestParseKernelPorts(t *testing.T) {
	r, err := parsePortRange([]byte("32768\t60999\n"))
	if err != nil || r != rng(32768, 60999) {
		t.Errorf("parsePortRange = %v, %v", r, err)
	}
	for _, bad := range []string{"", "1", "0 10", "10 5", "1 2 3", "a b", "1 70000"} {
		if _, err := parsePortRange([]byte(bad)); err == nil {
			t.Errorf("parsePortRange(%q) succeeded", bad)
		}
	}

	res, err := parseReservedPorts([]byte("8080,9000-9010,50000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]PortRange{one(8080), rng(9000, 9010), one(50000)}, res); diff != "" {
		t.Errorf("parseReservedPorts (-want +got):\n%s", diff)
	}
	if res, err := parseReservedPorts([]byte("\n")); err != nil || res != nil {
		t.Errorf("parseReservedPorts(empty) = %v, %v", res, err)
	}
	for _, bad := range []string{"a", "1,,2", "5-3", "1-"} {
		if _, err := parseReservedPorts([]byte(bad)); err == nil {
			t.Errorf("parseReservedPorts(%q) succeeded", bad)
		}
	}
}

func TestOverlaps(t *testing.T) {
	var all netip.Addr
	tests := []struct {
		a, b netip.Addr
		want bool
	}{
		{all, all, true},
		{all, ip("127.0.0.1"), true},
		{all, ip("::1"), true},
		{ip("0.0.0.0"), ip("127.0.0.1"), true},
		{ip("127.0.0.1"), ip("127.0.0.1"), true},
		{ip("127.0.0.1"), ip("127.0.0.2"), false},
		{ip("0.0.0.0"), ip("::"), true},
		{ip("::"), ip("127.0.0.1"), true},
		{ip("::"), ip("::1"), true},
		{ip("0.0.0.0"), ip("::1"), false},
		{ip("127.0.0.1"), ip("::1"), false},
		{ip("::1"), ip("::2"), false},
		{ip("::1"), ip("::1"), true},
	}
	for _, tc := range tests {
		if got := overlaps(tc.a, tc.b); got != tc.want {
			t.Errorf("overlaps(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := overlaps(tc.b, tc.a); got != tc.want {
			t.Errorf("overlaps(%v, %v) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestOwnerEscaping(t *testing.T) {
	for _, owner := range []string{"web", "default/web", "../../etc/passwd", ".hidden", "a b", "ü", "%41", "x.json", "-"} {
		name := escapeOwner(owner)
		if strings.ContainsAny(name, "/ ") || strings.HasPrefix(name, ".") {
			t.Errorf("escapeOwner(%q) = %q is not a safe file name", owner, name)
		}
		back, ok := unescapeOwner(name)
		if !ok || back != owner {
			t.Errorf("unescapeOwner(%q) = %q, %v; want %q", name, back, ok, owner)
		}
	}
	for _, name := range []string{"%2f", "%2", "%", "%zz", "a%41", "%2Ex", ""} {
		// %2Ex is ".x" escaped correctly; "a%41" should be "aA".
		owner, ok := unescapeOwner(name)
		if ok && escapeOwner(owner) != name {
			t.Errorf("unescapeOwner(%q) accepted a non-canonical name", name)
		}
	}
	if _, ok := unescapeOwner("a%41"); ok {
		t.Error(`unescapeOwner("a%41") accepted a non-canonical name`)
	}
}
