//go:build linux

package netns_test

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ocinet/ocinet/netns"
	"golang.org/x/sys/unix"
)

func TestDo(t *testing.T) {
	ns := openTemp(t)
	want := nsLink(t, ns.Path())
	callerThread, _ := os.Readlink("/proc/thread-self/ns/net")
	var inside string
	var links []net.Interface
	err := ns.Do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		links, err = net.Interfaces()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != want {
		t.Errorf("fn ran in %s, want %s", inside, want)
	}
	if len(links) != 1 || links[0].Name != "lo" {
		t.Errorf("links seen inside: %v, want only lo", links)
	}
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != callerThread {
		t.Errorf("caller's thread moved from %s to %s", callerThread, now)
	}
	// fn's error comes back as it is.
	sentinel := errors.New("from fn")
	if err := ns.Do(func() error { return sentinel }); err != sentinel {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := ns.Do(nil); !errors.Is(err, netns.ErrInvalid) {
		t.Errorf("Do(nil): err = %v, want ErrInvalid", err)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("Do after Close: err = %v, want ErrClosed", err)
	}
}

func TestDoPanic(t *testing.T) {
	ns := openTemp(t)
	var got any
	func() {
		defer func() { got = recover() }()
		_ = ns.Do(func() error { panic("boom") })
	}()
	if got != "boom" {
		t.Errorf("recovered %v, want the panic of fn", got)
	}
	if f := foreignThreadsSettled(); len(f) > 0 {
		t.Errorf("threads in foreign namespaces after a panic in Do: %v", f)
	}
}

func TestDoGoexit(t *testing.T) {
	ns := openTemp(t)
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ns.Do(func() error { runtime.Goexit(); return nil })
		returned = true
	}()
	<-done
	if returned {
		t.Error("Do returned after fn called runtime.Goexit; want the caller's goroutine ended")
	}
	if f := foreignThreadsSettled(); len(f) > 0 {
		t.Errorf("threads in foreign namespaces after Goexit in Do: %v", f)
	}
}

// TestDoThreadHygiene runs many Do calls at once, some failing, some
// panicking, some misbehaving (unlocking their thread, leaving it in a new
// mount namespace), and then checks that every thread of the process is in
// the process's namespaces and that the thread count stayed bounded.
func TestDoThreadHygiene(t *testing.T) {
	ns := openTemp(t)
	want := nsLink(t, ns.Path())
	before := threadCount(t)
	const workers, calls = 8, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrong []string
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				err := func() (err error) {
					defer func() {
						if r := recover(); r != nil && r != "planned" {
							panic(r)
						}
					}()
					return ns.Do(func() error {
						if got, _ := os.Readlink("/proc/thread-self/ns/net"); got != want {
							mu.Lock()
							wrong = append(wrong, got)
							mu.Unlock()
						}
						switch (w*calls + i) % 5 {
						case 1:
							return errors.New("planned")
						case 2:
							panic("planned")
						case 3:
							runtime.UnlockOSThread() // Do's second lock keeps the thread
							runtime.Gosched()
						case 4:
							if w == 0 && i < 20 {
								return unix.Unshare(unix.CLONE_NEWNS)
							}
						}
						return nil
					})
				}()
				if err != nil && err.Error() != "planned" {
					t.Errorf("Do: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if len(wrong) > 0 {
		t.Errorf("fn ran in the wrong namespace %d times: %v", len(wrong), wrong[:min(len(wrong), 5)])
	}
	if f := foreignThreadsSettled(); len(f) > 0 {
		t.Errorf("threads in foreign namespaces after %d Do calls: %v", workers*calls, f)
	}
	if after := threadCount(t); after > before+2*workers+8 {
		t.Errorf("threads grew from %d to %d over %d Do calls on %d workers", before, after, workers*calls, workers)
	}
}

func threadCount(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}
