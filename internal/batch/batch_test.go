package batch

import (
	"slices"
	"sync"
	"testing"
)

type call struct {
	n      int
	served int // the number of the batch that served it
}

// TestQueue: calls queued while the lock is held are served in one batch,
// in the order they were queued, each exactly once; a call queued later
// gets a batch of its own.
func TestQueue(t *testing.T) {
	var q Queue[*call]
	var batches [][]int
	serve := func(cs []*call) {
		var ns []int
		for _, c := range cs {
			if c.served != 0 {
				t.Errorf("call %d served twice", c.n)
			}
			c.served = len(batches) + 1
			ns = append(ns, c.n)
		}
		batches = append(batches, ns)
	}
	const n = 5
	calls := make([]*call, n)
	var wg sync.WaitGroup
	q.Lock()
	for i := range calls {
		calls[i] = &call{n: i}
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.Do(calls[i], serve)
			if calls[i].served == 0 {
				t.Errorf("call %d returned unserved", i)
			}
		}()
		if !q.WaitPending(i + 1) {
			q.Unlock()
			t.Fatalf("call %d was not queued", i)
		}
	}
	q.Unlock()
	wg.Wait()
	if len(batches) != 1 || !slices.Equal(batches[0], []int{0, 1, 2, 3, 4}) {
		t.Fatalf("batches %v, want one of calls 0 to 4 in order", batches)
	}

	last := &call{n: n}
	q.Do(last, serve)
	if last.served != 2 || len(batches) != 2 || !slices.Equal(batches[1], []int{n}) {
		t.Errorf("a later call: batches %v, want a second batch of it alone", batches)
	}
}
