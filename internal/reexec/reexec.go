// Package reexec is ocinet's one way of running a helper process: the
// program itself, started again from /proc/self/exe, that becomes one of
// the helpers a package registered instead of running its main.
//
// A package registers its helper from an init function ([Register]); that
// never exits anything. The program opts in by calling [Run] first thing in
// main (the public entry is ocinet.RunHelper, which calls it): when the
// process was started by [Command] for a registered helper, Run runs it and
// exits with its status; otherwise Run returns at once. A program that never
// calls Run never becomes a helper, whatever its environment says.
//
// The helper's name travels as argv[0] and in the environment variable
// OCINET_REEXEC; both must agree, so an inherited variable alone does not
// turn a process into a helper. Test binaries call Run from TestMain.
package reexec

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// Env is the environment variable that names the helper to run.
const Env = "OCINET_REEXEC"

var (
	mu      sync.Mutex
	helpers = map[string]func() int{}
	ran     bool // Run was called and returned: this program opted in
)

// Register makes main the helper called name. It panics if name is
// registered twice (a programming error). Call it from an init function.
func Register(name string, main func() int) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := helpers[name]; dup {
		panic(fmt.Sprintf("reexec: helper %q registered twice", name))
	}
	helpers[name] = main
}

// Name returns the helper this process was started as, or "" when it was
// not started by Command. Packages whose helper must run on the main thread
// check it from init, to lock the thread there.
func Name() string {
	name, ok := os.LookupEnv(Env)
	if !ok || len(os.Args) == 0 || os.Args[0] != name {
		return ""
	}
	return name
}

// Run runs the registered helper this process was started as and exits
// with its status. It returns at once when the process is not a helper.
func Run() {
	name := Name()
	if name == "" {
		mu.Lock()
		ran = true
		mu.Unlock()
		return
	}
	mu.Lock()
	main, ok := helpers[name]
	mu.Unlock()
	if !ok {
		fmt.Fprintf(os.Stderr, "reexec: no helper %q in this program\n", name)
		os.Exit(127)
	}
	os.Exit(main())
}

// Command returns a command that starts this program again as the helper
// name, with args after it. Its environment is only Env (the caller may add
// to cmd.Env); everything else about the process is the caller's to set.
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = name
	cmd.Env = []string{Env + "=" + name}
	return cmd
}

// Ready reports whether this program called Run, so that a helper started
// with Command runs the helper and not the program's own main (a test
// binary without Run in TestMain would run its tests again). Callers that
// start helpers check it first and say so when it is false.
func Ready() bool {
	mu.Lock()
	defer mu.Unlock()
	return ran
}
