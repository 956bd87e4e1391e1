//go:build linux

package netns_test

// Benchmarks, as pairs measured in one run:
//
//	go test -run '^$' -bench . -benchtime 200x ./netns/
//
// BenchmarkCreateRemove against BenchmarkIPNetnsAddDel: a persistent
// namespace made and removed in process, against `ip netns add` and
// `ip netns del`.
//
// BenchmarkDo against BenchmarkLockedGoroutine (the floor: a fresh
// goroutine that locks its thread and hands back a result) and
// BenchmarkNsenter (running a command in the namespace from a shell).
//
// BenchmarkHold: starting a holder and releasing it, a process start and
// reap, against BenchmarkNsenter's.
//
// BenchmarkRemoveStackedMounts against BenchmarkCreateRemove: removing a
// namespace file that racing tools left mounted three times (each lazy
// unmount leaves it busy until the last is off).

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

func BenchmarkCreateRemove(b *testing.B) { createRemove(b, 0) }

func BenchmarkRemoveStackedMounts(b *testing.B) { createRemove(b, 2) }

// createRemove creates and removes a namespace b.N times, with extra bind
// mounts stacked on its file before each removal.
func createRemove(b *testing.B, extra int) {
	dir := testDir(b)
	prefix := name(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		path, err := netns.Create(dir, fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < extra; j++ {
			if err := unix.Mount(path, path, "none", unix.MS_BIND, ""); err != nil {
				b.Fatal(err)
			}
		}
		if err := netns.Remove(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIPNetnsAddDel(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireTools(b, "ip")
	prefix := name(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := fmt.Sprintf("%s-%d", prefix, i)
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			b.Fatalf("ip netns add: %v: %s", err, out)
		}
		if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
			b.Fatalf("ip netns del: %v: %s", err, out)
		}
	}
}

func BenchmarkDo(b *testing.B) {
	ns := openTemp(b)
	fn := func() error { return nil }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ns.Do(fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockedGoroutine(b *testing.B) {
	fn := func() error { return nil }
	for i := 0; i < b.N; i++ {
		ch := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			err := fn()
			runtime.UnlockOSThread()
			ch <- err
		}()
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNsenter(b *testing.B) {
	testenv.RequireTools(b, "nsenter", "true")
	ns := openTemp(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command("nsenter", "--net="+ns.Path(), "true").CombinedOutput(); err != nil {
			b.Fatalf("nsenter: %v: %s", err, out)
		}
	}
}

func BenchmarkHold(b *testing.B) {
	ns := openTemp(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, release, err := netns.Hold(ctx, ns.Path())
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}
