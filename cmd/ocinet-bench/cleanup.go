package main

import (
	"fmt"
	"os"
	"sync"
)

// cleaner holds what the run has made, as functions that undo it. They run
// in reverse order at the end of the run, on success, failure or interrupt.
type cleaner struct {
	mu    sync.Mutex
	steps []cleanStep
}

type cleanStep struct {
	name string
	fn   func() error
	done bool
}

// add registers fn and returns a function that runs it now (once) instead
// of at the end.
func (c *cleaner) add(name string, fn func() error) func() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, cleanStep{name: name, fn: fn})
	i := len(c.steps) - 1
	return func() error { return c.runOne(i) }
}

func (c *cleaner) runOne(i int) error {
	c.mu.Lock()
	if c.steps[i].done {
		c.mu.Unlock()
		return nil
	}
	c.steps[i].done = true
	fn := c.steps[i].fn
	c.mu.Unlock()
	return fn()
}

// run undoes everything still registered, last first, and reports what
// failed on stderr. It returns the number of failures.
func (c *cleaner) run() int {
	c.mu.Lock()
	n := len(c.steps)
	c.mu.Unlock()
	failed := 0
	for i := n - 1; i >= 0; i-- {
		if err := c.runOne(i); err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "ocinet-bench: clean up %s: %v\n", c.steps[i].name, err)
		}
	}
	return failed
}
