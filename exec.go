package ocinet

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/ocinet/ocinet/inproc"
)

// pluginExec is the executor of one call's plugins. It hands every
// successful ADD's output to its sink, so that the journal learns a
// container's addresses as soon as the first plugin of a chain returns,
// not only when the whole chain is done; and it marks the steps at which
// the package's tests simulate a crash.
type pluginExec struct {
	invoke.Exec
	sink resultSink // nil: none
	env  []string   // added to every plugin's environment
	// gated: an ADD waits for the gate in its context (inproc.WithGate)
	// before the plugin starts, for an executor that does not (the
	// in-process one waits on its own, later for the bridge).
	gated bool
}

// gateAware is an executor that honours inproc.WithGate.
type gateAware interface{ WaitsForGate() bool }

// resultSink receives the configuration and the output of a plugin's ADD.
type resultSink func(conf, out []byte)

// cniFor returns the CNI library over the executor of datapath dp for one
// call, with sink (nil for none) receiving every successful ADD's output
// and env added to every plugin's environment. This is the one place that
// decides who runs a network's plugins.
func (m *Manager) cniFor(dp Datapath, sink resultSink, env ...string) (*libcni.CNIConfig, error) {
	x, err := m.dp.exec(dp)
	if err != nil {
		return nil, err
	}
	return libcni.NewCNIConfigWithCacheDir(m.pluginDirs, m.cacheDir, &pluginExec{Exec: x, sink: sink, env: env, gated: !waitsForGate(x)}), nil
}

func waitsForGate(x invoke.Exec) bool {
	g, ok := x.(gateAware)
	return ok && g.WaitsForGate()
}

func (e *pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	cmd := envValue(environ, "CNI_COMMAND")
	if len(e.env) > 0 {
		environ = append(environ[:len(environ):len(environ)], e.env...)
	}
	step := cmd + ":" + envValue(environ, "CNI_IFNAME") + ":" + filepath.Base(pluginPath)
	crashPoint("exec:" + step)
	if e.gated && cmd == "ADD" {
		if err := inproc.Wait(ctx); err != nil {
			return nil, err
		}
	}
	out, err := e.Exec.ExecPlugin(ctx, pluginPath, stdin, environ)
	if err == nil && cmd == "ADD" && e.sink != nil {
		e.sink(stdin, out)
	}
	crashPoint("done:" + step)
	return out, err
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// crashHook, when set, is called at each named step of Attach and Detach
// and of every plugin execution. Production code never sets it; the
// package's tests use it to kill the process at each step in turn.
var crashHook func(step string)

func crashPoint(step string) {
	if crashHook != nil {
		crashHook(step)
	}
}
