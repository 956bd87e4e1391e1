package portmap

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListeningTCP checks the sock_diag dump against real sockets: it lists
// listening sockets on IPv4 and IPv6 with their addresses, and neither
// end of an established connection.
func TestListeningTCP(t *testing.T) {
	listen := func(network, addr string) (net.Listener, socket) {
		t.Helper()
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		a := ln.Addr().(*net.TCPAddr).AddrPort()
		return ln, socket{addr: a.Addr().Unmap(), port: a.Port()}
	}
	ln4, s4 := listen("tcp4", "127.0.0.1:0")
	_, sAny := listen("tcp4", "0.0.0.0:0")
	want := []socket{s4, sAny}
	if _, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		_, s6 := listen("tcp6", "[::1]:0")
		want = append(want, s6)
	}
	c, err := net.Dial("tcp4", ln4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln4.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	dialer := c.LocalAddr().(*net.TCPAddr).AddrPort()

	got, err := listeningTCP()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("listening sockets %v lack %v", got, w)
		}
	}
	for _, s := range got {
		if s.port == dialer.Port() && s.addr == dialer.Addr().Unmap() {
			t.Errorf("listening sockets hold the connected socket %v", s)
		}
	}
}

// TestParseDiagMsg checks the decoding of inet_diag_msg and its refusals.
func TestParseDiagMsg(t *testing.T) {
	m := make([]byte, diagMsgMin+32)
	m[0] = unix.AF_INET6
	m[diagMsgSport], m[diagMsgSport+1] = 0x1f, 0x90
	copy(m[diagMsgSrcAddr:], netip.MustParseAddr("::ffff:10.1.2.3").AsSlice())
	s, err := parseDiagMsg(m, unix.AF_INET6)
	if want := (socket{addr: netip.MustParseAddr("10.1.2.3"), port: 8080}); err != nil || s != want {
		t.Errorf("parseDiagMsg = %v, %v; want %v", s, err, want)
	}
	if _, err := parseDiagMsg(m, unix.AF_INET); err == nil {
		t.Error("a message of another family was accepted")
	}
	if _, err := parseDiagMsg(m[:diagMsgMin-1], unix.AF_INET6); err == nil {
		t.Error("a short message was accepted")
	}
}
