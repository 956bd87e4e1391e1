package inproc

import "context"

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
