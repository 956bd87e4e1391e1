// Command ocinet-bench measures ocinet against what a user would otherwise
// use, in one run on one machine, and prints one table: the median and p90
// of each operation and, where there is a baseline, the ratio of the
// medians. Each baseline is measured in the same run, on the same network
// config, interleaved with what it is compared to (A B A B ...), so that the
// drift of a noisy machine cancels out.
//
//	netns       netns.Create + Remove                  vs  ip netns add + del
//	attach      Manager.Attach + Detach, one port      vs  go-cni Setup + Remove, same conflist and port
//	native      the same through package inproc        vs  the same through the plugin binaries
//	hook        hook binary start, no work             vs  a minimal Go binary that reads stdin
//	container   container start to first answered      vs  the same container with no network
//	            request through a published port (hook mode, private containerd)
//	nerdctl     ocictl run -d -p to first answer, and   vs  the same with the nerdctl binary NERDCTL names,
//	            ocictl rm -f (private containerd)           on the same containerd (skipped without NERDCTL)
//	concurrent  N attaches at once: wall time          vs  N x the sequential attach
//	hosts       hosts join and leave with 10, 100, 1000 peers (absolute, and bytes written)
//	plugins     each plugin of the default chain, and the iptables and
//	            nftables backends, by ADD and DEL of truncated chains
//
// Run it as root from the repository with `make bench`, which installs what
// it needs first, or `go run ./cmd/ocinet-bench [-n N] [-only LIST]`. It
// makes everything it uses under its own names (bridge ocibench0, IDs
// ocibench-*, a temporary directory for state, conflists, namespaces and a
// private containerd) and removes all of it at the end, also when
// interrupted. The table goes to standard output and, as JSON, to the file
// named by -json (by default a new temporary file, named at the end).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"

	"golang.org/x/sys/unix"
)

// Names of what the run makes on the host; every one is removed at the end.
const (
	benchBridge   = "ocibench0" // the default network's bridge
	isoBridge     = "ocibench1" // the second network of the isolation check
	idPrefix      = "ocibench-" // attachment IDs and namespace names
	ctdNamespace  = "ocibench"  // containerd namespace
	defaultPlugin = "/opt/ocinet/cni/bin"
)

// sections in the order they run.
var sectionOrder = []string{"netns", "hook", "hosts", "dns", "attach", "native", "plugins", "concurrent", "container", "nerdctl"}

var sections = map[string]func(*bench) error{
	"netns":      (*bench).netnsSection,
	"hook":       (*bench).hookSection,
	"hosts":      (*bench).hostsSection,
	"dns":        (*bench).dnsSection,
	"attach":     (*bench).attachSection,
	"native":     (*bench).nativeSection,
	"plugins":    (*bench).pluginsSection,
	"concurrent": (*bench).concurrentSection,
	"container":  (*bench).containerSection,
	"nerdctl":    (*bench).nerdctlSection,
}

func main() {
	ocinet.RunHelper() // ocinet's helper processes are this program started again
	n := flag.Int("n", 10, "iterations of each measured pair; the fast sections (netns, hook, hosts, dns) run 5×n")
	jsonPath := flag.String("json", "", "write the results as JSON to this file (default: a new temporary file)")
	only := flag.String("only", strings.Join(sectionOrder, ","), "comma-separated sections to run: "+strings.Join(sectionOrder, ", "))
	conc := flag.String("concurrency", "1,10,50,100", "numbers of concurrent attaches")
	peers := flag.String("peers", "10,100,1000", "numbers of peers for the hosts join")
	pluginDir := flag.String("plugin-dir", defaultPlugin, "CNI plugin directory")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process to this file")
	flag.Parse()

	if err := run(*n, *jsonPath, *only, *conc, *peers, *pluginDir, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "ocinet-bench:", err)
		os.Exit(1)
	}
}

