package inproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/ocinet/ocinet/internal/errdefs"
)

var (
	// ErrInvalid reports a bad config or argument.
	ErrInvalid = errdefs.ErrInvalid
	// ErrNotFound reports a namespace or link that does not exist.
	ErrNotFound = errdefs.ErrNotFound
	// ErrConflict reports a name or address that is taken.
	ErrConflict = errdefs.ErrConflict
	// ErrNotSupported reports a plugin or config field this package does
	// not implement.
	ErrNotSupported = errdefs.ErrNotSupported
)

// DefaultRuntimeDir is where the lock files live unless WithRuntimeDir
// says otherwise.
const DefaultRuntimeDir = "/run/ocinet"

// Exec runs the plugins it claims in process and every other one through
// Fallback.
type Exec struct {
	fallback   invoke.Exec
	log        *slog.Logger
	step       func(string)
	runtimeDir string
	expiring   expiring
	static     staticSeen
	early      earlyWork
}

// Option configures an [Exec].
type Option func(*Exec)

// WithLogger makes the Exec report what it runs where (default: silent).
func WithLogger(l *slog.Logger) Option { return func(e *Exec) { e.log = l } }

// WithStepHook makes the Exec call f at each named step of an in-process
// plugin run: "inproc:<command>:<plugin>:<step>", e.g.
// "inproc:ADD:bridge:veth", "inproc:ADD:bridge:lease",
// "inproc:ADD:bridge:port" (the port's hairpin mode is set: the first
// step of what the bridge finishes after its result, see WithUnfinished),
// "inproc:ADD:bridge:addrs", "inproc:ADD:portmap:static" (the table's
// static part is there), "inproc:ADD:portmap:elements" (the mappings are
// in the maps), the same two for firewall, "inproc:DEL:bridge:link",
// "inproc:DEL:bridge:conntrack". Crash tests use it to stop a run half
// way. f may be called from two goroutines at once (WithUnfinished).
func WithStepHook(f func(step string)) Option { return func(e *Exec) { e.step = f } }

// WithRuntimeDir sets the directory of the lock files (default
// /run/ocinet; they go in its "inproc" subdirectory).
func WithRuntimeDir(dir string) Option { return func(e *Exec) { e.runtimeDir = dir } }

// New returns an Exec that runs what it does not claim through fallback
// (required: the CNI library's invoke.DefaultExec, or a Manager's own).
func New(fallback invoke.Exec, opts ...Option) (*Exec, error) {
	if fallback == nil {
		return nil, fmt.Errorf("new in-process executor: no fallback executor: %w", ErrInvalid)
	}
	e := &Exec{fallback: fallback, runtimeDir: DefaultRuntimeDir}
	for _, o := range opts {
		o(e)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if !filepath.IsAbs(e.runtimeDir) {
		return nil, fmt.Errorf("new in-process executor: runtime directory %q is not absolute: %w", e.runtimeDir, ErrInvalid)
	}
	return e, nil
}

// claimedTypes are the plugin types that may run in process.
var claimedTypes = map[string]bool{"bridge": true, "loopback": true, "tuning": true, "portmap": true, "firewall": true}

// EnvNamespaceEnds, set to "1" in a DEL's environment, says that the
// caller removes the container's namespace right after the DEL (the
// container has ended): the in-process bridge then takes the host end of
// the container's veth down, which cuts the container off at once, and
// leaves the pair to the kernel, which removes it with the namespace,
// instead of deleting it (a synchronous delete waits about 20 ms on the
// kernel); the in-process loopback leaves lo up. Plugin binaries ignore it. A caller that keeps the namespace
// must not set it: the downed pair would stay.
const EnvNamespaceEnds = "OCINET_NAMESPACE_ENDS"

// call is one plugin invocation.
type call struct {
	cmd, plugin             string
	containerID, netns, ifc string
	args                    string // CNI_ARGS
	stdin                   []byte
	nsEnds                  bool // EnvNamespaceEnds
}

// ExecPlugin runs the plugin at pluginPath: in process when its type is
// claimed and its config is one this package implements, else through the
// fallback.
func (e *Exec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	c := call{
		plugin:      filepath.Base(pluginPath),
		cmd:         envValue(environ, "CNI_COMMAND"),
		containerID: envValue(environ, "CNI_CONTAINERID"),
		netns:       envValue(environ, "CNI_NETNS"),
		ifc:         envValue(environ, "CNI_IFNAME"),
		args:        envValue(environ, "CNI_ARGS"),
		stdin:       stdin,
		nsEnds:      envValue(environ, EnvNamespaceEnds) == "1",
	}
	if !claimedTypes[c.plugin] {
		if err := e.beforeBinary(ctx, c); err != nil {
			return nil, err
		}
		return e.fallback.ExecPlugin(ctx, pluginPath, stdin, environ)
	}
	if c.cmd == "VERSION" {
		return json.Marshal(version.All)
	}
	if err := claim(c.plugin, stdin, c.args); err != nil {
		e.log.Debug("running plugin binary", "plugin", c.plugin, "command", c.cmd, "reason", err)
		if _, serr := os.Stat(pluginPath); serr != nil {
			return nil, cniError(types.ErrUnsupportedField, fmt.Errorf("plugin %s: config needs the plugin binary, which is missing (%s): %w", c.plugin, pluginPath, err))
		}
		if err := e.beforeBinary(ctx, c); err != nil {
			return nil, err
		}
		out, err := e.fallback.ExecPlugin(ctx, pluginPath, stdin, environ)
		if err == nil && c.plugin == "firewall" && c.cmd == "ADD" {
			if rerr := e.registerIsolated(stdin); rerr != nil {
				e.log.Warn("in-process networks are not isolated from this network", "plugin", c.plugin, "container", c.containerID, "error", rerr)
			}
		}
		return out, err
	}
	if !(c.cmd == "ADD" && (c.plugin == "portmap" || c.plugin == "firewall")) {
		if err := waitUnfinished(ctx, c); err != nil {
			return nil, err
		}
	}
	e.log.Debug("running plugin in process", "plugin", c.plugin, "command", c.cmd, "container", c.containerID, "ifname", c.ifc)
	var out []byte
	var err error
	switch c.cmd {
	case "ADD":
		out, err = e.add(ctx, c)
	case "DEL":
		err = e.del(ctx, c)
	case "CHECK":
		err = e.check(ctx, c)
	case "GC":
		err = e.gc(c)
	case "STATUS":
		// The v1.9.1 binaries report nothing here.
	default:
		err = cniError(types.ErrInvalidEnvironmentVariables, fmt.Errorf("plugin %s: unknown CNI_COMMAND %q: %w", c.plugin, c.cmd, ErrInvalid))
	}
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			err = cniError(types.ErrInternal, err)
		}
		return nil, err
	}
	return out, nil
}

