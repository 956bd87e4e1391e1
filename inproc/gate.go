package inproc

import (
	"context"
	"errors"
	"sync"
)

type gateKey struct{}

// WithGate returns a context under which an ADD makes nothing of the
// container's before wait returns nil: no link, lease or set element,
// nothing in its namespace but lo. The in-process bridge reads its config,
// opens the namespaces and makes or checks what the network shares (the
// bridge, its gateway address, its masquerade rules) first, then waits;
// every other plugin, in process or binary, waits before it starts, except
// the loopback, which does not wait at all. If wait fails, the ADD fails
// with its error and has made nothing of the container's.
//
// This lets a caller write what it must have on disk before an ADD leaves
// anything behind (a journal record) while the ADD gets going. wait may be
// called more than once and from more than one goroutine: each call after
// the first must return the first's result at once (sync.OnceValue).
func WithGate(ctx context.Context, wait func() error) context.Context {
	return context.WithValue(ctx, gateKey{}, wait)
}

// Wait calls the function WithGate put in ctx, if any. A caller that runs
// an ADD other than through an Exec (a plugin binary) calls it first.
func Wait(ctx context.Context) error {
	if wait, ok := ctx.Value(gateKey{}).(func() error); ok {
		return wait()
	}
	return nil
}

// WaitsForGate reports that e honours WithGate, for a caller that wraps
// executors and must otherwise wait for the gate itself before an ADD.
func (e *Exec) WaitsForGate() bool { return true }

type unfinishedKey struct{}

// Unfinished is the work that in-process ADDs run under a context from
// WithUnfinished left to finish after they returned their result.
type Unfinished struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	err    error // errs joined
	joined int   // how many of errs err joins
}

// WithUnfinished returns a context under which the in-process bridge's ADD
// returns its result as soon as the container's interface exists, its
// address is leased and its port is on the bridge, and configures the
// interface (addresses, routes, link up) and the port (hairpin mode) on
// another goroutine. The chain's in-process portmap and firewall ADDs,
// which change only the host's nftables table, run meanwhile; every other
// call of the Exec under the context (a plugin binary, tuning, a second
// bridge) waits for that work first, and fails with its error.
//
// The caller must call the Unfinished's Wait once the chain has returned,
// before it uses the result, rolls back or returns. If Wait fails, the
// interface is not ready: the caller rolls the chain back with a DEL,
// which removes the portmap and firewall elements before the lease (the
// work that failed leaves the link and the lease to it).
func WithUnfinished(ctx context.Context) (context.Context, *Unfinished) {
	u := &Unfinished{}
	return context.WithValue(ctx, unfinishedKey{}, u), u
}

// unfinishedIn returns the Unfinished of ctx, or nil.
func unfinishedIn(ctx context.Context) *Unfinished {
	u, _ := ctx.Value(unfinishedKey{}).(*Unfinished)
	return u
}

// start runs f on a goroutine of its own, as work that Wait waits for.
func (u *Unfinished) start(f func() error) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		if err := f(); err != nil {
			u.mu.Lock()
			u.errs = append(u.errs, err)
			u.mu.Unlock()
		}
	}()
}

// Wait waits for the work started so far and returns its errors, joined.
// It returns the same error value until more work fails, so that
// errors.Is finds it in the error of a plugin that waited for it.
func (u *Unfinished) Wait() error {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.joined != len(u.errs) {
		u.err, u.joined = errors.Join(u.errs...), len(u.errs)
	}
	return u.err
}
