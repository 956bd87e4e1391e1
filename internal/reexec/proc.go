package reexec

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a helper process as a record on disk keeps it: its pid and
// its start time, so that a pid the kernel has since given to another
// process is never signalled.
type Process struct {
	PID int `json:"pid"`
	// Start is the process's start time (field 22 of /proc/<pid>/stat).
	Start uint64 `json:"start"`
}

// Find returns the Process of pid as it is now (Start 0 when there is no
// such process).
func Find(pid int) Process { return Process{PID: pid, Start: StartTime(pid)} }

// Alive reports whether the recorded process still runs (and is not a
// zombie).
func (p Process) Alive() bool {
	return p.PID > 0 && p.Start != 0 && StartTime(p.PID) == p.Start && state(p.PID) != "Z"
}

// Stop ends the recorded process with SIGTERM and waits up to two seconds
// for it to go, reaping it if it is this process's child; then SIGKILL.
// A process that is gone already is fine.
func (p Process) Stop() error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("stop process %d: %w", p.PID, err)
	}
	done := make(chan struct{})
	go func() {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(p.PID, &ws, 0, nil) // fails at once if not our child
		close(done)
	}()
	for i := 0; i < 100; i++ {
		select {
		case <-done:
			if !p.Alive() {
				return nil
			}
		case <-time.After(20 * time.Millisecond):
		}
		if !p.Alive() {
			return nil
		}
	}
	if p.Alive() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	return nil
}

// StartTime returns the start time of process pid (field 22 of
// /proc/<pid>/stat), or 0 if there is no such process.
func StartTime(pid int) uint64 {
	f := statFields(pid)
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func state(pid int) string {
	f := statFields(pid)
	if len(f) < 1 {
		return ""
	}
	return f[0]
}

// statFields returns the fields of /proc/<pid>/stat after the command name:
// state is the first.
func statFields(pid int) []string {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}
