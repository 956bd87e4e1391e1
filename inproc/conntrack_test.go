package inproc_test

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// TestDeleteConntrack, in a namespace of its own: the entries sent from or
// answered by the container's addresses go, IPv4 and IPv6; the others
// stay. On a kernel with filtered flushes (6.14 has them) the IPv4 flush
// itself does it; on any kernel, a flush it refuses deletes nothing; an
// IPv6 address is never flushed by filter (the kernel's filter matches
// IPv6 addresses the wrong way round).
func TestDeleteConntrack(t *testing.T) {
	testenv.RequireRoot(t)
	path, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Remove(path)
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c4, c6 := net.ParseIP("10.216.113.5").To4(), net.ParseIP("fd00:216:113::5")
	o4, o6 := net.ParseIP("10.216.113.6").To4(), net.ParseIP("fd00:216:113::6")
	r4, r6 := net.ParseIP("192.0.2.7").To4(), net.ParseIP("2001:db8::7")
	flows := []struct{ src, dst net.IP }{
		{c4, r4}, {r4, c4}, {o4, r4}, // opened by the container, sent to it, another's
		{c6, r6}, {r6, c6}, {o6, r6},
	}
	err = ns.Do(func() error {
		for i, f := range flows {
			if err := createFlow(f.src, f.dst, uint16(40000+i)); err != nil {
				return err
			}
		}
		if kernelAtLeast(6, 14) {
			if err := inproc.FlushConntrackForTest(c4); err != nil {
				t.Errorf("filtered flush on a kernel that has it: %v", err)
			}
			// Exactly the entry the container opened went.
			if got := flowSources(t); len(got) != len(flows)-1 || slices.Contains(got, c4.String()+">"+r4.String()) {
				t.Fatalf("entries after the filtered flush of %s: %v", c4, got)
			}
		} else if err := inproc.FlushConntrackForTest(c4); err != nil {
			t.Logf("the kernel refuses filtered flushes (%v); checking that it deleted nothing", err)
			if got := flowSources(t); len(got) != len(flows) {
				t.Fatalf("a refused flush left %d of %d entries: %v", len(got), len(flows), got)
			}
		}
		if err := inproc.FlushConntrackForTest(c6); err == nil {
			t.Error("a filtered flush of an IPv6 address was sent")
		}
		if err := inproc.DeleteConntrackForTest([]net.IP{c4, c6}); err != nil {
			return err
		}
		got := flowSources(t)
		want := []string{o4.String() + ">" + r4.String(), o6.String() + ">" + r6.String()}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("entries after deleteConntrack: %v, want only %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// createFlow makes a UDP conntrack entry from src to dst (port 53).
func createFlow(src, dst net.IP, sport uint16) error {
	family := netlink.InetFamily(unix.AF_INET)
	if src.To4() == nil {
		family = unix.AF_INET6
	}
	f := &netlink.ConntrackFlow{FamilyType: uint8(family), TimeOut: 120,
		Forward: netlink.IPTuple{SrcIP: src, DstIP: dst, Protocol: unix.IPPROTO_UDP, SrcPort: sport, DstPort: 53},
		Reverse: netlink.IPTuple{SrcIP: dst, DstIP: src, Protocol: unix.IPPROTO_UDP, SrcPort: 53, DstPort: sport}}
	return netlink.ConntrackCreate(netlink.ConntrackTable, family, f)
}

// flowSources lists the namespace's entries as "src>dst", sorted.
func flowSources(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		fs, err := netlink.ConntrackTableList(netlink.ConntrackTable, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			out = append(out, f.Forward.SrcIP.String()+">"+f.Forward.DstIP.String())
		}
	}
	slices.Sort(out)
	return out
}

// kernelAtLeast reports whether the running kernel is major.minor or later.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var ma, mi int
	for i, part := 0, 0; i < len(u.Release) && part < 2; i++ {
		c := u.Release[i]
		switch {
		case c >= '0' && c <= '9' && part == 0:
			ma = ma*10 + int(c-'0')
		case c >= '0' && c <= '9':
			mi = mi*10 + int(c-'0')
		case c == '.':
			part++
		default:
			part = 2
		}
	}
	return ma > major || (ma == major && mi >= minor)
}
