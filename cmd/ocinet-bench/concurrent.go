package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/portmap"
)

// concurrentSection: N containers attached at once through one Manager
// (N = 1, 10, 50, 100 by default), each with a port published on 127.0.0.1
// (host port chosen by the allocator), against N times the sequential
// attach measured just before. Errors are counted, and the host is checked
// for leaks after every round.
func (b *bench) concurrentSection() error {
	m, network, err := b.manager()
	if err != nil {
		return err
	}
	mapping, err := portmap.Parse("127.0.0.1::80")
	if err != nil {
		return err
	}
	lc := leakcheck.Config{NetNSDir: b.netnsDir, StateDirs: []string{b.stateDir}}
	// Warm: the bridge and the shared chains exist before the first round.
	if _, err := b.attachRound(m, "w", 1, mapping, false); err != nil {
		return err
	}
	before, err := leakcheck.Take(lc)
	if err != nil {
		return err
	}
	largest := slices.Max(b.conc)
	for _, n := range b.conc {
		if b.stopped() {
			return nil
		}
		// The sequential baseline: a few attaches one after the other, half
		// before the concurrent round and half after it, so that a change
		// in the machine's load during the round touches both.
		k := max(2, b.n/4)
		seq, err := b.attachRound(m, fmt.Sprintf("s%d", n), min(n, k), mapping, false)
		if err != nil {
			return err
		}
		con, err := b.attachRound(m, fmt.Sprintf("c%d", n), n, mapping, true)
		if err != nil {
			return err
		}
		seq2, err := b.attachRound(m, fmt.Sprintf("t%d", n), min(n, k), mapping, false)
		if err != nil {
			return err
		}
		seq.merge(seq2)
		left, err := leakcheck.Settled(before, lc)
		if err != nil {
			return err
		}
		leaks := ours(left, network)
		if out, err := exec.Command("ip", "-o", "link", "show", "master", benchBridge).Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			leaks = append(leaks, "links still on "+benchBridge+": "+strings.TrimSpace(string(out)))
		}
		// The sequential total is N times the median sequential attach.
		seqTotal := series{time.Duration(n) * seq.attach.median()}
		seqDetach := series{time.Duration(n) * seq.detach.median()}
		wall := newRow("concurrent", fmt.Sprintf("%d at once: Attach wall", n), series{con.attachWall}).
			against(fmt.Sprintf("%d x sequential Attach", n), seqTotal).
			note("errors %d, leaks %d", con.errors, len(leaks)).
			field("errors", con.errors).field("leaks", leaks).field("duplicate_ips", con.duplicates)
		if n == largest && n >= 100 {
			wall = wall.goal(0.5)
			if con.errors > 0 || len(leaks) > 0 {
				f := false
				wall.Met = &f
			}
		}
		if con.duplicates > 0 {
			wall = wall.note("%d duplicate addresses", con.duplicates)
		}
		b.report.add(wall,
			newRow("concurrent", fmt.Sprintf("%d at once: each Attach", n), con.attach).
				against("sequential Attach", seq.attach).
				note("plugin run %.1f ms on average (sequential %.1f); plugins used %.1f CPUs (sequential %.1f)",
					ms(con.pluginAvg), ms(seq.pluginAvg), cores(con.childCPU, con.attachWall), cores(seq.childCPU, seq.attachWall)),
			newRow("concurrent", fmt.Sprintf("%d at once: Detach wall", n), series{con.detachWall}).
				against(fmt.Sprintf("%d x sequential Detach", n), seqDetach))
		if len(con.firstErrs) > 0 {
			b.report.notef("concurrent, %d at once: errors: %s", n, strings.Join(con.firstErrs, "; "))
		}
		if len(leaks) > 0 {
			b.report.notef("concurrent, %d at once: left behind: %s", n, strings.Join(leaks, "; "))
		}
	}
	return nil
}

// cores is how many CPUs were busy on average: cpu time over wall time.
func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(cpu) / float64(wall)
}

// round is one batch of attaches and detaches.
type round struct {
	attach, detach         series
	attachWall, detachWall time.Duration
	errors, duplicates     int
	firstErrs              []string
	pluginAvg              time.Duration
	// childCPU is the CPU time the plugins and the tools they ran used
	// during the attaches.
	childCPU time.Duration
}

