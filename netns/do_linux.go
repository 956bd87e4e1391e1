package netns

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that is inside the namespace and returns fn's
// error. The caller's own thread never changes namespace: fn runs on a
// fresh goroutine locked to its thread, which is switched back to its
// original network namespace afterwards and given back to the Go runtime
// only then; if switching back fails, or fn left the thread in another
// mount namespace, the goroutine exits still locked and the runtime
// discards the thread.
//
// Goroutines that fn starts do not run in the namespace. fn must not call
// runtime.UnlockOSThread (Do holds two locks, so one stray unlock does no
// harm). A panic in fn is recovered on the namespace's thread, the thread
// is restored, and the panic is raised again in the caller's goroutine; a
// runtime.Goexit in fn (t.FailNow in a test) likewise ends the caller's
// goroutine.
func (n *NetNS) Do(fn func() error) error {
	if n == nil || n.f == nil {
		return fmt.Errorf("do in namespace: %w", ErrClosed)
	}
	if fn == nil {
		return fmt.Errorf("do in namespace %s: nil function: %w", n.path, ErrInvalid)
	}
	rc, err := n.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("do in namespace %s: %w", n.path, err)
	}
	return onThread(func() error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.Setns(int(fd), unix.CLONE_NEWNET) }); err != nil {
			// Control fails only when the file is closed or closing.
			return fmt.Errorf("do in namespace %s: %w", n.path, ErrClosed)
		}
		if serr != nil {
			return fmt.Errorf("do in namespace %s: setns: %w", n.path, serr)
		}
		return fn()
	})
}

// outcome is how a function run by onThread ended.
type outcome struct {
	err      error
	panicked bool
	value    any  // the panic's value
	goexit   bool // the function called runtime.Goexit
}

// onThread runs work on a fresh goroutine locked to its OS thread and puts
// the thread's network namespace back afterwards. It returns work's error,
// and re-raises its panic or Goexit in the calling goroutine.
func onThread(work func() error) error {
	ch := make(chan outcome, 1)
	go runLocked(work, ch)
	o := <-ch
	switch {
	case o.panicked:
		panic(o.value)
	case o.goexit:
		runtime.Goexit()
	}
	return o.err
}

// runLocked is the body of onThread's goroutine. It locks its thread twice
// and unlocks it only when the thread is back in the namespaces it started
// in; otherwise it returns locked, and the runtime ends the thread.
func runLocked(work func() error, ch chan<- outcome) {
	runtime.LockOSThread()
	runtime.LockOSThread()
	if unix.Gettid() == processID() {
		// This is the process's main thread. A goroutine that exits locked
		// on it does not end it but wedges it, and /proc/self/ns/net, which
		// is the main thread's, would then name the wrong namespace. Keep
		// the main thread here and run the work on another thread: while
		// this goroutine holds the lock nothing else can run on it.
		inner := make(chan outcome, 1)
		go runLocked(work, inner)
		o := <-inner
		runtime.UnlockOSThread()
		runtime.UnlockOSThread()
		ch <- o
		return
	}
	o := outcome{goexit: true} // cleared when work returns or panics
	saved, err := saveThread()
	if err != nil {
		runtime.UnlockOSThread()
		runtime.UnlockOSThread()
		ch <- outcome{err: err}
		return
	}
	// Deferred, so that it also runs when work calls runtime.Goexit.
	defer func() {
		err := saved.restore()
		if err == nil && saved.sameMount() {
			runtime.UnlockOSThread()
			runtime.UnlockOSThread()
		}
		saved.close()
		if err != nil {
			o.err = errors.Join(o.err, err)
		}
		ch <- o
	}()
	defer func() {
		if r := recover(); r != nil {
			o.panicked, o.value, o.goexit = true, r, false
		}
	}()
	o.err = work()
	o.goexit = false
}

// processID is this process's ID, which is its main thread's.
var processID = sync.OnceValue(unix.Getpid)

// threadState is what runLocked restores or checks on its thread: the
// network namespace it puts back, and the mount namespace it expects.
type threadState struct {
	net int
	mnt nsID
}

func saveThread() (*threadState, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/mnt", &st); err != nil {
		return nil, fmt.Errorf("save thread namespace: %w", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("save thread namespace: %w", err)
	}
	return &threadState{net: fd, mnt: nsID{dev: st.Dev, ino: st.Ino}}, nil
}

func (s *threadState) restore() error {
	if err := unix.Setns(s.net, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("restore thread namespace: %w", err)
	}
	return nil
}

// sameMount reports whether the thread is still in the mount namespace it
// started in (a function that unshares CLONE_NEWNS would leave it in a new
// one).
func (s *threadState) sameMount() bool {
	var st unix.Stat_t
	err := unix.Stat("/proc/thread-self/ns/mnt", &st)
	return err == nil && st.Dev == s.mnt.dev && st.Ino == s.mnt.ino
}

func (s *threadState) close() { unix.Close(s.net) }
