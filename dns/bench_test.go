package dns_test

import (
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet/dns"
)

// BenchmarkQuery: queries for a container's name from inside the network,
// against the responder and, interleaved in the same run as the baseline,
// against a plain miekg/dns server on the same address with one fixed
// answer. Each round, for each server in turn, clients goroutines (each
// with a socket of its own made inside the network's namespace) send
// perClient queries one after the other; the load is bounded by the
// clients, each waiting for its answer. Reported: p50 and p99 latency and
// queries per second for both, and the ratios responder / baseline.
func BenchmarkQuery(b *testing.B) {
	const clients, perClient = 4, 100
	tp := newTopo(b)
	state := b.TempDir()
	join(b, newStore(b, state, "default"), rec("srv", "10.99.0.10"))
	for i := range 100 { // a network with peers, so that the table is not trivial
		join(b, newStore(b, state, "default"), rec("peer-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "10.99.0."+strconv.Itoa(20+i)))
	}
	serve(b, tp, dns.Config{StateDir: state})
	var base *mdns.Server
	if err := tp.host.Do(func() error {
		pc, err := net.ListenPacket("udp", "10.99.0.1:5300")
		if err != nil {
			return err
		}
		base = &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
			m := new(mdns.Msg)
			m.SetReply(r)
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.IPv4(10, 99, 0, 10)})
			_ = w.WriteMsg(m)
		})}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = base.ActivateAndServe() }()
	b.Cleanup(func() { _ = base.Shutdown() })

	dial := func(addr string) []*mdns.Conn {
		var conns []*mdns.Conn
		if err := tp.in.Do(func() error {
			for range clients {
				c, err := net.Dial("udp", addr)
				if err != nil {
					return err
				}
				conns = append(conns, &mdns.Conn{Conn: c})
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		return conns
	}
	servers := [2][]*mdns.Conn{dial("10.99.0.1:53"), dial("10.99.0.1:5300")}
	var lat [2][]time.Duration
	var elapsed [2]time.Duration
	var queries [2]int
	round := func(i int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		t0 := time.Now()
		for _, c := range servers[i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q := new(mdns.Msg)
				q.SetQuestion("srv.", mdns.TypeA)
				own := make([]time.Duration, 0, perClient)
				for range perClient {
					q.Id = mdns.Id()
					t := time.Now()
					_ = c.SetDeadline(t.Add(time.Second))
					if err := c.WriteMsg(q); err != nil {
						b.Error(err)
						return
					}
					r, err := c.ReadMsg()
					if err != nil || len(r.Answer) != 1 {
						b.Errorf("answer %v, %v", r, err)
						return
					}
					own = append(own, time.Since(t))
				}
				mu.Lock()
				lat[i] = append(lat[i], own...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed[i] += time.Since(t0)
		queries[i] += clients * perClient
	}
	for b.Loop() {
		round(0)
		round(1)
	}
	pct := func(d []time.Duration, p int) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[(len(s)-1)*p/100].Nanoseconds()) / 1e3
	}
	qps := func(i int) float64 { return float64(queries[i]) / elapsed[i].Seconds() }
	b.ReportMetric(pct(lat[0], 50), "p50-µs")
	b.ReportMetric(pct(lat[0], 99), "p99-µs")
	b.ReportMetric(qps(0), "queries/s")
	b.ReportMetric(pct(lat[1], 50), "base-p50-µs")
	b.ReportMetric(pct(lat[1], 99), "base-p99-µs")
	b.ReportMetric(qps(1), "base-queries/s")
	b.ReportMetric(pct(lat[0], 50)/pct(lat[1], 50), "p50-ratio")
	b.ReportMetric(qps(0)/qps(1), "qps-ratio")
}