func run(n int, jsonPath, only, conc, peers, pluginDir, cpuProfile string) error {
	if n < 1 {
		return errors.New("-n must be at least 1")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (namespaces, iptables, containerd): run `sudo make bench`")
	}
	var want []string
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if _, ok := sections[s]; !ok {
			return fmt.Errorf("-only: unknown section %q (sections: %s)", s, strings.Join(sectionOrder, ", "))
		}
		want = append(want, s)
	}
	concN, err := intList("-concurrency", conc)
	if err != nil {
		return err
	}
	peerN, err := intList("-peers", peers)
	if err != nil {
		return err
	}
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	if jsonPath == "" {
		f, err := os.CreateTemp("", "ocinet-bench-*.json")
		if err != nil {
			return err
		}
		jsonPath = f.Name()
		f.Close()
	}

	// Interrupts cancel the context; the run then stops measuring and
	// cleans up. The handler stays installed until the cleanup is done, so
	// that a second interrupt does not cut it short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	// Where a host keeps this state (ocinet's default is /var/lib/ocinet):
	// /tmp may be another file system, or, as on the machine this was
	// measured on, a part of the disk where making a file costs ten times
	// as much. Short: the private containerd's socket lives below it.
	work, err := os.MkdirTemp("/var/lib", "ocibench-")
	if err != nil {
		return err
	}
	b := &bench{
		ctx:       ctx,
		repo:      repo,
		work:      work,
		n:         n,
		conc:      concN,
		peers:     peerN,
		pluginDir: pluginDir,
		stateDir:  filepath.Join(work, "state"),
		confDir:   filepath.Join(work, "net.d"),
		netnsDir:  filepath.Join(work, "netns"),
		clean:     &cleaner{},
		report: &Report{
			Started: time.Now(),
			Command: strings.Join(os.Args, " "),
			N:       n,
			Host:    host(),
		},
	}
	// Last of all: what host-local leaves of the run's networks once their
	// last lease is gone (its lock and last-reserved files).
	leaseDirs := leakcheck.LeaseDirs(leakcheck.Config{})
	b.clean.add("lease directories of the run's networks", func() error { return leakcheck.RemoveNewLeaseDirs(leaseDirs, leakcheck.Config{}) })
	b.clean.add("work directory "+work, func() error { return os.RemoveAll(work) })
	b.clean.add("namespace directory", b.removeNetNSDir)
	// The whole run is held to the leak oracle, as a test suite is: what
	// the host has after the clean-up that it had not before is a failure.
	before, leakErr := leakcheck.Take(leakcheck.Config{})
	if leakErr != nil {
		return fmt.Errorf("leak check before the run: %w", leakErr)
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		b.clean.add("cpu profile", func() error { pprof.StopCPUProfile(); return f.Close() })
	}

	for _, s := range want {
		if ctx.Err() != nil {
			break
		}
		// Each section starts with the writes of the ones before on disk:
		// the hosts section alone writes hundreds of MiB, whose write-back
		// would otherwise run under the next sections and slow every fsync
		// and file they make.
		unix.Sync()
		waited, busy, settled, err := settle(ctx)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "ocinet-bench: %s: could not tell whether the host is quiet: %v\n", s, err)
		case !settled:
			b.report.Notes = append(b.report.Notes, fmt.Sprintf("%s: the host did not settle within %s (busy %.0f%% of the CPUs' time at the end): measured as it was", s, settleLimit, 100*busy))
		}
		fmt.Fprintf(os.Stderr, "ocinet-bench: %s ... (after %s for the host to settle)\n", s, waited.Round(10*time.Millisecond))
		t0 := time.Now()
		if err := sections[s](b); err != nil {
			b.report.Failures = append(b.report.Failures, fmt.Sprintf("%s: %v", s, err))
			fmt.Fprintf(os.Stderr, "ocinet-bench: %s failed: %v\n", s, err)
		}
		took := time.Since(t0)
		b.report.Sections = append(b.report.Sections, sectionTime{Name: s, Seconds: took.Seconds(), SettledSeconds: waited.Seconds()})
		fmt.Fprintf(os.Stderr, "ocinet-bench: %s took %s\n", s, took.Round(time.Millisecond))
	}
	interrupted := ctx.Err() != nil
	if interrupted {
		fmt.Fprintln(os.Stderr, "ocinet-bench: interrupted; cleaning up")
	}
	failedCleanups := b.clean.run()
	if left, err := leakcheck.Settled(before, leakcheck.Config{}); err != nil {
		b.report.Leaks = []string{fmt.Sprintf("the leak check after the run failed: %v", err)}
	} else {
		b.report.Leaks = left
	}
	b.report.Duration = time.Since(b.report.Started).Round(time.Second).String()

	b.report.printTable(os.Stdout)
	if err := b.report.writeJSON(jsonPath); err != nil {
		return err
	}
	fmt.Printf("\nJSON: %s\n", jsonPath)
	switch {
	case interrupted:
		return errors.New("interrupted")
	case failedCleanups > 0:
		return fmt.Errorf("%d clean-up steps failed (see above)", failedCleanups)
	case len(b.report.Failures) > 0:
		return fmt.Errorf("%d sections failed", len(b.report.Failures))
	case len(b.report.Leaks) > 0:
		return fmt.Errorf("the run left %d items on the host (see above)", len(b.report.Leaks))
	}
	return nil
}

func intList(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive number", flagName, f)
		}
		out = append(out, v)
	}
	return out, nil
}

// repoRoot finds the repository (the module's go.mod) from the working
// directory up: the run builds ocictl and uses the scripts.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/ocinet/ocinet\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the ocinet repository (it builds examples/ocictl and uses scripts/)")
		}
		dir = parent
	}
}

func host() hostInfo {
	h := hostInfo{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = "Linux " + unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("iptables", "--version").Output(); err == nil {
		h.Iptables = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			h.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return h
}
