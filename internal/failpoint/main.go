// Command failpoint is a CNI plugin for tests: it fails, exits, sleeps or
// hangs on command, and otherwise passes the previous plugin's result
// through unchanged, so it can sit at any position of a chain.
//
// Tests build it with `go build` into a directory of their own and put that
// directory in the plugin path next to the real plugins. Its instructions
// come from its own entry in the conflist:
//
//	{
//	  "type":   "failpoint",
//	  "failAt": "ADD",          // ADD, DEL, CHECK, GC or STATUS; "" = never
//	  "mode":   "fail",         // what to do there (below)
//	  "sleep":  "2s",           // for mode "sleep"
//	  "after":  0,              // let this many calls of failAt pass first
//	  "times":  0,              // then act this many times (0 = every time)
//	  "log":    "/tmp/x/log"    // append one JSON line per call
//	}
//
// Modes:
//
//   - "fail": return a CNI error (code 199, "failpoint: injected failure at
//     ADD"), as a plugin that fails cleanly does;
//   - "exit": exit with status 3 and print nothing, as a plugin that
//     crashes does;
//   - "sleep": wait for "sleep", then carry on as if nothing happened;
//   - "hang": wait until killed (the runtime's context ends it).
//
// "after" and "times" count the calls of the failAt command recorded in
// "log", so they need it. Each log line is a JSON object with the command,
// container ID, interface name, namespace path, CNI_ARGS, the addresses of
// the prevResult given and, for GC, the valid attachments the runtime
// named; lines are appended under flock(2), so concurrent calls do not tear
// them.
//
// The plugin does no network work at all: ADD returns the previous result
// (or an empty one when it is first in the chain), DEL, CHECK, GC and
// STATUS succeed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"
)

// errCode is the CNI error code of an injected failure (plugin-specific
// codes start at 100).
const errCode = 199

type conf struct {
	types.PluginConf
	FailAt string `json:"failAt"`
	Mode   string `json:"mode"`
	Sleep  string `json:"sleep"`
	After  int    `json:"after"`
	Times  int    `json:"times"`
	Log    string `json:"log"`
	// Valid are the attachments a GC call names as valid.
	Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
}

// entry is one line of the log.
type entry struct {
	Command     string               `json:"command"`
	ContainerID string               `json:"containerID,omitempty"`
	IfName      string               `json:"ifName,omitempty"`
	NetNS       string               `json:"netns,omitempty"`
	Args        string               `json:"args,omitempty"`
	Valid       []types.GCAttachment `json:"valid,omitempty"`
	Acted       bool                 `json:"acted,omitempty"`
	// PrevIPs are the addresses of the prevResult the call was given.
	PrevIPs []string `json:"prevIPs,omitempty"`
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    func(a *skel.CmdArgs) error { return run("ADD", a) },
		Del:    func(a *skel.CmdArgs) error { return run("DEL", a) },
		Check:  func(a *skel.CmdArgs) error { return run("CHECK", a) },
		GC:     func(a *skel.CmdArgs) error { return run("GC", a) },
		Status: func(a *skel.CmdArgs) error { return run("STATUS", a) },
	}, version.All, "failpoint: a CNI plugin that fails on command, for tests")
}

func run(cmd string, a *skel.CmdArgs) error {
	var c conf
	if err := json.Unmarshal(a.StdinData, &c); err != nil {
		return fmt.Errorf("failpoint: config: %w", err)
	}
	act, err := record(&c, cmd, a)
	if err != nil {
		return err
	}
	if act {
		switch c.Mode {
		case "fail":
			return types.NewError(errCode, "failpoint: injected failure at "+cmd, "")
		case "exit":
			os.Exit(3)
		case "sleep":
			d, err := time.ParseDuration(c.Sleep)
			if err != nil {
				return fmt.Errorf("failpoint: sleep %q: %w", c.Sleep, err)
			}
			time.Sleep(d)
		case "hang":
			for {
				time.Sleep(time.Hour)
			}
		default:
			return fmt.Errorf("failpoint: unknown mode %q", c.Mode)
		}
	}
	if cmd != "ADD" {
		return nil
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return fmt.Errorf("failpoint: prevResult: %w", err)
	}
	res := c.PrevResult
	if res == nil {
		res = &current.Result{CNIVersion: current.ImplementedSpecVersion}
	}
	return types.PrintResult(res, c.CNIVersion)
}

// prevIPs returns the addresses of c's prevResult, as given.
func prevIPs(c *conf) []string {
	if c.RawPrevResult == nil {
		return nil
	}
	b, err := json.Marshal(c.RawPrevResult)
	if err != nil {
		return nil
	}
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	var out []string
	for _, ip := range r.IPs {
		out = append(out, ip.Address)
	}
	return out
}

// record appends the call to the log and decides whether the failpoint
// acts on it.
func record(c *conf, cmd string, a *skel.CmdArgs) (bool, error) {
	hit := strings.EqualFold(c.FailAt, cmd)
	if c.Log == "" {
		if c.After > 0 || c.Times > 0 {
			return false, fmt.Errorf("failpoint: \"after\" and \"times\" need \"log\"")
		}
		return hit, nil
	}
	f, err := os.OpenFile(c.Log, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("failpoint: log: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("failpoint: log: %w", err)
	}
	if hit {
		seen := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e entry
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Command == cmd {
				seen++
			}
		}
		hit = seen >= c.After && (c.Times == 0 || seen < c.After+c.Times)
	}
	e := entry{Command: cmd, ContainerID: a.ContainerID, IfName: a.IfName, NetNS: a.Netns, Args: a.Args, Valid: c.Valid, Acted: hit, PrevIPs: prevIPs(c)}
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return false, fmt.Errorf("failpoint: log: %w", err)
	}
	return hit, nil
}
