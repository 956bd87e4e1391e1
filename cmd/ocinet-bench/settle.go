package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Before each section the bench waits for the host to settle: a section
// measured while the host is busy with something else (another program,
// the clean-up of a run that just ended) measures that too. The load
// average cannot tell: it counts tasks waiting on the disk or in the
// kernel, and stays high for a minute after a burst (about 20 after the
// concurrent section, with the CPUs idle); the CPUs' own idle time can.
const (
	settleWindow = 200 * time.Millisecond
	// settleBusy is the share of the CPUs' time, over one window, under
	// which the host counts as quiet (an idle host here: 1 to 3%).
	settleBusy = 0.10
	// settleQuiet is how many quiet windows in a row it takes.
	settleQuiet = 3
	// settleLimit bounds the wait: a host that never settles is measured
	// as it is, and the wait says so.
	settleLimit = 30 * time.Second
)

// settle waits until settleQuiet windows in a row were quiet, for at most
// settleLimit, and returns how long it waited, the busy share of the last
// window, and whether the host settled.
func settle(ctx context.Context) (waited time.Duration, busy float64, ok bool, err error) {
	t0 := time.Now()
	prev, err := cpuTimes()
	if err != nil {
		return 0, 0, false, err
	}
	quiet := 0
	for time.Since(t0) < settleLimit && ctx.Err() == nil {
		time.Sleep(settleWindow)
		cur, err := cpuTimes()
		if err != nil {
			return time.Since(t0), 0, false, err
		}
		busy = cur.busyShare(prev)
		prev = cur
		if busy < settleBusy {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= settleQuiet {
			return time.Since(t0), busy, true, nil
		}
	}
	return time.Since(t0), busy, false, nil
}

// cpuTicks is the first line of /proc/stat: the time of every CPU in each
// state, and of the idle ones (idle and iowait).
type cpuTicks struct{ total, idle uint64 }

func cpuTimes() (cpuTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPUTicks(line)
}

// parseCPUTicks reads the first line of /proc/stat.
func parseCPUTicks(line string) (cpuTicks, error) {
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return cpuTicks{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t cpuTicks
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTicks{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		if i >= 7 {
			break // steal, guest and guest_nice: guest time is in user already
		}
		t.total += v
		if i == 3 || i == 4 {
			t.idle += v
		}
	}
	return t, nil
}

// busyShare is the share of the time since prev that the CPUs were not
// idle.
func (t cpuTicks) busyShare(prev cpuTicks) float64 {
	total := t.total - prev.total
	if total == 0 {
		return 0
	}
	return 1 - float64(t.idle-prev.idle)/float64(total)
}
