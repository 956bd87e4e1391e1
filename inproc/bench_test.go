package inproc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/portmap"
)

// benchPair times, in every iteration, one Attach and one Detach through the
// plugin binaries and one through inproc on the same network, in
// alternating order, and reports the medians (ms) and their ratios
// (inproc / plugins):
//
//	scripts/isolated.sh go test -run '^$' -bench . -benchtime 30x ./inproc/
func benchPair(b *testing.B, e *env, network string, ports []portmap.Mapping) {
	ctx := context.Background()
	path := newNS(b)
	run := func(m *ocinet.Manager, id string) (att, det time.Duration) {
		t0 := time.Now()
		if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: id, NetNS: path, Networks: []string{network}, Ports: ports}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Detach(ctx, id); err != nil {
			b.Fatal(err)
		}
		return t1.Sub(t0), time.Since(t1)
	}
	// Warm up both sides once: the bridge and the shared chains exist.
	run(e.plug, "bench-warm-p")
	run(e.native, "bench-warm-n")
	var pa, pd, na, nd, pt, nt []time.Duration
	for i := 0; b.Loop(); i++ {
		first, second := e.plug, e.native
		if i%2 == 1 {
			first, second = second, first
		}
		a1, d1 := run(first, fmt.Sprintf("bench-%d-a", i))
		a2, d2 := run(second, fmt.Sprintf("bench-%d-b", i))
		if i%2 == 1 {
			a1, d1, a2, d2 = a2, d2, a1, d1
		}
		pa, pd, na, nd = append(pa, a1), append(pd, d1), append(na, a2), append(nd, d2)
		pt, nt = append(pt, a1+d1), append(nt, a2+d2)
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(median(pa)), "plugins-attach-ms")
	b.ReportMetric(ms(median(pd)), "plugins-detach-ms")
	b.ReportMetric(ms(median(na)), "inproc-attach-ms")
	b.ReportMetric(ms(median(nd)), "inproc-detach-ms")
	b.ReportMetric(ms(median(na))/ms(median(pa)), "attach-ratio")
	b.ReportMetric(ms(median(nd))/ms(median(pd)), "detach-ratio")
	b.ReportMetric(ms(median(nt))/ms(median(pt)), "total-ratio")
}

// nerdctlDefault writes nerdctl's default network with its bridge and
// its subnet's first three octets ("10.216.40.") replaced.
func nerdctlDefault(b *testing.B, e *env, bridge, prefix string) *ocinet.Network {
	b.Helper()
	fixture, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "nerdctl-bridge.conflist"))
	if err != nil {
		b.Fatal(err)
	}
	conf := strings.ReplaceAll(strings.ReplaceAll(string(fixture), "nerdctl0", bridge), "10.4.0.", prefix)
	return e.writeNetwork("nerdctl-bridge.conflist", []byte(conf))
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkDefaultNetwork: nerdctl's default network (bridge, portmap,
// firewall, tuning, all in process) with one published port.
func BenchmarkDefaultNetwork(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	n := nerdctlDefault(b, e, "inpbench0", "10.216.40.")
	p, err := portmap.Parse("127.0.0.1:18490:80")
	if err != nil {
		b.Fatal(err)
	}
	benchPair(b, e, n.Name, []portmap.Mapping{p})
}

// BenchmarkDefaultNetwork20Ports: the same with 20 published ports (one
// -p range): still one nftables transaction per ADD and per DEL.
func BenchmarkDefaultNetwork20Ports(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	n := nerdctlDefault(b, e, "inpbench20", "10.216.43.")
	p, err := portmap.Parse("18500-18519:8000-8019")
	if err != nil {
		b.Fatal(err)
	}
	benchPair(b, e, n.Name, []portmap.Mapping{p})
}

// BenchmarkAttach100: 100 containers attach at once through inproc to the
// default network (one published port each, one Manager), then 100 one
// after the other; reports both walls (ms), errors, and duplicate
// addresses; the leak check runs when it ends.
func BenchmarkAttach100(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	n := wideDefault(b, e, "inpb100", "10.217.")
	const count = 100
	paths := make([]string, count)
	for i := range paths {
		paths[i] = newNS(b)
	}
	ctx := context.Background()
	round := func(tag string, parallel bool) (time.Duration, int, int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := 0
		seen := map[string]bool{}
		dups := 0
		one := func(i int) {
			p, err := portmap.Parse(fmt.Sprintf("127.0.0.1:%d:80", 18600+i))
			if err == nil {
				var a *ocinet.Attachment
				a, err = e.native.Attach(ctx, ocinet.AttachRequest{ID: fmt.Sprintf("b100-%s-%d", tag, i), NetNS: paths[i], Networks: []string{n.Name}, Ports: []portmap.Mapping{p}})
				if err == nil {
					mu.Lock()
					for _, ifc := range a.Interfaces {
						for _, ip := range ifc.IPs {
							if seen[ip.String()] {
								dups++
							}
							seen[ip.String()] = true
						}
					}
					mu.Unlock()
				}
			}
			if err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				b.Errorf("attach %d: %v", i, err)
			}
		}
		t0 := time.Now()
		for i := range count {
			if parallel {
				wg.Add(1)
				go func() { defer wg.Done(); one(i) }()
			} else {
				one(i)
			}
		}
		wg.Wait()
		wall := time.Since(t0)
		for i := range count {
			if err := e.native.Detach(ctx, fmt.Sprintf("b100-%s-%d", tag, i)); err != nil {
				b.Errorf("detach %d: %v", i, err)
			}
		}
		return wall, errs, dups
	}
	round("warm", false)
	var par, seq []time.Duration
	errs, dups := 0, 0
	for i := 0; b.Loop(); i++ {
		w, e1, d1 := round(fmt.Sprintf("p%d", i), true)
		w2, e2, d2 := round(fmt.Sprintf("s%d", i), false)
		par, seq = append(par, w), append(seq, w2)
		errs, dups = errs+e1+e2, dups+d1+d2
	}
	b.ReportMetric(float64(median(par))/1e6, "at-once-wall-ms")
	b.ReportMetric(float64(median(seq))/1e6, "sequential-wall-ms")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(float64(dups), "duplicate-addresses")
}

