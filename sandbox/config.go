package sandbox

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/ident"
	"github.com/ocinet/ocinet/netns"
)

// Config is where ocinet keeps its state and finds its plugins, for the
// containers of one containerd namespace. A program fixes it (and passes it
// to the OCI hook on the hook's command line, [Config.Args]); nothing in it
// comes from a container. Zero fields mean the defaults written on them.
type Config struct {
	// StateDir is the state root (default /var/lib/ocinet).
	StateDir string
	// NetNSDir is where namespaces are pinned (default /var/run/netns).
	NetNSDir string
	// RuntimeDir holds state that must not survive a reboot (default
	// /run/ocinet); see ocinet.WithRuntimeDir.
	RuntimeDir string
	// CNIConfDir is the conflist directory (default /etc/cni/net.d).
	CNIConfDir string
	// PluginDirs are the plugin directories (default /opt/cni/bin).
	PluginDirs []string
	// Namespace is the containerd namespace of the container (required).
	Namespace string
	// Datapath says who runs the plugins of networks attached from now on
	// (default ocinet.DatapathAuto; see ocinet.WithDatapath).
	Datapath ocinet.Datapath
	// Timeout bounds one run of the OCI hook (default 60s); it must be
	// shorter than the hook timeout in the spec.
	Timeout time.Duration
	// DNSLinger is how long a network's DNS responder keeps running after
	// its last container left (default dns.DefaultLinger, 2s), so that the
	// network's next container, if it comes sooner, does not wait for a
	// new one to start; a negative value stops it at once.
	DNSLinger time.Duration
	// ManagerOptions are extra options for the Manager that [Attach],
	// [Detach] and [GC] open, for a program that calls them in its own
	// process: a test kit's fake plugin executor, for example (package
	// ocinettest). They are not part of the command line ([Config.Args]
	// leaves them out), so a hook that runc starts never has them.
	ManagerOptions []ocinet.Option
	// Log receives progress (default: silent). Not on the command line.
	Log *slog.Logger
}

// DefaultTimeout is the OCI hook's internal deadline when Config.Timeout is
// 0.
const DefaultTimeout = 60 * time.Second

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = ocinet.DefaultStateDir
	}
	if c.NetNSDir == "" {
		c.NetNSDir = netns.DefaultDir
	}
	if c.RuntimeDir == "" {
		c.RuntimeDir = ocinet.DefaultRuntimeDir
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = ocinet.DefaultCNIConfDir
	}
	if len(c.PluginDirs) == 0 {
		c.PluginDirs = []string{ocinet.DefaultPluginDir}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// dnsLinger is the responders' Config.Linger: DNSLinger, its default for
// 0, none for a negative value.
func (c Config) dnsLinger() time.Duration {
	switch {
	case c.DNSLinger == 0:
		return dns.DefaultLinger
	case c.DNSLinger < 0:
		return 0
	}
	return c.DNSLinger
}

// Validate checks c (with defaults applied): a valid namespace and absolute
// directories. Errors wrap ErrInvalid.
func (c Config) Validate() error {
	if err := ident.Namespace(c.Namespace); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, d := range append([]string{c.StateDir, c.NetNSDir, c.RuntimeDir, c.CNIConfDir}, c.PluginDirs...) {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("config: directory %q is not an absolute path: %w", d, ErrInvalid)
		}
	}
	if c.Datapath != "" {
		if _, err := ocinet.ParseDatapath(string(c.Datapath)); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// Manager returns the Manager this configuration describes.
func (c Config) Manager(opts ...ocinet.Option) (*ocinet.Manager, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	base := []ocinet.Option{ocinet.WithCNIConfDir(c.CNIConfDir), ocinet.WithPluginDirs(c.PluginDirs...), ocinet.WithRuntimeDir(c.RuntimeDir), ocinet.WithNamespace(c.Namespace)}
	if c.Datapath != "" {
		base = append(base, ocinet.WithDatapath(c.Datapath))
	}
	if c.Log != nil {
		base = append(base, ocinet.WithLogger(c.Log))
	}
	opts = append(append(base, c.ManagerOptions...), opts...)
	return ocinet.New(c.StateDir, opts...)
}

// HostsStore returns the hosts store of the configured namespace.
func (c Config) HostsStore() (*hosts.Store, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return hosts.Open(filepath.Join(c.StateDir, "hosts", c.Namespace))
}

// AttachmentID returns the attachment (CNI container) ID of a container:
// "<namespace>-<id>", as nerdctl names them.
func (c Config) AttachmentID(containerID string) string {
	return c.Namespace + "-" + containerID
}

// PinPath returns where [AttachPinned] pins a container's network
// namespace.
func (c Config) PinPath(containerID string) string {
	c = c.WithDefaults()
	return filepath.Join(c.NetNSDir, "ocinet-"+c.AttachmentID(containerID))
}

// ContainerDir returns the directory of a container's hook log.
func (c Config) ContainerDir(containerID string) string {
	c = c.WithDefaults()
	return filepath.Join(c.StateDir, "containers", c.Namespace, containerID)
}
