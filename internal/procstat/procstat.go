// Package procstat reads what ocinet needs of /proc/<pid>/stat to tell a
// helper process it started from another that reuses its pid: the start
// time (field 22, in clock ticks since boot), which never changes for a
// process and differs for any later one with the same pid, and the state.
package procstat

import (
	"os"
	"strconv"
	"strings"
)

// Start returns the start time of process pid (field 22 of
// /proc/<pid>/stat), or 0 if there is no such process.
func Start(pid int) uint64 {
	f := fields(pid)
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// State returns the state letter of process pid ("Z" for a zombie, "" if
// there is no such process).
func State(pid int) string {
	f := fields(pid)
	if len(f) < 1 {
		return ""
	}
	return f[0]
}

// Alive reports whether pid is the process that started at start and has
// not exited (a zombie has).
func Alive(pid int, start uint64) bool {
	if pid <= 0 || start == 0 {
		return false
	}
	f := fields(pid)
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return false
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v == start
}

// fields returns the fields of /proc/<pid>/stat after the command name:
// state is the first.
func fields(pid int) []string {
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
