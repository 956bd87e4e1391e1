package ocinet

import (
	"io"
	"log/slog"
	"net/netip"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/ocinet/ocinet/internal/host"
)

// Defaults used when an option is not given.
const (
	DefaultStateDir    = "/var/lib/ocinet"
	DefaultCNIConfDir  = "/etc/cni/net.d"
	DefaultPluginDir   = "/opt/cni/bin"
	DefaultNetworkName = "bridge"
	DefaultBridgeName  = "ocinet0"
	DefaultCNICacheDir = "/var/lib/cni"
	DefaultRuntimeDir  = "/run/ocinet"
)

// Option configures a [Manager]. Options record intent only; [New]
// validates them, so their order does not matter.
type Option func(*options)

type options struct {
	confDir       string
	pluginDirs    []string
	cacheDir      string
	runtimeDir    string
	bridgeName    string
	defaultSubnet netip.Prefix
	exec          invoke.Exec
	host          host.Host
	pluginStderr  io.Writer
	logger        *slog.Logger
	namespace     string
	datapath      Datapath
}

// WithCNIConfDir sets the directory of network conflists (default
// /etc/cni/net.d).
func WithCNIConfDir(dir string) Option { return func(o *options) { o.confDir = dir } }

// WithPluginDirs sets the directories searched for CNI plugin binaries
// (default /opt/cni/bin).
func WithPluginDirs(dirs ...string) Option {
	return func(o *options) { o.pluginDirs = append([]string(nil), dirs...) }
}

// WithCNICacheDir sets the directory where the CNI library caches results
// (default /var/lib/cni, shared with other CNI users).
func WithCNICacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithRuntimeDir sets the directory of state that must not survive a reboot
// (default /run/ocinet): the markers that say which networks have had an
// attachment since boot. It must be on a file system that a reboot empties,
// as /run is.
func WithRuntimeDir(dir string) Option { return func(o *options) { o.runtimeDir = dir } }

// WithDefaultBridge sets the host bridge device of the default network
// (default "ocinet0").
func WithDefaultBridge(name string) Option { return func(o *options) { o.bridgeName = name } }

// WithDefaultSubnet fixes the subnet of the default network. Without it the
// first 10.4.N.0/24 that overlaps no host route, host address or other
// network is used.
func WithDefaultSubnet(p netip.Prefix) Option { return func(o *options) { o.defaultSubnet = p } }

// WithExec replaces the way plugins are executed (the CNI library's
// invoke.Exec), for tests that run without real plugins.
func WithExec(e invoke.Exec) Option { return func(o *options) { o.exec = e } }

// WithHost replaces the Manager's view of the host (namespace checks, the
// prefixes in use, bridges, placeholder namespaces, macvlan and ipvlan parents, isolation rules; default: the host
// itself, through netlink). It is the seam package ocinettest's fake host
// uses, together with [WithExec], for tests without root; production code
// leaves it unset.
func WithHost(h host.Host) Option { return func(o *options) { o.host = h } }

// WithPluginStderr sends the plugins' standard error to w (default: dropped;
// plugins report their errors on standard output, which is returned).
func WithPluginStderr(w io.Writer) Option { return func(o *options) { o.pluginStderr = w } }

// WithLogger makes the Manager report progress to l (default: silent).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithNamespace sets the containerd namespace whose networks the Manager
// sees, as nerdctl v2 keeps them: those at the top level of the conf dir
// and those in its <namespace> directory, where CreateNetwork puts new ones
// as nerdctl-<name>.conflist (default: none; only the top level is seen and
// written). The name is checked as containerd checks namespaces.
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }
