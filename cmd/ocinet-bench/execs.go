package main

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocinet/ocinet/portmap"
)

// shimmed are the firewall tools the plugins run.
var shimmed = []string{"iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "nft"}

// countExecs runs ADD and DEL of each chain once more with every firewall
// tool behind a shell wrapper that logs how long it ran, and notes how many
// times the plugins ran each and for how long: where a chain's time goes.
// This pass is not timed itself (the wrappers cost a little).
func (b *bench) countExecs(chains []*chain, ports []portmap.Port) error {
	for k, c := range chains {
		if b.stopped() {
			return nil
		}
		basePath := os.Getenv("PATH")
		if p, ok := envValue(c.exec.env, "PATH"); ok {
			basePath = p
		}
		dir := filepath.Join(b.work, fmt.Sprintf("shims%d", k))
		logFile := filepath.Join(dir, "log")
		if err := writeShims(dir, basePath, logFile); err != nil {
			return err
		}
		env := overrideEnv(c.exec.env, []string{"PATH=" + dir + ":" + basePath})
		sc, err := b.newChain(c.name, c.conflist, c.ifName, c.ports, env)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("%sx%d", idPrefix, k)
		ns, rm, err := b.newNS(id)
		if err != nil {
			return err
		}
		var parts []string
		sc.exec.record = true
		step := func(what string, fn func() error) error {
			_ = os.Remove(logFile)
			sc.exec.take()
			t0 := time.Now()
			if err := fn(); err != nil {
				return err
			}
			total := time.Since(t0)
			sc.exec.mu.Lock()
			runs := slices.Clone(sc.exec.runs)
			sc.exec.mu.Unlock()
			parts = append(parts, fmt.Sprintf("%s %.0f ms: %s", what, ms(total), summarizeRuns(runs, readShimLog(logFile))))
			return nil
		}
		err = step("ADD", func() error { _, err := b.add(sc, id, ns, ports); return err })
		if err == nil {
			err = step("DEL", func() error { return b.del(sc, id, ns, ports) })
		}
		_ = b.undo(id)
		rm()
		if err != nil {
			return err
		}
		b.report.notef("plugins, where the time goes in %q (tools timed by a wrapper):\n%s", c.name, strings.Join(parts, "\n"))
	}
	return nil
}

// writeShims writes a wrapper for each firewall tool found in path into dir.
func writeShims(dir, path, logFile string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, tool := range shimmed {
		real, err := lookIn(path, tool)
		if err != nil {
			continue
		}
		script := fmt.Sprintf("#!/bin/sh\ns=$(date +%%s%%N)\n%q \"$@\"\nrc=$?\necho \"%s $s $(( $(date +%%s%%N) - s ))\" >>%q\nexit $rc\n", real, tool, logFile)
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			return err
		}
	}
	_, err := exec.LookPath("date")
	return err
}

// toolCall is one run of a firewall tool, from the wrappers' log.
type toolCall struct {
	tool  string
	start time.Time
	d     time.Duration
}

func readShimLog(logFile string) []toolCall {
	f, err := os.Open(logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	var calls []toolCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		start, err1 := strconv.ParseInt(fields[1], 10, 64)
		d, err2 := strconv.ParseInt(fields[2], 10, 64)
		if err1 == nil && err2 == nil {
			calls = append(calls, toolCall{fields[0], time.Unix(0, start), time.Duration(d)})
		}
	}
	return calls
}

// summarizeRuns says, per plugin run, how long it took and which tools it
// ran how often for how long.
func summarizeRuns(runs []pluginRun, calls []toolCall) string {
	var out []string
	for _, r := range runs {
		count := map[string]int{}
		total := map[string]time.Duration{}
		for _, c := range calls {
			if !c.start.Before(r.start) && c.start.Before(r.end) {
				count[c.tool]++
				total[c.tool] += c.d
			}
		}
		var tools []string
		for _, t := range slices.Sorted(maps.Keys(count)) {
			tools = append(tools, fmt.Sprintf("%s %d× %.0f ms", t, count[t], ms(total[t])))
		}
		line := fmt.Sprintf("%s %.0f ms", r.plugin, ms(r.end.Sub(r.start)))
		if len(tools) > 0 {
			line += " (" + strings.Join(tools, ", ") + ")"
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}