// BenchmarkFloor: a network of bridge and tuning only (with the loopback
// the Manager always runs): everything in process, no port; the floor of
// what inproc costs.
func BenchmarkFloor(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	conf := strings.ReplaceAll(strings.ReplaceAll(manyConf, "inpmany0", "inpfloor0"), "10.216.20.", "10.216.41.")
	n := e.writeNetwork("inp-many.conflist", []byte(conf))
	benchPair(b, e, n.Name, nil)
}

// BenchmarkSteps reports where the time of an in-process Attach and Detach
// of nerdctl's default network with one published port goes: each plugin call (through the executor) and
// each named step of the bridge (from the step hook; a step's time is the
// time since the step before it), as mean ms per attachment. The bridge's
// masquerade check, lease and veth pair run at the same time, so their
// time is all under "network"; "veth" and "lease" follow at once.
func BenchmarkSteps(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	n := nerdctlDefault(b, e, "inpsteps0", "10.216.42.")
	mapping, err := portmap.Parse("127.0.0.1:18491:80")
	if err != nil {
		b.Fatal(err)
	}
	tm := map[string]time.Duration{}
	var mu sync.Mutex
	last := time.Now()
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(e.lockDir), inproc.WithStepHook(func(s string) {
		mu.Lock()
		tm["step "+strings.TrimPrefix(s, "inproc:")] += time.Since(last)
		last = time.Now()
		mu.Unlock()
	}))
	if err != nil {
		b.Fatal(err)
	}
	m := e.manager(b.TempDir(), &timedExec{Exec: x, mu: &mu, tm: tm, last: &last})
	ctx := context.Background()
	attach := func(id string) {
		// A fresh namespace each round, as each container has: lo is
		// down and the veth's peer name is free.
		path, err := netns.Create("", "")
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			if err := netns.Remove(path); err != nil {
				b.Errorf("remove namespace: %v", err)
			}
		}()
		t0 := time.Now()
		if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: id, NetNS: path, Networks: []string{n.Name}, Ports: []portmap.Mapping{mapping}}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Detach(ctx, id, ocinet.NamespaceEnds()); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		tm["Attach"] += t1.Sub(t0)
		tm["Detach"] += time.Since(t1)
		mu.Unlock()
	}
	attach("steps-warm")
	clear(tm)
	iters := 0
	for i := 0; b.Loop(); i++ {
		attach(fmt.Sprintf("steps-%d", i))
		iters++
	}
	for k, v := range tm {
		b.ReportMetric(float64(v)/1e6/float64(iters), strings.ReplaceAll(k, " ", "_")+"-ms")
	}
}

// timedExec adds each plugin call's time to tm under "COMMAND:plugin", and
// marks its start for the step hook.
type timedExec struct {
	invoke.Exec
	mu   *sync.Mutex
	tm   map[string]time.Duration
	last *time.Time
}

// WaitsForGate: the in-process executor underneath waits for the
// Manager's gate (inproc.WithGate) itself.
func (t *timedExec) WaitsForGate() bool { return true }

func (t *timedExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	t0 := time.Now()
	t.mu.Lock()
	*t.last = t0
	t.mu.Unlock()
	out, err := t.Exec.ExecPlugin(ctx, path, stdin, environ)
	cmd := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			cmd = v
		}
	}
	t.mu.Lock()
	t.tm[cmd+":"+filepath.Base(path)] += time.Since(t0)
	t.mu.Unlock()
	return out, err
}

// wideDefault writes nerdctl's default network with its bridge and a /16
// subnet (prefix is its first two octets, "10.217.") for a hundred
// containers and more.
func wideDefault(t testing.TB, e *env, bridge, prefix string) *ocinet.Network {
	t.Helper()
	fixture, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "nerdctl-bridge.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(strings.ReplaceAll(string(fixture), "nerdctl0", bridge), "10.4.0.0/24", prefix+"0.0/16")
	conf = strings.ReplaceAll(conf, "10.4.0.1", prefix+"0.1")
	return e.writeNetwork("nerdctl-bridge.conflist", []byte(conf))
}
