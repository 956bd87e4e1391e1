package hosts

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet/internal/fsutil"
)

// BenchmarkJoinHostsMode: a container joining (and leaving) a network of N
// peers whose peers are in every hosts file (the baseline) and one whose
// peers come from DNS, interleaved in the same run: each iteration joins
// and leaves once in each store. Reported per join: nanoseconds and bytes
// the process wrote (wchar of /proc/self/io) in each mode, and their
// ratios (dns / hosts).
func BenchmarkJoinHostsMode(b *testing.B) {
	for _, peers := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("peers=%d", peers), func(b *testing.B) {
			files, dns := seedStore(b, peers, false), seedStore(b, peers, true)
			var ns, bytes [2]int64
			n := 0
			for b.Loop() {
				for i, s := range []*Store{files, dns} {
					r := benchRecord("joiner", peers, i == 1)
					if err := s.Prepare(r.ID); err != nil {
						b.Fatal(err)
					}
					w0 := wchar()
					t0 := time.Now()
					if err := s.Join(r); err != nil {
						b.Fatal(err)
					}
					ns[i] += time.Since(t0).Nanoseconds()
					bytes[i] += wchar() - w0
					if err := s.Remove(r.ID); err != nil {
						b.Fatal(err)
					}
				}
				n++
			}
			b.ReportMetric(float64(ns[0])/float64(n), "hosts-ns/join")
			b.ReportMetric(float64(ns[1])/float64(n), "dns-ns/join")
			b.ReportMetric(float64(bytes[0])/float64(n), "hosts-B/join")
			b.ReportMetric(float64(bytes[1])/float64(n), "dns-B/join")
			b.ReportMetric(float64(ns[1])/float64(ns[0]), "time-ratio")
			b.ReportMetric(float64(bytes[1])/float64(bytes[0]), "bytes-ratio")
		})
	}
}

func benchRecord(id string, i int, byDNS bool) Record {
	ip := netip.AddrFrom4([4]byte{10, 88, byte((i + 2) >> 8), byte(i + 2)})
	return Record{ID: id, Name: id, Hostname: id,
		Networks: []Network{{Name: "bridge", IPs: []netip.Addr{ip}, Gateway: netip.MustParseAddr("10.88.0.1"), PeersByDNS: byDNS}}}
}

// seedStore returns a store with peers containers on one network: their
// records written as the store keeps them, then Repair (joining them one by
// one would rewrite every earlier peer's file each time).
func seedStore(b *testing.B, peers int, byDNS bool) *Store {
	b.Helper()
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for i := range peers {
		r := benchRecord(fmt.Sprintf("peer-%05d", i), i, byDNS)
		data, err := encodeRecord(&r)
		if err != nil {
			b.Fatal(err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(s.RecordsDir(), r.ID+recordSuffix), data, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := s.Prepare(r.ID); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Repair(); err != nil {
		b.Fatal(err)
	}
	return s
}

// wchar returns the bytes this process has passed to write calls.
func wchar() int64 {
	data, _ := os.ReadFile("/proc/self/io")
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
