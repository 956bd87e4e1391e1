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
	"strings"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/netns"
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
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if event != EventCreateRuntime && event != EventPoststop {
		return fmt.Errorf("unknown event %q: %w", event, ErrInvalid)
	}
	st, err := ParseState(stdin)
	if err != nil {
		return err
	}
	req, err := parseRequest(st.Annotations[Annotation])
	if event == EventCreateRuntime && err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	logf, err := openLog(cfg, st.ID)
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, nil)).With("event", event, "id", st.ID)

	mgr, err := cfg.Manager(ocinet.WithLogger(log), ocinet.WithPluginStderr(logf))
	if err != nil {
		return err
	}
	store, err := cfg.HostsStore()
	if err != nil {
		return err
	}
	if event == EventCreateRuntime {
		if st.Pid <= 0 {
			return fmt.Errorf("state: createRuntime needs the container's pid: %w", ErrInvalid)
		}
		err = createRuntime(ctx, cfg, mgr, store, st, req, log)
		if err != nil {
			log.Error("failed", "err", err)
		}
		return err
	}
	poststop(ctx, cfg, mgr, store, st, log)
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

func createRuntime(ctx context.Context, cfg Config, mgr *ocinet.Manager, store *hosts.Store, st State, req request, log *slog.Logger) (err error) {
	id := cfg.AttachmentID(st.ID)
	pin := cfg.PinPath(st.ID)
	path, err := netns.Pin(cfg.NetNSDir, filepath.Base(pin), st.Pid)
	if errors.Is(err, netns.ErrExists) {
		// The name holds an older namespace of this container (createRuntime
		// after a restart without poststop): release it and pin again.
		log.Info("replacing a stale pin", "path", pin)
		if derr := mgr.Detach(ctx, id); derr != nil {
			return derr
		}
		if rerr := netns.Remove(pin); rerr != nil {
			return rerr
		}
		path, err = netns.Pin(cfg.NetNSDir, filepath.Base(pin), st.Pid)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = netns.Remove(path)
		}
	}()
	name := req.Name
	if name == "" {
		name = st.ID
	}
	att, err := mgr.Attach(ctx, ocinet.AttachRequest{ID: id, Name: name, NetNS: path, Networks: req.Networks, Ports: req.Ports})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if derr := mgr.Detach(ctx, id); derr != nil {
				log.Error("rollback detach failed", "err", derr)
			}
		}
	}()
	rec := hosts.Record{ID: st.ID, Name: req.Name, Hostname: req.Hostname, ExtraHosts: req.extraHosts}
	ipv6 := false
	for _, iface := range att.Interfaces {
		n := hosts.Network{Name: iface.Network}
		for _, p := range iface.IPs {
			n.IPs = append(n.IPs, p.Addr())
			ipv6 = ipv6 || p.Addr().Is6()
		}
		if len(iface.Gateways) > 0 {
			n.Gateway = iface.Gateways[0]
		}
		rec.Networks = append(rec.Networks, n)
	}
	if err := store.Prepare(st.ID); err != nil {
		return err
	}
	if err := store.Join(rec); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = store.Leave(st.ID)
		}
	}()
	if err := store.WriteResolvConf(st.ID, hosts.ResolvOptions{IPv6: ipv6, DNS: req.dns}); err != nil {
		return err
	}
	log.Info("attached", "netns", path, "interfaces", ifaceSummary(att.Interfaces), "ports", len(att.Ports))
	return nil
}

func ifaceSummary(ifs []ocinet.Interface) string {
	var parts []string
	for _, i := range ifs {
		var ips []string
		for _, p := range i.IPs {
			ips = append(ips, p.String())
		}
		parts = append(parts, i.Name+"="+strings.Join(ips, ","))
	}
	return strings.Join(parts, " ")
}

// poststop tears down what createRuntime set up. It never fails: what it
// cannot finish stays in the journal (with the pin, so that DEL can still
// run in the namespace later) and is logged.
func poststop(ctx context.Context, cfg Config, mgr *ocinet.Manager, store *hosts.Store, st State, log *slog.Logger) {
	if err := store.Leave(st.ID); err != nil {
		log.Error("hosts leave failed", "err", err)
	}
	if err := mgr.Detach(ctx, cfg.AttachmentID(st.ID)); err != nil {
		log.Error("detach failed; the journal keeps the attachment for GC", "err", err)
		return
	}
	if err := netns.Remove(cfg.PinPath(st.ID)); err != nil {
		log.Error("remove pin failed", "err", err)
		return
	}
	log.Info("detached")
}
