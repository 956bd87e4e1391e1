package ocinet

import (
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/fsutil"
	"github.com/ocinet/ocinet/internal/host"
	"github.com/ocinet/ocinet/portmap"
)

// Manager attaches containers to CNI networks and keeps the journal of those
// attachments under its state root. It is safe for concurrent use by several
// goroutines and several processes sharing the same root.
//
// Layout of the state root:
//
//	attachments/<id>.json   the journal, one record per attachment
//	ports/                  host port reservations (package portmap)
//	locks/                  lock files (see the package doc for their order)
type Manager struct {
	root       string
	confDir    string
	pluginDirs []string
	runtimeDir string
	bridge     string
	subnet     string      // fixed default subnet, "" = choose one
	cacheDir   string      // the CNI library's result cache
	exec       invoke.Exec // finds plugins (and runs them: datapath plugins)
	dp         *datapaths  // who runs each network's plugins (datapath.go)
	host       host.Host   // the host outside the plugins (internal/host)
	ports      *portmap.Allocator
	log        *slog.Logger
	// namespace is the containerd namespace whose networks are seen, "" =
	// the conf dir's top level only.
	namespace string
}

// New returns a Manager whose state lives in stateDir (an empty string means
// /var/lib/ocinet). It creates the directories it needs.
func New(stateDir string, opts ...Option) (*Manager, error) {
	o := options{
		confDir:    DefaultCNIConfDir,
		pluginDirs: []string{DefaultPluginDir},
		cacheDir:   DefaultCNICacheDir,
		runtimeDir: DefaultRuntimeDir,
		bridgeName: DefaultBridgeName,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if !filepath.IsAbs(stateDir) || !filepath.IsAbs(o.confDir) || !filepath.IsAbs(o.cacheDir) || !filepath.IsAbs(o.runtimeDir) {
		return nil, fmt.Errorf("new manager: state, conf, cache and runtime directories must be absolute paths: %w", ErrInvalid)
	}
	if o.namespace != "" {
		if err := validNamespace(o.namespace); err != nil {
			return nil, fmt.Errorf("new manager: %w", err)
		}
	}
	if len(o.pluginDirs) == 0 {
		return nil, fmt.Errorf("new manager: no plugin directory: %w", ErrInvalid)
	}
	for _, d := range o.pluginDirs {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("new manager: plugin directory %q is not absolute: %w", d, ErrInvalid)
		}
	}
	if err := validIfaceName(o.bridgeName); err != nil {
		return nil, fmt.Errorf("new manager: bridge name: %w", err)
	}
	if o.defaultSubnet.IsValid() && o.defaultSubnet != o.defaultSubnet.Masked() {
		return nil, fmt.Errorf("new manager: default subnet %s has host bits set: %w", o.defaultSubnet, ErrInvalid)
	}
	for _, d := range []string{stateDir, filepath.Join(stateDir, "attachments"), filepath.Join(stateDir, "locks"), o.confDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("new manager: %w", err)
		}
	}
	ports, err := portmap.NewAllocator(filepath.Join(stateDir, "ports"))
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	exec := o.exec
	if exec == nil {
		stderr := o.pluginStderr
		if stderr == nil {
			stderr = io.Discard
		}
		exec = &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: stderr}, PluginDecoder: version.PluginDecoder{}}
	}
	h := o.host
	if h == nil {
		h = host.Real()
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	choice := o.datapath
	if choice == "" {
		choice = DatapathAuto
		if o.exec != nil {
			choice = DatapathPlugins
		}
	}
	if _, err := ParseDatapath(string(choice)); err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	dp := &datapaths{choice: choice, plugins: exec, custom: o.exec != nil, opts: []inproc.Option{
		inproc.WithRuntimeDir(o.runtimeDir),
		inproc.WithLogger(logger),
		inproc.WithStepHook(func(step string) { crashPoint(step) }),
	}}
	m := &Manager{
		root:       stateDir,
		confDir:    o.confDir,
		pluginDirs: o.pluginDirs,
		runtimeDir: o.runtimeDir,
		bridge:     o.bridgeName,
		cacheDir:   o.cacheDir,
		exec:       exec,
		dp:         dp,
		host:       h,
		ports:      ports,
		log:        logger,
		namespace:  o.namespace,
	}
	if o.defaultSubnet.IsValid() {
		m.subnet = o.defaultSubnet.String()
	}
	return m, nil
}

// StateDir returns the Manager's state root.
func (m *Manager) StateDir() string { return m.root }

// Ports returns the Manager's host port allocator. Its reservations belong
// to attachments: GC releases those whose owner has no record.
func (m *Manager) Ports() *portmap.Allocator { return m.ports }

func (m *Manager) lock(name string, shared bool) (*fsutil.Lock, error) {
	mode := fsutil.Exclusive
	if shared {
		mode = fsutil.Shared
	}
	return fsutil.LockFile(filepath.Join(m.root, "locks", name+".lock"), mode)
}

// lockContainer takes the GC lock shared and the container's lock, for an
// operation on one container, and returns the function that releases both.
func (m *Manager) lockContainer(id string) (unlock func(), err error) {
	gc, err := m.lock("gc", true)
	if err != nil {
		return nil, err
	}
	// One file for every container, locked at the byte the ID hashes to:
	// no file per container that was ever attached (which would pile up,
	// and cost a file creation on each Attach). Two IDs that hash alike
	// (one chance in 2^62) only wait for each other.
	h := fnv.New64a()
	h.Write([]byte(id))
	cl, err := fsutil.LockRange(filepath.Join(m.root, "locks", "containers.lock"), int64(h.Sum64()>>2))
	if err != nil {
		gc.Unlock()
		return nil, err
	}
	return func() { cl.Unlock(); gc.Unlock() }, nil
}

// lockedRecord checks id, takes its locks (see lockContainer) and reads its
// record (nil when there is none). The caller calls unlock when err is nil.
func (m *Manager) lockedRecord(id string) (rec *record, unlock func(), err error) {
	if err := validID(id); err != nil {
		return nil, nil, err
	}
	if unlock, err = m.lockContainer(id); err != nil {
		return nil, nil, err
	}
	if rec, err = m.readRecord(id); err != nil {
		unlock()
		return nil, nil, err
	}
	return rec, unlock, nil
}
