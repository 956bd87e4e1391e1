package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/sandbox"
)

// Hook events, as runc passes them as the last argument.
const (
	EventCreateRuntime = "createRuntime"
	EventPoststop      = "poststop"
)

// maxStateSize bounds the OCI state read from standard input.
const maxStateSize = 1 << 20

// State is the OCI state runc writes to a hook's standard input.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ParseState decodes and checks the OCI state: strict JSON, bounded size, a
// valid container ID.
func ParseState(r io.Reader) (State, error) {
	var st State
	b, err := io.ReadAll(io.LimitReader(r, maxStateSize+1))
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if len(b) > maxStateSize {
		return st, fmt.Errorf("state: larger than %d bytes: %w", maxStateSize, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("state: %v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return st, fmt.Errorf("state: trailing data: %w", ErrInvalid)
	}
	if err := validContainerID(st.ID); err != nil {
		return st, fmt.Errorf("state: container %w", err)
	}
	if st.Pid < 0 {
		return st, fmt.Errorf("state: pid %d: %w", st.Pid, ErrInvalid)
	}
	return st, nil
}

// Run runs the hook for event with the OCI state read from stdin. On failure
// it writes one line to stderr (runc shows it to the user) and returns the
// error. It logs to the container's hook.log under the state root.
func Run(ctx context.Context, event string, stdin io.Reader, stderr io.Writer, cfg Config) error {
	err := run(ctx, event, stdin, cfg)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		fmt.Fprintf(stderr, "ocinet hook %s: %s\n", event, msg)
	}
	return err
}

func run(ctx context.Context, event string, stdin io.Reader, cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if event != EventCreateRuntime && event != EventPoststop {
		return fmt.Errorf("unknown event %q: %w", event, ErrInvalid)
	}
	st, err := ParseState(stdin)
	if err != nil {
		return err
	}
	req, err := DecodeRequest(st.Annotations[Annotation])
	if event == EventCreateRuntime && err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	if event == EventCreateRuntime {
		if err := checkCreated(st, req.Mode); err != nil {
			return err
		}
	}
	logf, err := openLog(cfg, st.ID)
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, nil)).With("event", event, "id", st.ID)
	cfg.Log = log
	cfg.ManagerOptions = append(cfg.ManagerOptions[:len(cfg.ManagerOptions):len(cfg.ManagerOptions)], ocinet.WithPluginStderr(logf))
	if event == EventCreateRuntime {
		if _, err := sandbox.AttachPinned(ctx, cfg, st.ID, st.Pid, req); err != nil {
			log.Error("failed", "err", err)
			return err
		}
		return nil
	}
	// poststop never fails: what it cannot finish stays in the journal
	// (with the pin, so that DEL can still run in the namespace later) and
	// is logged.
	if err := sandbox.DetachPinned(ctx, cfg, st.ID); err != nil {
		log.Error("detach failed; the journal keeps the attachment for GC", "err", err)
		return nil
	}
	log.Info("detached")
	return nil
}

func openLog(cfg Config, id string) (*os.File, error) {
	dir := cfg.ContainerDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "hook.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return f, nil
}

// checkCreated refuses, before anything is written, a state that is not a
// container being created: a wrong status, no pid, or a pid whose network
// namespace is missing or is the host's own, or, in network mode host, is
// not the host's.
func checkCreated(st State, mode sandbox.Mode) error {
	if st.Status != "creating" && st.Status != "created" {
		return fmt.Errorf("state: status %q: createRuntime runs for a container being created: %w", st.Status, ErrInvalid)
	}
	if st.Pid <= 0 {
		return fmt.Errorf("state: createRuntime needs the container's pid: %w", ErrInvalid)
	}
	if st.Pid == 1 {
		// runc runs hooks in the host's pid namespace, where pid 1 is the
		// host's init, never a container's.
		return fmt.Errorf("state: pid 1 is the host's init, not a container being created: %w", ErrInvalid)
	}
	err := netns.Check("/proc/" + strconv.Itoa(st.Pid) + "/ns/net")
	if mode == sandbox.ModeHost {
		switch {
		case errors.Is(err, netns.ErrHostNamespace):
			return nil
		case err == nil:
			return fmt.Errorf("state: pid %d: network mode host, but the container has a network namespace of its own (its spec must leave it out): %w", st.Pid, ErrInvalid)
		}
	}
	if err != nil {
		return fmt.Errorf("state: pid %d: %w: %w", st.Pid, err, ErrInvalid)
	}
	return nil
}