// childrenCPU returns the user and system time of the waited-for children
// of this process so far.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// merge adds o's sequential timings to r's.
func (r *round) merge(o *round) {
	r.attach = append(r.attach, o.attach...)
	r.detach = append(r.detach, o.detach...)
	r.childCPU += o.childCPU
	r.attachWall += o.attachWall
	if n := len(r.attach); n > 0 {
		r.pluginAvg = (r.pluginAvg*time.Duration(n-len(o.attach)) + o.pluginAvg*time.Duration(len(o.attach))) / time.Duration(n)
	}
}

// attachRound attaches n namespaces, at once or one after the other, then
// detaches them the same way, and removes the namespaces. Each of during
// runs while all n are attached, before the detaches.
func (b *bench) attachRound(m *ocinet.Manager, tag string, n int, mapping portmap.Mapping, concurrent bool, during ...func() error) (*round, error) {
	type slot struct {
		id, ns string
		rm     func()
		a      *ocinet.Attachment
		err    error
		d      time.Duration
	}
	slots := make([]*slot, n)
	defer func() {
		for _, s := range slots {
			if s != nil {
				_ = m.Detach(b.ctx, s.id) // a no-op unless the round was cut short
				s.rm()
			}
		}
	}()
	for i := range slots {
		id := fmt.Sprintf("%s%s-%d", idPrefix, tag, i)
		ns, rm, err := b.newNS(id)
		if err != nil {
			return nil, err
		}
		slots[i] = &slot{id: id, ns: ns, rm: rm}
	}
	r := &round{}
	each := func(op func(s *slot) error) time.Duration {
		start := time.Now()
		if !concurrent {
			for _, s := range slots {
				if b.stopped() {
					break
				}
				t0 := time.Now()
				s.err = op(s)
				s.d = time.Since(t0)
			}
			return time.Since(start)
		}
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for _, s := range slots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				t0 := time.Now()
				s.err = op(s)
				s.d = time.Since(t0)
			}()
		}
		start = time.Now()
		close(gate)
		wg.Wait()
		return time.Since(start)
	}
	collect := func(into *series) {
		for _, s := range slots {
			if s.err != nil {
				r.errors++
				if len(r.firstErrs) < 3 {
					r.firstErrs = append(r.firstErrs, s.err.Error())
				}
			} else if s.d > 0 {
				*into = append(*into, s.d)
			}
			s.err, s.d = nil, 0
		}
	}
	b.exec.take()
	cpu0 := childrenCPU()
	r.attachWall = each(func(s *slot) (err error) {
		s.a, err = m.Attach(b.ctx, ocinet.AttachRequest{ID: s.id, NetNS: s.ns, Ports: []portmap.Mapping{mapping}})
		return err
	})
	r.childCPU = childrenCPU() - cpu0
	plugins, runs := b.exec.take()
	if runs > 0 {
		r.pluginAvg = plugins / time.Duration(runs)
	}
	collect(&r.attach)
	seen := map[netip.Addr]bool{}
	for _, s := range slots {
		if s.a == nil || len(s.a.Interfaces) == 0 || len(s.a.Interfaces[0].IPs) == 0 {
			continue
		}
		ip := s.a.Interfaces[0].IPs[0].Addr()
		if seen[ip] {
			r.duplicates++
		}
		seen[ip] = true
	}
	for _, f := range during {
		if err := f(); err != nil {
			return nil, err
		}
	}
	r.detachWall = each(func(s *slot) error { return m.Detach(b.ctx, s.id) })
	collect(&r.detach)
	if !concurrent && r.errors > 0 {
		return nil, errors.New(strings.Join(r.firstErrs, "; "))
	}
	return r, nil
}

// ours keeps the leaks that are this run's: ones that name its IDs, its
// bridge, its directories or an address of its subnet. The host is shared;
// other users' changes between the two looks are not counted.
func ours(leaks []string, network *ocinet.Network) []string {
	var out []string
	for _, l := range leaks {
		mine := strings.Contains(l, idPrefix) || strings.Contains(l, benchBridge) || strings.Contains(l, "/ocibench-")
		for _, p := range network.Subnets {
			for _, f := range strings.FieldsFunc(l, func(r rune) bool { return !(r == '.' || r >= '0' && r <= '9') }) {
				if a, err := netip.ParseAddr(f); err == nil && p.Contains(a) {
					mine = true
				}
			}
		}
		if mine {
			out = append(out, l)
		}
	}
	return out
}
