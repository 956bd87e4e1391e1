package ocinet

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ocinet/ocinet/internal/errdefs"
)

var (
	// ErrInvalid reports bad input: nothing on the host was changed.
	ErrInvalid = errdefs.ErrInvalid
	// ErrNotFound reports a network or attachment that does not exist.
	ErrNotFound = errdefs.ErrNotFound
	// ErrPluginNotFound reports a CNI plugin binary missing from the plugin
	// directories.
	ErrPluginNotFound = errors.New("plugin not found")
	// ErrPlugin reports a CNI plugin that failed.
	ErrPlugin = errors.New("plugin failed")
	// ErrConflict reports a request that collides with existing state: a
	// network name or subnet already taken, a static address another
	// container holds, a network removed while containers use it.
	ErrConflict = errdefs.ErrConflict
	// ErrNotSupported reports a request that is well formed but asks for
	// what ocinet does not do: IPv6 on a macvlan network, a plugin field
	// the native datapath cannot run.
	ErrNotSupported = errdefs.ErrNotSupported
	// ErrIncomplete reports an attachment that a crash or a failed teardown
	// left half done; GC finishes it.
	ErrIncomplete = errors.New("attachment incomplete")
)

// PluginNotFoundError names a plugin that is missing and where it was looked
// for.
type PluginNotFoundError struct {
	Network string
	Plugin  string
	Dirs    []string
}

func (e *PluginNotFoundError) Error() string {
	return fmt.Sprintf("network %q: plugin %q not found in [%s]", e.Network, e.Plugin, strings.Join(e.Dirs, " "))
}

// Is makes errors.Is(err, ErrPluginNotFound) hold.
func (e *PluginNotFoundError) Is(target error) bool { return target == ErrPluginNotFound }

// InUseError reports a network that cannot be removed because containers
// are attached to it.
type InUseError struct {
	Network string
	// Containers are the attachments using the network: their names, or
	// their IDs when they have no name.
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %q is in use by %s; detach them first", e.Network, strings.Join(e.Containers, ", "))
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *InUseError) Is(target error) bool { return target == ErrConflict }
