package inproc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/google/go-cmp/cmp"
)

// batchConf is a host-local config of a small subnet whose leases live in
// dataDir.
func batchConf(t *testing.T, dataDir string) *allocator.IPAMConfig {
	t.Helper()
	conf, err := ipamConfig(fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"inp-batch","type":"bridge",
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.218.0.0/28"}]]}}`, dataDir), "")
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// batchStep is one call of TestLeaseBatch and what it gave.
type batchStep struct {
	kind leaseKind
	id   string
}

// runSteps runs steps on conf, in one batch when together is set (the
// queue held while they are queued, in order), else one after the other,
// and returns what each gave, as text.
func runSteps(t *testing.T, conf *allocator.IPAMConfig, steps []batchStep, together bool) []string {
	t.Helper()
	calls := make([]*leaseCall, len(steps))
	for i, s := range steps {
		calls[i] = &leaseCall{kind: s.kind, conf: conf, id: s.id, ifName: "eth0"}
	}
	st := leaseDirOf(conf)
	q := &st.q
	if together {
		var wg sync.WaitGroup
		q.Lock()
		for i, c := range calls {
			wg.Add(1)
			go func() { defer wg.Done(); q.Do(c, st.serve) }()
			if !q.WaitPending(i + 1) {
				q.Unlock()
				t.Fatalf("call %d was not queued", i)
			}
		}
		q.Unlock()
		wg.Wait()
	} else {
		for _, c := range calls {
			q.Do(c, st.serve)
		}
	}
	out := make([]string, len(calls))
	for i, c := range calls {
		var parts []string
		for _, ip := range c.ips {
			parts = append(parts, ip.Address.String())
		}
		for _, ip := range c.held {
			parts = append(parts, "held "+ip.String())
		}
		if c.err != nil {
			parts = append(parts, "error: "+strings.ReplaceAll(c.err.Error(), conf.DataDir, "DATADIR"))
		}
		out[i] = strings.Join(parts, " ")
	}
	return out
}

// dirContents returns every file of dir and what it holds.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestLeaseBatch runs the same calls in one batch and one after the
// other, each on its own lease directory, and checks that every call gave
// the same and that the directories end the same: a lease taken earlier
// in the batch is seen by a later call (a second lease of one interface is
// refused), a release frees its address, a release finds a lease file in
// host-local's older format (the container ID alone), and the subnet's
// exhaustion is reported.
func TestLeaseBatch(t *testing.T) {
	steps := []batchStep{
		{leaseAdd, "a"}, {leaseAdd, "b"}, {leaseAdd, "a"}, {leaseFind, "a"},
		{leaseRelease, "a"}, {leaseFind, "a"}, {leaseAdd, "c"}, {leaseRelease, "old"},
		{leaseFind, "old"}, {leaseRelease, "nobody"},
	}
	// The /28 has 13 addresses to give; the stale file of "old" holds one.
	for i := range 12 {
		steps = append(steps, batchStep{leaseAdd, fmt.Sprintf("fill%d", i)})
	}
	steps = append(steps, batchStep{leaseFind, "fill11"}, batchStep{leaseRelease, "b"}, batchStep{leaseAdd, "d"})

	var results [2][]string
	var dirs [2]map[string]string
	for k, together := range []bool{false, true} {
		conf := batchConf(t, t.TempDir())
		dir := leaseDir(conf)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "10.218.0.14"), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		results[k] = runSteps(t, conf, steps, together)
		dirs[k] = dirContents(t, dir)
	}
	if diff := cmp.Diff(results[0], results[1]); diff != "" {
		t.Errorf("results (-one after the other +in one batch):\n%s", diff)
	}
	if diff := cmp.Diff(dirs[0], dirs[1]); diff != "" {
		t.Errorf("lease directory (-one after the other +in one batch):\n%s", diff)
	}
	// And what they gave is host-local's.
	want := map[int]string{
		0: "10.218.0.2/28", 1: "10.218.0.3/28", 3: "held 10.218.0.2", 5: "", 6: "10.218.0.4/28",
		7: "", 8: "", 9: "",
	}
	for i, w := range want {
		if results[1][i] != w {
			t.Errorf("step %d (%v %s): %q, want %q", i, steps[i].kind, steps[i].id, results[1][i], w)
		}
	}
	if r := results[1][2]; !strings.Contains(r, "duplicate allocation") {
		t.Errorf("a second lease of a: %q, want host-local's duplicate error", r)
	}
	if r := results[1][len(steps)-4]; !strings.Contains(r, "no free address") {
		t.Errorf("the last fill: %q, want the subnet exhausted", r)
	}
	if r := results[1][len(steps)-1]; r != "10.218.0.3/28" {
		t.Errorf("d: %q, want b's address, freed", r)
	}
	var leases []string
	for name := range dirs[1] {
		if !strings.HasPrefix(name, "last_reserved_ip") && name != "lock" {
			leases = append(leases, name)
		}
	}
	slices.Sort(leases)
	if len(leases) != 13 {
		t.Errorf("leases left %v", leases)
	}
}

// TestLeasesAtOnce: 40 goroutines lease from one subnet at once, then
// release at once: every address is given once, each lease file names its
// holder, and nothing is left.
func TestLeasesAtOnce(t *testing.T) {
	conf, err := ipamConfig(fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"inp-batch","type":"bridge",
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.218.0.0/24"}]]}}`, t.TempDir()), "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	addrs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ips, err := lease(conf, fmt.Sprint("c", i), "eth0")
			if err == nil {
				addrs[i] = ips[0].Address.IP.String()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i, a := range addrs {
		if errs[i] != nil {
			t.Fatalf("c%d: %v", i, errs[i])
		}
		if j, dup := seen[a]; dup {
			t.Errorf("%s given to c%d and c%d", a, j, i)
		}
		seen[a] = i
		b, err := os.ReadFile(filepath.Join(leaseDir(conf), a))
		if err != nil || string(b) != fmt.Sprint("c", i)+"\r\neth0" {
			t.Errorf("lease file of %s: %q, %v", a, b, err)
		}
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = releaseLease(conf, fmt.Sprint("c", i), "eth0")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("release c%d: %v", i, err)
		}
	}
	for name := range dirContents(t, leaseDir(conf)) {
		if !strings.HasPrefix(name, "last_reserved_ip") && name != "lock" {
			t.Errorf("left %s", name)
		}
	}
}

// TestLeaseIndexFollowsTheDirectory: the index of a lease directory is
// kept from one batch to the next while nothing else changes the
// directory (no reading of it), and every change made from outside is
// seen by the next call: a lease removed, a lease written, a lease
// rewritten in place, the directory or its parent replaced, the directory
// removed (TestLeaseIndexSeesHostLocal has host-local's binary write a
// lease). A directory holding a subdirectory is read each time.
func TestLeaseIndexFollowsTheDirectory(t *testing.T) {
	conf := batchConf(t, t.TempDir())
	dir := leaseDir(conf)
	call := func(kind leaseKind, id string) *leaseCall {
		t.Helper()
		c := &leaseCall{kind: kind, conf: conf, id: id, ifName: "eth0"}
		leaseDirOf(conf).do(c)
		if c.err != nil {
			t.Fatalf("%v %s: %v", kind, id, c.err)
		}
		return c
	}
	held := func(id string) []string {
		t.Helper()
		var out []string
		for _, ip := range call(leaseFind, id).held {
			out = append(out, ip.String())
		}
		return out
	}
	// step checks that what ran between it and the previous step read the
	// directory reads times.
	last := dirReads.Load()
	step := func(what string, reads int64) {
		t.Helper()
		now := dirReads.Load()
		if now-last != reads {
			t.Errorf("%s: the directory was read %d times, want %d", what, now-last, reads)
		}
		last = now
	}

	a := call(leaseAdd, "a").ips[0].Address.IP.String()
	b := call(leaseAdd, "b").ips[0].Address.IP.String()
	if got := held("a"); !slices.Equal(got, []string{a}) {
		t.Fatalf("a holds %v, want %s", got, a)
	}
	// The first reading makes no watch (see fsutil.DirCache), the second does.
	step("two leases and a lookup", 2)

	if err := os.Remove(filepath.Join(dir, a)); err != nil {
		t.Fatal(err)
	}
	if got := held("a"); got != nil {
		t.Errorf("a holds %v after its file was removed", got)
	}
	step("a lease removed from outside", 1)

	if err := os.WriteFile(filepath.Join(dir, "10.218.0.9"), []byte("z\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := held("z"); !slices.Equal(got, []string{"10.218.0.9"}) {
		t.Errorf("z holds %v, want the lease written from outside", got)
	}
	step("a lease written from outside", 1)

	if err := os.WriteFile(filepath.Join(dir, b), []byte("y\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := held("b"); got != nil {
		t.Errorf("b holds %v after its file was rewritten for y", got)
	}
	if got := held("y"); !slices.Equal(got, []string{b}) {
		t.Errorf("y holds %v, want %s", got, b)
	}
	step("a lease rewritten in place", 1)

	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10.218.0.12"), []byte("w\r\neth0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := held("w"); !slices.Equal(got, []string{"10.218.0.12"}) {
		t.Errorf("w holds %v in the new directory", got)
	}
	if got := held("y"); got != nil {
		t.Errorf("y holds %v, which only the old directory has", got)
	}
	step("the directory replaced", 1)

	// The parent renamed: the watched directory itself did not move, but
	// its path names another one now.
	if err := os.Rename(conf.DataDir, conf.DataDir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := held("w"); got != nil {
		t.Errorf("w holds %v, which only the old parent has", got)
	}
	step("the parent replaced", 1)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	c := call(leaseAdd, "c").ips[0].Address.IP.String()
	if got := held("c"); !slices.Equal(got, []string{c}) {
		t.Errorf("c holds %v, want %s", got, c)
	}
	step("the directory removed", 1)

	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	held("c")
	held("c")
	step("two lookups in a directory with a subdirectory", 2)
}

// TestLeaseIndexNoWatchForOneContainer: a lease, then the lookup and
// release of a Detach (what a createRuntime and a poststop hook do, each
// in a process of its own) make no inotify watch, whose removal a process
// would wait for at its exit; a second lease does.
func TestLeaseIndexNoWatchForOneContainer(t *testing.T) {
	conf := batchConf(t, t.TempDir())
	st := leaseDirOf(conf)
	for _, kind := range []leaseKind{leaseFind, leaseRelease} {
		c := &leaseCall{kind: kind, conf: conf, id: "a", ifName: "eth0"}
		st.do(c)
		if c.err != nil {
			t.Fatal(c.err)
		}
		if st.index.Watching() {
			t.Fatalf("a watch after the Detach's %v", kind)
		}
	}
	if _, err := lease(conf, "a", "eth0"); err != nil {
		t.Fatal(err)
	}
	if !st.index.Watching() {
		t.Error("no watch after a second reading")
	}
}
