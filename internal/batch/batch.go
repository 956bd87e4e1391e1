// Package batch serves calls that need one lock in batches: whoever gets
// the lock serves every call queued meanwhile, so that work each call
// would repeat under the lock (reading a whole directory of records) is
// done once per batch.
//
// Under contention this matters more than the work saved: with many
// goroutines runnable on few CPUs, a lock's holder waits for the CPU after
// each system call behind all the others, and a critical section of a
// hundred system calls stretches to many times its length.
package batch

import (
	"sync"
	"time"
)

// Queue batches calls of type T (a pointer, through which serve returns
// each call's result). The zero Queue is ready to use.
type Queue[T any] struct {
	mu      sync.Mutex // held while a batch is served, and by Lock
	queue   sync.Mutex // guards pending
	pending []*entry[T]
}

type entry[T any] struct {
	call T
	done bool // under mu
}

// Do queues call and returns once it has been served: by this goroutine,
// which then serves every call queued so far in one call of serve, in the
// order they were queued, or by another goroutine's batch. serve must
// complete every call it is given; it runs with the Queue's lock held.
func (q *Queue[T]) Do(call T, serve func(calls []T)) {
	e := &entry[T]{call: call}
	q.queue.Lock()
	q.pending = append(q.pending, e)
	q.queue.Unlock()

	q.mu.Lock()
	defer q.mu.Unlock()
	if e.done {
		return
	}
	q.queue.Lock()
	es := q.pending
	q.pending = nil
	q.queue.Unlock()
	calls := make([]T, len(es))
	for i, e := range es {
		calls[i] = e.call
	}
	serve(calls)
	for _, e := range es {
		e.done = true
	}
}

// WaitPending waits up to 5 s for n calls to be queued and not yet taken
// into a batch, and reports whether they were (for tests, which hold the
// lock to queue calls in a known order).
func (q *Queue[T]) WaitPending(n int) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		q.queue.Lock()
		k := len(q.pending)
		q.queue.Unlock()
		if k == n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Lock takes the Queue's lock for work that is not batched: no batch is
// served until Unlock.
func (q *Queue[T]) Lock() { q.mu.Lock() }

// Unlock releases the lock taken by Lock.
func (q *Queue[T]) Unlock() { q.mu.Unlock() }
