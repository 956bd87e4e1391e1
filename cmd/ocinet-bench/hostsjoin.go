package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocinet/ocinet/hosts"
)

// hostsSection: a container joining (and leaving) a network that already
// has N peers, with the store in a directory of the run, in both hosts
// modes: peers in every hosts file, and peers by DNS only. Absolute times
// and the bytes the process wrote per operation (its wchar in
// /proc/self/io: the record, the container's hosts file and, in the first
// mode, every peer's).
func (b *bench) hostsSection() error {
	for _, byDNS := range []bool{false, true} {
		if err := b.hostsMode(byDNS); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) hostsMode(byDNS bool) error {
	mode := ""
	dir := filepath.Join(b.work, "hosts")
	if byDNS {
		mode, dir = " (hosts mode dns)", filepath.Join(b.work, "hosts-dns")
	}
	store, err := hosts.Open(dir)
	if err != nil {
		return err
	}
	gw := netip.MustParseAddr("10.88.0.1")
	record := func(id string, i int) hosts.Record {
		ip := netip.AddrFrom4([4]byte{10, 88, byte((i + 2) >> 8), byte(i + 2)})
		return hosts.Record{ID: id, Name: id, Hostname: id,
			Networks: []hosts.Network{{Name: "bridge", IPs: []netip.Addr{ip}, Gateway: gw, PeersByDNS: byDNS}}}
	}
	peers := slices.Sorted(slices.Values(b.peers))
	have := 0
	for _, n := range peers {
		if n > 60000 {
			return fmt.Errorf("-peers: %d is more than the run's address range holds", n)
		}
		// Joining N peers one by one rewrites every earlier peer's file
		// each time, O(N²) files; for 1000 peers that is minutes. So the
		// peers are imported (records and index, no file) and Repair
		// writes every hosts file once.
		t0, from := time.Now(), have
		var seed []hosts.Record
		for ; have < n; have++ {
			seed = append(seed, record(fmt.Sprintf("peer-%05d", have), have))
		}
		if err := store.Import(seed); err != nil {
			return fmt.Errorf("seed %d peers: %w", n, err)
		}
		if err := store.Repair(); err != nil {
			return fmt.Errorf("seed %d peers: %w", n, err)
		}
		if got, err := store.List(); err != nil || len(got) != n {
			return fmt.Errorf("seed %d peers: the store lists %d (%v)", n, len(got), err)
		}
		grow := time.Since(t0)
		b.report.notef("hosts%s: peers %d..%d seeded and repaired in %s", mode, from+1, n, grow.Round(time.Millisecond))
		deadline := time.Now().Add(10 * time.Second)
		var join, leave series
		var joinBytes, leaveBytes, joinWrites []int64
		// 5×n iterations, fewer (but at least n) if they take over 10 s.
		for i := 0; i < b.fast() && !b.stopped() && (i < b.n || time.Now().Before(deadline)); i++ {
			id := fmt.Sprintf("joiner-%d", i)
			// The hook prepares the files before the container exists.
			if err := store.Prepare(id); err != nil {
				return err
			}
			w0, c0 := procIO()
			t0 := time.Now()
			if err := store.Join(record(id, n+i)); err != nil {
				return err
			}
			join = append(join, time.Since(t0))
			w1, c1 := procIO()
			t1 := time.Now()
			if err := store.Leave(id); err != nil {
				return err
			}
			leave = append(leave, time.Since(t1))
			w2, _ := procIO()
			if err := store.Remove(id); err != nil {
				return err
			}
			joinBytes, joinWrites, leaveBytes = append(joinBytes, w1-w0), append(joinWrites, c1-c0), append(leaveBytes, w2-w1)
		}
		if len(join) == 0 {
			return nil
		}
		jb, jw, lb := medianInt(joinBytes), medianInt(joinWrites), medianInt(leaveBytes)
		b.report.add(
			newRow("hosts", fmt.Sprintf("Join with %d peers%s", n, mode), join).
				note("writes %s in %d write calls", humanBytes(jb), jw).
				field("peers", n).field("bytes_written", jb).field("write_calls", jw),
			newRow("hosts", fmt.Sprintf("Leave with %d peers%s", n, mode), leave).
				note("writes %s", humanBytes(lb)).
				field("peers", n).field("bytes_written", lb))
	}
	return nil
}

// procIO returns the bytes this process has passed to write calls and the
// number of those calls (wchar and syscw of /proc/self/io).
func procIO() (wchar, syscw int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "wchar":
			wchar = n
		case "syscw":
			syscw = n
		}
	}
	return wchar, syscw
}

func medianInt(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
