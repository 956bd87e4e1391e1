package portmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestReserveBatch queues Reserve calls while the Allocator is held, so
// that one goroutine serves them all in one batch, and checks that each
// gets what it would have got had the calls run one after the other: a
// later call sees the ports of an earlier one, an owner's removal frees
// its port for the next, and a repeat with a new label keeps the ports.
// The local port range is read once for the batch.
func TestReserveBatch(t *testing.T) {
	k := &fakeKernel{files: kernelFiles(testLo, testHi)}
	a := newTestAllocator(t, "", k)
	var rangeReads atomic.Int32
	a.readFile = func(name string) ([]byte, error) {
		if name == procPortRange {
			rangeReads.Add(1)
		}
		return k.readFile(name)
	}

	calls := []struct {
		owner, label string
		specs        []string
	}{
		{"a", "web", []string{"127.0.0.1:8080:80"}},
		{"b", "", []string{"127.0.0.1:8080:80"}}, // taken by a, earlier in the batch
		{"c", "", []string{"80"}},
		{"d", "", []string{"80"}},
		{"c", "", nil}, // c gives its port up
		{"e", "", []string{"80"}},
		{"a", "www", []string{"127.0.0.1:8080:80"}},
	}
	type result struct {
		ports []Port
		err   error
	}
	results := make([]result, len(calls))
	var wg sync.WaitGroup
	a.q.Lock()
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ms []Mapping
			if c.specs != nil {
				ms = mustParse(t, c.specs...)
			}
			ports, err := a.Reserve(c.owner, c.label, ms)
			results[i] = result{ports, err}
		}()
		// Queue the calls in order: wait for this one before the next.
		if !a.q.WaitPending(i + 1) {
			a.q.Unlock()
			t.Fatalf("call %d was not queued", i)
		}
	}
	a.q.Unlock()
	wg.Wait()

	port := func(r result) uint16 {
		if r.err != nil || len(r.ports) != 1 {
			t.Fatalf("got %v, %v; want one port", r.ports, r.err)
		}
		return r.ports[0].HostPort
	}
	if p := port(results[0]); p != 8080 {
		t.Errorf("a got %d, want 8080", p)
	}
	var ce *ConflictError
	if err := results[1].err; !errors.As(err, &ce) || ce.Owner != "a" || ce.Label != "web" {
		t.Errorf("b: %v, want a conflict with a (web)", err)
	}
	if p := port(results[2]); p != testLo {
		t.Errorf("c got %d, want %d", p, testLo)
	}
	if p := port(results[3]); p != testLo+1 {
		t.Errorf("d got %d, want %d", p, testLo+1)
	}
	if r := results[4]; r.err != nil || r.ports != nil {
		t.Errorf("c's removal: %v, %v", r.ports, r.err)
	}
	if p := port(results[5]); p != testLo {
		t.Errorf("e got %d, want %d (freed by c)", p, testLo)
	}
	if p := port(results[6]); p != 8080 {
		t.Errorf("a again got %d, want 8080", p)
	}
	if n := rangeReads.Load(); n != 1 {
		t.Errorf("the local port range was read %d times, want once for the batch", n)
	}

	// What is on disk is what the calls returned.
	owners, err := a.Owners()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(owners), 3; got != want {
		t.Errorf("owners %v, want a, d and e", owners)
	}
	for owner, want := range map[string]uint16{"a": 8080, "d": testLo + 1, "e": testLo} {
		ports, err := a.Reserved(owner)
		if err != nil || len(ports) != 1 || ports[0].HostPort != want {
			t.Errorf("%s holds %v (%v), want port %d", owner, ports, err, want)
		}
	}
	rec, err := readRecord(a.dir, "a"+recordSuffix)
	if err != nil || rec == nil || rec.Label != "www" {
		t.Errorf("a's record %+v (%v), want the label www", rec, err)
	}
}

// TestReserveBatchLockError: a batch whose flock cannot be taken fails
// every call in it, naming each owner, and a later call works again.
func TestReserveBatchLockError(t *testing.T) {
	k := &fakeKernel{files: kernelFiles(testLo, testHi)}
	a := newTestAllocator(t, "", k)
	good := a.dir
	a.dir = good + "/missing"
	errs := make([]error, 3)
	var wg sync.WaitGroup
	a.q.Lock()
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = a.Reserve(string(rune('x'+i)), "", mustParse(t, "80"))
		}()
	}
	ok := a.q.WaitPending(len(errs))
	a.q.Unlock()
	if !ok {
		t.Fatal("the calls were not queued")
	}
	wg.Wait()
	for i, err := range errs {
		owner := string(rune('x' + i))
		if err == nil || !strings.Contains(err.Error(), "reserve ports for \""+owner+"\"") {
			t.Errorf("call %d: %v, want an error naming %q", i, err, owner)
		}
	}
	a.dir = good
	if _, err := a.Reserve("x", "", mustParse(t, "80")); err != nil {
		t.Errorf("after the failed batch: %v", err)
	}
}

// TestReserveKeepsRecords: an Allocator keeps the records it read while
// no other writer changes the directory, and sees every change another
// makes: another Allocator's reservation and release (two Allocators on
// one directory, as two processes), a record removed by hand.
func TestReserveKeepsRecords(t *testing.T) {
	k := &fakeKernel{files: kernelFiles(testLo, testHi)}
	dir := t.TempDir()
	a1, a2 := newTestAllocator(t, dir, k), newTestAllocator(t, dir, k)
	reserve := func(a *Allocator, owner, spec string) error {
		t.Helper()
		_, err := a.Reserve(owner, "", mustParse(t, spec))
		return err
	}
	last := recordReads.Load()
	reads := func(what string, want int64) {
		t.Helper()
		now := recordReads.Load()
		if now-last != want {
			t.Errorf("%s: the records were read %d times, want %d", what, now-last, want)
		}
		last = now
	}

	for i, owner := range []string{"one", "two", "three"} {
		if err := reserve(a1, owner, fmt.Sprintf("127.0.0.1:%d:80", 8080+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a1.Release("three"); err != nil {
		t.Fatal(err)
	}
	// The first reading makes no watch (see fsutil.DirCache), the second does.
	reads("three reservations and a release by one Allocator", 2)

	if err := reserve(a2, "four", "127.0.0.1:8080:80"); !errors.Is(err, ErrConflict) {
		t.Errorf("another Allocator reserving one's port: %v, want a conflict", err)
	}
	if err := reserve(a2, "four", "127.0.0.1:8082:80"); err != nil {
		t.Errorf("another Allocator reserving three's released port: %v", err)
	}
	reads("the other Allocator's first reservations", 2)

	if err := reserve(a1, "five", "127.0.0.1:8082:80"); !errors.Is(err, ErrConflict) {
		t.Errorf("reserving the port the other Allocator took: %v, want a conflict", err)
	}
	reads("after the other's reservation", 1)

	if err := a2.Release("one"); err != nil {
		t.Fatal(err)
	}
	if err := reserve(a1, "five", "127.0.0.1:8080:80"); err != nil {
		t.Errorf("reserving the port the other Allocator released: %v", err)
	}
	reads("after the other's release", 1)

	if err := os.Remove(filepath.Join(dir, "two"+recordSuffix)); err != nil {
		t.Fatal(err)
	}
	if err := reserve(a1, "six", "127.0.0.1:8081:80"); err != nil {
		t.Errorf("reserving the port of a record removed by hand: %v", err)
	}
	reads("after a record was removed by hand", 1)

	if err := reserve(a1, "seven", "127.0.0.1:8083:80"); err != nil {
		t.Fatal(err)
	}
	reads("nothing changed", 0)
}
