package hook

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/netns"
)

// Config is the hook's own configuration. A program fixes it when it builds
// the spec and passes it to the hook on the hook's command line; nothing in
// it comes from the container. Zero fields mean the defaults written on
// them.
type Config struct {
	// StateDir is the state root (default /var/lib/ocinet).
	StateDir string
	// NetNSDir is where namespaces are pinned (default /var/run/netns).
	NetNSDir string
	// CNIConfDir is the conflist directory (default /etc/cni/net.d).
	CNIConfDir string
	// PluginDirs are the plugin directories (default /opt/cni/bin).
	PluginDirs []string
	// Namespace is the containerd namespace of the container (required).
	Namespace string
	// Timeout bounds one run of the hook (default 60s); it must be shorter
	// than the hook timeout in the spec.
	Timeout time.Duration
	// ManagerOptions are extra options for the Manager that [Attach],
	// [Detach], [GC] and [Run] open, for a program that calls them in its
	// own process: a test kit's fake plugin executor, for example (package
	// ocinettest). They are not part of the command line ([Config.Args]
	// leaves them out), so a hook that runc starts never has them.
	ManagerOptions []ocinet.Option
}

// DefaultTimeout is the hook's internal deadline when Config.Timeout is 0.
const DefaultTimeout = 60 * time.Second

func (c Config) withDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = ocinet.DefaultStateDir
	}
	if c.NetNSDir == "" {
		c.NetNSDir = netns.DefaultDir
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

func (c Config) validate() error {
	if err := validContainerID(c.Namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	for _, d := range append([]string{c.StateDir, c.NetNSDir, c.CNIConfDir}, c.PluginDirs...) {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("directory %q is not an absolute path: %w", d, ErrInvalid)
		}
	}
	return nil
}

// Manager returns the Manager this configuration describes.
func (c Config) Manager(opts ...ocinet.Option) (*ocinet.Manager, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	base := []ocinet.Option{ocinet.WithCNIConfDir(c.CNIConfDir), ocinet.WithPluginDirs(c.PluginDirs...), ocinet.WithNamespace(c.Namespace)}
	opts = append(append(base, c.ManagerOptions...), opts...)
	return ocinet.New(c.StateDir, opts...)
}

// HostsStore returns the hosts store of the configured namespace.
func (c Config) HostsStore() (*hosts.Store, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return hosts.Open(filepath.Join(c.StateDir, "hosts", c.Namespace))
}

// AttachmentID returns the attachment (CNI container) ID of a container:
// "<namespace>-<id>", as nerdctl names them.
func (c Config) AttachmentID(containerID string) string {
	return c.Namespace + "-" + containerID
}

// PinPath returns where the hook pins a container's network namespace.
func (c Config) PinPath(containerID string) string {
	c = c.withDefaults()
	return filepath.Join(c.NetNSDir, "ocinet-"+c.AttachmentID(containerID))
}

// ContainerDir returns the directory of a container's hook log.
func (c Config) ContainerDir(containerID string) string {
	c = c.withDefaults()
	return filepath.Join(c.StateDir, "containers", c.Namespace, containerID)
}

// ValidateContainerID checks a container ID the way containerd does:
// letters and digits in groups joined by one of '.', '_' or '-', at most 76
// characters. A bad ID is refused with an error wrapping ErrInvalid.
func ValidateContainerID(id string) error {
	return validContainerID(id)
}

func validContainerID(id string) error {
	if id == "" || len(id) > 76 {
		return fmt.Errorf("id %q: must be 1 to 76 characters: %w", id, ErrInvalid)
	}
	prevSep := true
	for _, c := range []byte(id) {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		sep := c == '.' || c == '_' || c == '-'
		switch {
		case alnum:
			prevSep = false
		case sep && !prevSep:
			prevSep = true
		default:
			return fmt.Errorf("id %q: character %q not allowed here: %w", id, c, ErrInvalid)
		}
	}
	if prevSep {
		return fmt.Errorf("id %q: must end with a letter or digit: %w", id, ErrInvalid)
	}
	return nil
}
