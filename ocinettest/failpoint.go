package ocinettest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	cnitypes "github.com/containernetworking/cni/pkg/types"
)

// Failpoint is the failpoint plugin's entry in a conflist (see
// [FailpointPlugin]); json.Marshal renders it, "type" included. Put it
// anywhere in a chain.
type Failpoint struct {
	// FailAt is the command it acts at: ADD, DEL, CHECK, GC or STATUS
	// ("": never).
	FailAt string
	// Mode is what it does there: "fail" (a CNI error with FaultCode),
	// "exit" (exit status 3 and no output, as a plugin that crashes),
	// "sleep" (wait Sleep, then carry on) or "hang" (wait until killed;
	// the runtime's context ends it).
	Mode string
	// Sleep is the wait of mode "sleep", as time.ParseDuration reads it.
	Sleep string
	// After lets this many calls of FailAt pass first; Times is how many
	// calls it then acts on (0: every one). Both need Log.
	After, Times int
	// Log is a file the plugin appends one JSON line per call to (see
	// [ReadFailpointLog]).
	Log string
}

// MarshalJSON renders the conflist entry.
func (f Failpoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type   string `json:"type"`
		FailAt string `json:"failAt,omitempty"`
		Mode   string `json:"mode,omitempty"`
		Sleep  string `json:"sleep,omitempty"`
		After  int    `json:"after,omitempty"`
		Times  int    `json:"times,omitempty"`
		Log    string `json:"log,omitempty"`
	}{"failpoint", f.FailAt, f.Mode, f.Sleep, f.After, f.Times, f.Log})
}

// FailpointCall is one line of the failpoint plugin's log.
type FailpointCall struct {
	Command     string                  `json:"command"`
	ContainerID string                  `json:"containerID,omitempty"`
	IfName      string                  `json:"ifName,omitempty"`
	NetNS       string                  `json:"netns,omitempty"`
	Args        string                  `json:"args,omitempty"` // CNI_ARGS
	Valid       []cnitypes.GCAttachment `json:"valid,omitempty"`
	// Acted says the plugin acted (failed, exited, slept or hung) on
	// this call.
	Acted bool `json:"acted,omitempty"`
}

// ReadFailpointLog reads the failpoint plugin's log; a log that does not
// exist yet holds no calls.
func ReadFailpointLog(path string) ([]FailpointCall, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []FailpointCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c FailpointCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return out, fmt.Errorf("failpoint log %s: %w", path, err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}