// beforeBinary does what a plugin binary's run needs first: the
// in-process work left unfinished (WithUnfinished) is waited for; an ADD
// (but the loopback's) waits for the gate (WithGate); a DEL waits for the
// in-process work the binary may depend on (settle).
func (e *Exec) beforeBinary(ctx context.Context, c call) error {
	if err := waitUnfinished(ctx, c); err != nil {
		return err
	}
	switch {
	case c.cmd == "ADD" && c.plugin != "loopback":
		return Wait(ctx)
	case c.cmd == "DEL":
		if err := e.settle(c.plugin, c.containerID, c.ifc); err != nil {
			return cniError(types.ErrInternal, err)
		}
	}
	return nil
}

// waitUnfinished waits for the work that in-process ADDs under ctx left
// unfinished (WithUnfinished): c runs once it is done, and fails if it
// failed.
func waitUnfinished(ctx context.Context, c call) error {
	u := unfinishedIn(ctx)
	if u == nil {
		return nil
	}
	if err := u.Wait(); err != nil {
		return cniError(types.ErrInternal, fmt.Errorf("plugin %s: an earlier plugin of the chain did not finish: %w", c.plugin, err))
	}
	return nil
}

func (e *Exec) add(ctx context.Context, c call) ([]byte, error) {
	switch c.plugin {
	case "bridge":
		return e.bridgeAdd(ctx, c) // waits for the gate on its own
	case "loopback":
		return e.loopbackAdd(c)
	}
	if err := Wait(ctx); err != nil {
		return nil, err
	}
	switch c.plugin {
	case "portmap":
		return e.portmapAdd(c)
	case "firewall":
		return e.firewallAdd(c)
	default:
		return e.tuningAdd(c)
	}
}

func (e *Exec) del(ctx context.Context, c call) error {
	switch c.plugin {
	case "bridge":
		return e.bridgeDel(c)
	case "loopback":
		return e.loopbackDel(c)
	case "portmap":
		return e.attachDel(c)
	case "firewall":
		return e.attachDel(c) // the network's isolation stays until RemoveNetwork
	default:
		return e.tuningDel(c)
	}
}

func (e *Exec) check(ctx context.Context, c call) error {
	switch c.plugin {
	case "bridge":
		return e.bridgeCheck(c)
	case "loopback":
		return e.loopbackCheck(c)
	case "portmap":
		return e.attachCheck(c, portmapWant)
	case "firewall":
		return e.attachCheck(c, firewallWant)
	default:
		return e.tuningCheck(c)
	}
}

// gc removes the elements of attachments that are not in the valid list
// (portmap, firewall); the v1.9.1 bridge, host-local, loopback and tuning
// binaries do nothing here: leases and links are released by DEL.
func (e *Exec) gc(c call) error {
	switch c.plugin {
	case "portmap":
		return e.attachGC(c, portSets)
	case "firewall":
		return e.attachGC(c, forwardSets)
	}
	return nil
}

// FindInPath finds a plugin binary as the fallback does; a claimed plugin
// type that is not on disk gets a path in the first directory all the same
// (it runs in process, and fails clearly if its config needs the binary).
func (e *Exec) FindInPath(plugin string, paths []string) (string, error) {
	p, err := e.fallback.FindInPath(plugin, paths)
	if err == nil || !claimedTypes[plugin] {
		return p, err
	}
	dir := "/"
	if len(paths) > 0 && paths[0] != "" {
		dir = paths[0]
	}
	return filepath.Join(dir, plugin), nil
}

// Decode decodes a plugin's VERSION answer, as the fallback does.
func (e *Exec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return e.fallback.Decode(jsonBytes)
}

// step calls the step hook.
func (e *Exec) stepAt(c call, name string) {
	if e.step != nil {
		e.step("inproc:" + c.cmd + ":" + c.plugin + ":" + name)
	}
}

// Error is a plugin error as the CNI library receives it from a plugin
// binary (a *types.Error, which errors.As finds), wrapping the cause so
// that errors.Is finds this package's sentinels.
type Error struct {
	CNI   *types.Error
	cause error
}

func (e *Error) Error() string   { return e.CNI.Error() }
func (e *Error) Unwrap() []error { return []error{e.CNI, e.cause} }

func cniError(code uint, err error) error {
	return &Error{CNI: types.NewError(code, err.Error(), ""), cause: err}
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
