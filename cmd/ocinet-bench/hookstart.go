package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocinet/ocinet/hook"
)

// minimalMain is the baseline of the hook start: a Go program that reads its
// standard input and exits.
const minimalMain = `package main

import (
	"io"
	"os"
)

func main() {
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(1)
}
`

// hookState is a valid OCI state, as runc writes it to a hook.
const hookState = `{"ociVersion":"1.2.1","id":"ocibench-hook","status":"creating","pid":1,"bundle":"/nonexistent"}`

// hookSection: the start of the hook binaries, given an unknown event (they
// exit at once, before any work), against a minimal Go binary, from fork to
// exit: ocinet-hook (cmd/ocinet-hook, the hook alone) and ocictl's
// `internal oci-hook` (the hook inside a CLI that links containerd's client).
func (b *bench) hookSection() error {
	ocictl, err := b.build("./examples/ocictl", "")
	if err != nil {
		return err
	}
	lean, err := b.build("./cmd/ocinet-hook", "")
	if err != nil {
		return err
	}
	dir := filepath.Join(b.work, "minimal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module minimal\n\ngo 1.26\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(minimalMain), 0o644); err != nil {
		return err
	}
	minimal, err := b.build("minimal", dir)
	if err != nil {
		return err
	}
	hookData := filepath.Join(b.work, "hook-state")
	cfg := hook.Config{StateDir: hookData, CNIConfDir: filepath.Join(b.work, "hook-net.d"), NetNSDir: b.netnsDir,
		PluginDirs: []string{b.pluginDir}, Namespace: ctdNamespace}
	type binary struct {
		name, path string
		args       []string
	}
	hooks := []binary{
		{"ocinet-hook", lean, append(cfg.Args(), "bogus-event")},
		{"ocictl internal oci-hook", ocictl, append(cfg.Args(), "internal", "oci-hook", "bogus-event")},
	}
	base := binary{"minimal Go binary", minimal, nil}
	env := []string{"PATH=" + os.Getenv("PATH")}
	start := func(bin binary, env []string) (time.Duration, []byte, error) {
		cmd := exec.Command(bin.path, bin.args...)
		cmd.Stdin = strings.NewReader(hookState)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Env = env
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			return 0, nil, fmt.Errorf("%s: want exit status 1, got %v: %s", bin.name, err, stderr.Bytes())
		}
		return d, stderr.Bytes(), nil
	}
	timed := func(bin binary) func(int) (time.Duration, error) {
		return func(int) (time.Duration, error) { d, _, err := start(bin, env); return d, err }
	}
	// What the start-up does before main: the Go runtime's package init
	// trace, the median of 5 runs.
	trace := func(bin binary) (initTrace, error) {
		var runs []initTrace
		for i := 0; i < 5; i++ {
			_, out, err := start(bin, append(env, "GODEBUG=inittrace=1"))
			if err != nil {
				return initTrace{}, err
			}
			runs = append(runs, parseInitTrace(out))
		}
		return mergeInitTraces(runs), nil
	}
	mt, err := trace(base)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		// Untimed rounds: the page cache holds both binaries afterwards.
		if _, _, err := interleave(3, b.stopped, timed(h), timed(base)); err != nil {
			return err
		}
		a, bs, err := interleave(b.fast(), b.stopped, timed(h), timed(base))
		if err != nil {
			return err
		}
		if len(a) == 0 {
			return nil
		}
		b.report.add(newRow("hook", "start of "+h.name, a).againstPaired(base.name, a, bs).goal(2).
			note("binary %.1f MB (minimal %.1f MB)", float64(fileSize(h.path))/1e6, float64(fileSize(minimal))/1e6).
			field("binary_bytes", fileSize(h.path)).field("minimal_binary_bytes", fileSize(minimal)))
		ht, err := trace(h)
		if err != nil {
			return err
		}
		var top []string
		for _, p := range ht.top(8) {
			top = append(top, fmt.Sprintf("%s %.2f", p.pkg, p.ms))
		}
		b.report.notef("hook start of %s (GODEBUG=inittrace=1, median of 5 runs): main is reached %.1f ms after the runtime starts (minimal binary: %.1f ms); package init takes %.1f ms in %d packages, %d allocations, %.1f MB (minimal: %.1f ms in %d packages).\nlargest inits, ms: %s",
			h.name, ht.mainMS, mt.mainMS, ht.totalMS, len(ht.pkgs), ht.allocs, float64(ht.bytes)/1e6, mt.totalMS, len(mt.pkgs), strings.Join(top, ", "))
	}
	if _, err := os.Stat(hookData); err == nil {
		return fmt.Errorf("a hook made %s for an unknown event: it is meant to exit before any work", hookData)
	}
	return nil
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// initTrace is the package init cost of one binary, from the runtime's
// inittrace lines: "init PKG @T ms, C ms clock, B bytes, A allocs".
type initTrace struct {
	pkgs    map[string]float64 // clock ms per package
	totalMS float64
	mainMS  float64 // when the last init ended: main starts then
	bytes   int64
	allocs  int64
}

type pkgCost struct {
	pkg string
	ms  float64
}

func parseInitTrace(out []byte) initTrace {
	t := initTrace{pkgs: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// init PKG @T ms, C ms clock, B bytes, A allocs
		if len(f) != 11 || f[0] != "init" || f[6] != "clock," {
			continue
		}
		clock, err1 := strconv.ParseFloat(f[4], 64)
		nbytes, err2 := strconv.ParseInt(f[7], 10, 64)
		allocs, err3 := strconv.ParseInt(f[9], 10, 64)
		at, err4 := strconv.ParseFloat(strings.TrimPrefix(f[2], "@"), 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		t.mainMS = max(t.mainMS, at+clock)
		t.pkgs[f[1]] += clock
		t.totalMS += clock
		t.bytes += nbytes
		t.allocs += allocs
	}
	return t
}

// mergeInitTraces returns the median of several runs, figure by figure:
// one run slowed by the machine's other work does not count.
func mergeInitTraces(runs []initTrace) initTrace {
	m := initTrace{pkgs: map[string]float64{}}
	if len(runs) == 0 {
		return m
	}
	med := func(get func(initTrace) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	for p := range runs[0].pkgs {
		m.pkgs[p] = med(func(r initTrace) float64 { return r.pkgs[p] })
	}
	m.totalMS = med(func(r initTrace) float64 { return r.totalMS })
	m.mainMS = med(func(r initTrace) float64 { return r.mainMS })
	m.bytes = int64(med(func(r initTrace) float64 { return float64(r.bytes) }))
	m.allocs = int64(med(func(r initTrace) float64 { return float64(r.allocs) }))
	return m
}

func (t initTrace) top(k int) []pkgCost {
	var all []pkgCost
	for p, c := range t.pkgs {
		all = append(all, pkgCost{p, c})
	}
	slices.SortFunc(all, func(a, b pkgCost) int {
		switch {
		case a.ms > b.ms:
			return -1
		case a.ms < b.ms:
			return 1
		}
		return strings.Compare(a.pkg, b.pkg)
	})
	return all[:min(k, len(all))]
}
