package ocinettest

import (
	"context"
	"fmt"
	"sync"

	cnitypes "github.com/containernetworking/cni/pkg/types"
)

// Action is what an injected fault does to the calls it matches.
type Action int

const (
	// Fail makes the call return Fault.Err.
	Fail Action = iota
	// Crash stops the caller before the plugin runs, as if the process
	// that ran it had been killed (see [Crashed]).
	Crash
	// CrashAfter lets the plugin do its work (an address is taken) and
	// then stops the caller before it sees the answer.
	CrashAfter
	// Hold makes the call wait until [Injection.Release] (it then goes on
	// as if nothing happened), [Injection.Crash] (it then crashes as with
	// Crash), or the end of the caller's context (it then fails with the
	// context's error).
	Hold
)

// FaultCode is the CNI error code of a failure injected without an Err of
// its own (plugin-specific codes start at 100).
const FaultCode = 199

// Fault chooses plugin calls and says what happens to them. Empty match
// fields match anything.
type Fault struct {
	// Command is the CNI command: ADD, DEL, CHECK, GC, STATUS.
	Command string
	// Plugin is the plugin type, such as "bridge" or "portmap".
	Plugin string
	// Network is the network's name.
	Network string
	// ContainerID is the CNI container ID (an attachment's ID).
	ContainerID string
	// IfName is the interface name, such as "eth0".
	IfName string
	// After lets this many matching calls pass first (default 0).
	After int
	// Times is how many matching calls the fault acts on (default 0:
	// every one after the first After).
	Times int
	// Action is what it does (default Fail).
	Action Action
	// Err is the error a Fail returns. A *types.Error from the CNI library
	// stands for a plugin that failed and said why, and reaches callers of
	// the Manager wrapped with ocinet.ErrPlugin; any other error stands for
	// a plugin that could not be run. Default: a *types.Error with
	// FaultCode.
	Err error
}

// Injection is a fault given to [FakeCNI.Inject].
type Injection struct {
	fault Fault

	mu      sync.Mutex
	seen    int // matching calls so far
	acted   int
	reached chan struct{}
	release chan struct{}
	crash   bool
	once    sync.Once
}

// Inject adds a fault. Faults are tried in the order they were injected;
// the first whose fields match a call and that still has a turn acts on it.
func (f *FakeCNI) Inject(ft Fault) *Injection {
	inj := &Injection{fault: ft, reached: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, inj)
	return inj
}

// ClearFaults removes every injected fault; calls that a Hold fault holds
// go on.
func (f *FakeCNI) ClearFaults() {
	f.mu.Lock()
	faults := f.faults
	f.faults = nil
	f.mu.Unlock()
	for _, inj := range faults {
		inj.Release()
	}
}

// match returns the injection that acts on c, counting the call. The
// caller holds f.mu.
func (f *FakeCNI) match(c Call) *Injection {
	for _, inj := range f.faults {
		if inj.matches(c) && inj.take() {
			return inj
		}
	}
	return nil
}

func (inj *Injection) matches(c Call) bool {
	ft := inj.fault
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(ft.Command, c.Command) && eq(ft.Plugin, c.Plugin) && eq(ft.Network, c.Network) &&
		eq(ft.ContainerID, c.ContainerID) && eq(ft.IfName, c.IfName)
}

// take counts a matching call and reports whether the fault acts on it.
func (inj *Injection) take() bool {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	n := inj.seen
	inj.seen++
	if n < inj.fault.After || (inj.fault.Times > 0 && n >= inj.fault.After+inj.fault.Times) {
		return false
	}
	inj.acted++
	inj.once.Do(func() { close(inj.reached) })
	return true
}

// Hits returns how many calls the fault has acted on.
func (inj *Injection) Hits() int {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	return inj.acted
}

// Reached is closed when the fault acts for the first time: for Hold, a
// call is then waiting.
func (inj *Injection) Reached() <-chan struct{} { return inj.reached }

// Release lets the calls a Hold fault holds (and will hold) go on.
func (inj *Injection) Release() {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	select {
	case <-inj.release:
	default:
		close(inj.release)
	}
}

// Crash makes the calls a Hold fault holds (and will hold) crash their
// callers, as Crash does.
func (inj *Injection) Crash() {
	inj.mu.Lock()
	inj.crash = true
	inj.mu.Unlock()
	inj.Release()
}

func (inj *Injection) err(c Call) error {
	if inj.fault.Err != nil {
		return inj.fault.Err
	}
	return cnitypes.NewError(FaultCode, fmt.Sprintf("ocinettest: injected failure at %s of %s", c.Command, c.Plugin), "")
}

// hold waits for Release, Crash or the end of ctx.
func (inj *Injection) hold(ctx context.Context, c Call) error {
	select {
	case <-inj.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	inj.mu.Lock()
	crash := inj.crash
	inj.mu.Unlock()
	if crash {
		panic(crashSignal{c})
	}
	return nil
}

// crashSignal unwinds the goroutine that made a call a fault crashes; see
// Crashed.
type crashSignal struct{ call Call }

func (s crashSignal) String() string {
	return fmt.Sprintf("ocinettest: a crash fault fired at %s of %s for %q outside ocinettest.Crashed", s.call.Command, s.call.Plugin, s.call.ContainerID)
}

func (s crashSignal) Error() string { return s.String() }

// Crashed runs fn and reports whether a crash fault (Crash, CrashAfter, or
// a held call told to Crash) cut it off. A crash unwinds fn's goroutine
// from inside the plugin call: deferred calls run, so the file locks that
// fn held are released, as the kernel releases a killed process's locks;
// nothing else runs, so the journal, port reservations and hosts records
// stay as the crash left them. That is the state a restarted process (a
// new Manager on the same state root, see [Env.NewManager]) finds.
//
// A crash fault that fires outside Crashed panics with a message that says
// so. Other panics pass through.
func Crashed(fn func()) (crashed bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashSignal); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	fn()
	return false
}
