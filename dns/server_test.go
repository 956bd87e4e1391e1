package dns_test

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
)

func TestAnswers(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	s := newStore(t, state, "default")
	srvRec := rec("srv", "10.99.0.10", "fd99::10")
	srvRec.Hostname = "srv.example"
	join(t, s, srvRec)
	w1, w2 := rec("web1", "10.99.0.11"), rec("web2", "10.99.0.12")
	w1.Aliases, w2.Aliases = []string{"web"}, []string{"web"}
	join(t, s, w1)
	join(t, newStore(t, state, "other"), w2) // another containerd namespace, same network
	join(t, s, hosts.Record{ID: "elsewhere", Name: "elsewhere", Networks: []hosts.Network{{Name: "othernet", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.50")}}}})
	// IDs as nerdctl, docker and podman make them (64 hexadecimal
	// characters) give a short ID; others do not, however long.
	hex := rec("hexid", "10.99.0.13")
	hex.ID = "3F0a9c1b2d4e" + strings.Repeat("5a6b7c8d", 6) + "0123"
	join(t, s, hex)
	long := rec("longid", "10.99.0.14")
	long.ID = "container-with-a-long-name-of-sixty-four-characters-made-by-hand"
	join(t, s, long)
	up := upstream(t, 0)
	serve(t, tp, dns.Config{StateDir: state, Upstreams: []netip.AddrPort{up}})

	tests := []struct {
		name   string
		q      *mdns.Msg
		server netip.Addr
		rcode  int
		want   []string
	}{
		{"A", question("srv.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.10"}},
		{"A any case", question("SrV.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.10"}},
		{"AAAA", question("srv.", mdns.TypeAAAA), gw4, mdns.RcodeSuccess, []string{"fd99::10"}},
		{"hostname", question("srv.example.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.10"}},
		{"over IPv6", question("srv.", mdns.TypeA), gw6, mdns.RcodeSuccess, []string{"10.99.0.10"}},
		{"name of another namespace", question("web2.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.12"}},
		{"no record of the type", question("web1.", mdns.TypeAAAA), gw4, mdns.RcodeSuccess, nil},
		{"MX of a local name", question("srv.", mdns.TypeMX), gw4, mdns.RcodeSuccess, nil},
		{"PTR v4", question("10.0.99.10.in-addr.arpa.", mdns.TypePTR), gw4, mdns.RcodeSuccess, []string{"srv.", "srv.example."}},
		{"PTR v6", question(mustReverse("fd99::10"), mdns.TypePTR), gw4, mdns.RcodeSuccess, []string{"srv.", "srv.example."}},
		{"PTR of a free address of the network", question("99.0.99.10.in-addr.arpa.", mdns.TypePTR), gw4, mdns.RcodeNameError, nil},
		{"container on another network", question("elsewhere.", mdns.TypeA), gw4, mdns.RcodeNameError, nil},
		{"short ID", question("3f0a9c1b2d4e.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.13"}},
		{"short ID any case", question("3F0A9C1B2D4E.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.13"}},
		{"PTR without the short ID", question("13.0.99.10.in-addr.arpa.", mdns.TypePTR), gw4, mdns.RcodeSuccess, []string{"hexid."}},
		{"name and network", question("srv.testnet.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.10"}},
		{"name and network, any case", question("Web1.TestNet.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.11"}},
		{"hostname and network", question("srv.example.testnet.", mdns.TypeAAAA), gw4, mdns.RcodeSuccess, []string{"fd99::10"}},
		{"short ID and network", question("3f0a9c1b2d4e.testnet.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"10.99.0.13"}},
		{"name and another network", question("srv.othernet.", mdns.TypeA), gw4, mdns.RcodeNameError, nil},
		{"container and network elsewhere", question("elsewhere.othernet.", mdns.TypeA), gw4, mdns.RcodeNameError, nil},
		{"full ID", question(strings.ToLower(hex.ID)[:63]+".", mdns.TypeA), gw4, mdns.RcodeNameError, nil},
		{"no short ID of an ID that is not hexadecimal", question(long.ID[:12]+".", mdns.TypeA), gw4, mdns.RcodeNameError, nil},
		{"forwarded", question("ext.example.", mdns.TypeA), gw4, mdns.RcodeSuccess, []string{"192.0.2.10"}},
		{"forwarded, unknown upstream too", question("nowhere.example.", mdns.TypeA), gw4, mdns.RcodeNameError, nil},
		{"forwarded PTR outside the network", question("10.2.0.192.in-addr.arpa.", mdns.TypePTR), gw4, mdns.RcodeNameError, nil},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				resp, err := query(t, tp.in, proto, netip.AddrPortFrom(tt.server, 53).String(), tt.q)
				if err != nil {
					t.Fatal(err)
				}
				checkAnswer(t, resp, tt.rcode, tt.want)
				if resp.Id != tt.q.Id {
					t.Errorf("id %d, want %d", resp.Id, tt.q.Id)
				}
			})
		}
	}

	t.Run("alias round robin", func(t *testing.T) {
		firsts := map[string]int{}
		for range 4 {
			resp, err := query(t, tp.in, "udp", "10.99.0.1:53", question("web.", mdns.TypeA))
			if err != nil {
				t.Fatal(err)
			}
			got := answerAddrs(resp)
			sorted := slices.Sorted(slices.Values(got))
			if diff := cmp.Diff([]string{"10.99.0.11", "10.99.0.12"}, sorted); diff != "" {
				t.Fatalf("alias answers (-want +got):\n%s", diff)
			}
			firsts[got[0]]++
		}
		if firsts["10.99.0.11"] != 2 || firsts["10.99.0.12"] != 2 {
			t.Errorf("first answers over 4 queries: %v, want each address first twice", firsts)
		}
		resp, err := query(t, tp.in, "udp", "10.99.0.1:53", question("web.testnet.", mdns.TypeA))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"10.99.0.11", "10.99.0.12"}, slices.Sorted(slices.Values(answerAddrs(resp)))); diff != "" {
			t.Errorf("alias and network (-want +got):\n%s", diff)
		}
	})

	t.Run("refused outside the subnets", func(t *testing.T) {
		for _, proto := range []string{"udp", "tcp"} {
			for _, name := range []string{"srv.", "ext.example."} {
				resp, err := query(t, tp.out, proto, "10.99.0.1:53", question(name, mdns.TypeA))
				if err != nil {
					t.Fatal(err)
				}
				if resp.Rcode != mdns.RcodeRefused || len(resp.Answer) != 0 {
					t.Errorf("%s %s from outside: rcode %s, %d answers; want REFUSED, none", proto, name, mdns.RcodeToString[resp.Rcode], len(resp.Answer))
				}
			}
		}
	})

	t.Run("listens on the gateways only", func(t *testing.T) {
		// The outside namespace's gateway end is an address of the host
		// namespace too; nothing answers there.
		_, err := query(t, tp.out, "tcp", "10.98.0.1:53", question("srv.", mdns.TypeA))
		if err == nil {
			t.Error("an answer on 10.98.0.1:53, an address that is not a gateway of the network")
		}
	})
}

func mustReverse(a string) string {
	r, err := mdns.ReverseAddr(a)
	if err != nil {
		panic(err)
	}
	return r
}

// The responder follows the store: joins, leaves and a new namespace's
// store are answered without a restart.
func TestFollowsStore(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	s := newStore(t, state, "default")
	join(t, s, rec("first", "10.99.0.10"))
	serve(t, tp, dns.Config{StateDir: state})
	resolves := func(name, want string) func() bool {
		return func() bool {
			resp, err := query(t, tp.in, "udp", "10.99.0.1:53", question(name, mdns.TypeA))
			return err == nil && slices.Equal(answerAddrs(resp), []string{want})
		}
	}
	gone := func(name string) func() bool {
		return func() bool {
			resp, err := query(t, tp.in, "udp", "10.99.0.1:53", question(name, mdns.TypeA))
			// No upstream: a name that is not local gets SERVFAIL.
			return err == nil && resp.Rcode == mdns.RcodeServerFailure
		}
	}
	eventually(t, "first", resolves("first.", "10.99.0.10"))
	join(t, s, rec("second", "10.99.0.11"))
	eventually(t, "second after its join", resolves("second.", "10.99.0.11"))
	moved := rec("second", "10.99.0.12")
	join(t, s, moved)
	eventually(t, "second after a join with another address", resolves("second.", "10.99.0.12"))
	if err := s.Leave("first"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first gone after its leave", gone("first."))
	join(t, newStore(t, state, "late"), rec("late", "10.99.0.13"))
	eventually(t, "a container of a namespace whose store came later", resolves("late.", "10.99.0.13"))
}

// Malformed and oversized queries get FORMERR or nothing, and the responder
// answers the next query as before.
func TestMalformed(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	join(t, newStore(t, state, "default"), rec("srv", "10.99.0.10"))
	serve(t, tp, dns.Config{StateDir: state})

	good := question("srv.", mdns.TypeA)
	two := question("srv.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	twoB, _ := two.Pack()
	goodB, _ := good.Pack()
	resp := good.Copy()
	resp.Response = true
	respB, _ := resp.Pack()
	notify := question("srv.", mdns.TypeSOA)
	notify.Opcode = mdns.OpcodeNotify
	notifyB, _ := notify.Pack()
	tests := []struct {
		name  string
		b     []byte
		rcode int // -1: no answer
	}{
		{"shorter than a header", []byte{1, 2, 3}, -1},
		{"header then garbage", append(slices.Clone(goodB[:12]), 0xff, 0xff, 0xff), mdns.RcodeFormatError},
		{"truncated question", goodB[:len(goodB)-6], mdns.RcodeFormatError},
		{"two questions", twoB, mdns.RcodeFormatError},
		{"a response", respB, -1},
		{"not a query", notifyB, mdns.RcodeNotImplemented},
		{"oversized", append(slices.Clone(goodB), make([]byte, 5000)...), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			err := tp.in.Do(func() error {
				c, err := net.Dial("udp", "10.99.0.1:53")
				if err != nil {
					return err
				}
				defer c.Close()
				if _, err := c.Write(tt.b); err != nil {
					return err
				}
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				buf := make([]byte, 4096)
				n, err := c.Read(buf)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						return nil
					}
					return err
				}
				got = buf[:n]
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.rcode < 0 {
				if got != nil {
					t.Errorf("an answer of %d bytes, want none", len(got))
				}
			} else {
				m := new(mdns.Msg)
				if got == nil || m.Unpack(got) != nil {
					t.Fatalf("answer %x: want a message", got)
				}
				if m.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", mdns.RcodeToString[m.Rcode], mdns.RcodeToString[tt.rcode])
				}
			}
			r, err := query(t, tp.in, "udp", "10.99.0.1:53", question("srv.", mdns.TypeA))
			if err != nil || !slices.Equal(answerAddrs(r), []string{"10.99.0.10"}) {
				t.Fatalf("after it: %v, %v", r, err)
			}
		})
	}
}

// A flood of forwarded queries to a slow upstream from inside the network
// keeps the responder's goroutines bounded, gets SERVFAIL beyond the bound,
// and local names are still answered meanwhile.
func TestFlood(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	join(t, newStore(t, state, "default"), rec("srv", "10.99.0.10"))
	up := upstream(t, 500*time.Millisecond)
	const maxForwards = 8
	base := runtime.NumGoroutine()
	serve(t, tp, dns.Config{StateDir: state, Upstreams: []netip.AddrPort{up}}, dns.WithLimits(2, maxForwards, 4))
	// The server's own: 2 readers on each of 2 UDP sockets, 2 TCP accept
	// loops, the follower, the Serve goroutine, and the slots. The upstream
	// adds one goroutine per query in flight there (at most maxForwards).
	bound := base + 2*2 + 2 + 2 + maxForwards*2 + 8

	var peak int
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			n := runtime.NumGoroutine()
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
		}
	}()
	var servfails, sent int
	err := tp.in.Do(func() error {
		c, err := net.Dial("udp", "10.99.0.1:53")
		if err != nil {
			return err
		}
		defer c.Close()
		q := question("ext.example.", mdns.TypeA)
		for i := range 5000 {
			q.Id = uint16(i)
			b, _ := q.Pack()
			if _, err := c.Write(b); err == nil {
				sent++
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		for range sent {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			m := new(mdns.Msg)
			if m.Unpack(buf[:n]) == nil && m.Rcode == mdns.RcodeServerFailure {
				servfails++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := query(t, tp.in, "udp", "10.99.0.1:53", question("srv.", mdns.TypeA))
	if err != nil || !slices.Equal(answerAddrs(r), []string{"10.99.0.10"}) {
		t.Errorf("a local name during the flood: %v, %v", r, err)
	}
	close(stop)
	wg.Wait()
	t.Logf("sent %d, %d SERVFAIL, goroutines: %d before, peak %d, bound %d", sent, servfails, base, peak, bound)
	if peak > bound {
		t.Errorf("goroutines peaked at %d, above the bound %d", peak, bound)
	}
	if servfails == 0 {
		t.Error("no SERVFAIL beyond the forwarding bound")
	}
}

// Connections beyond the TCP bound wait in the kernel's backlog: the
// responder's goroutines stay bounded, UDP is answered meanwhile, and a
// waiting connection is served once another closes.
func TestTCPBound(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	join(t, newStore(t, state, "default"), rec("srv", "10.99.0.10"))
	const maxConns = 4
	base := runtime.NumGoroutine()
	serve(t, tp, dns.Config{StateDir: state}, dns.WithLimits(1, 0, maxConns))
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := tp.in.Do(func() error {
		for range 3 * maxConns {
			c, err := net.Dial("tcp", "10.99.0.1:53")
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server accept what it will
	// 1 reader on each of 2 UDP sockets, 2 accept loops, the follower,
	// Serve, and one goroutine per accepted connection.
	bound := base + 2 + 2 + 2 + maxConns + 4
	if n := runtime.NumGoroutine(); n > bound {
		t.Errorf("%d goroutines with %d idle connections open, bound %d", n, len(conns), bound)
	}
	r, err := query(t, tp.in, "udp", "10.99.0.1:53", question("srv.", mdns.TypeA))
	if err != nil || !slices.Equal(answerAddrs(r), []string{"10.99.0.10"}) {
		t.Errorf("UDP while TCP is full: %v, %v", r, err)
	}
	// Close the accepted ones; the last connection opened is then served.
	for _, c := range conns[:len(conns)-1] {
		c.Close()
	}
	last := &mdns.Conn{Conn: conns[len(conns)-1]}
	_ = last.SetDeadline(time.Now().Add(5 * time.Second))
	if err := last.WriteMsg(question("srv.", mdns.TypeA)); err != nil {
		t.Fatal(err)
	}
	resp, err := last.ReadMsg()
	if err != nil || !slices.Equal(answerAddrs(resp), []string{"10.99.0.10"}) {
		t.Errorf("a waiting connection once others closed: %v, %v", resp, err)
	}
}
