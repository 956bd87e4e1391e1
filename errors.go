package ocinet

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalid reports bad input: nothing on the host was changed.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound reports a network or attachment that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPluginNotFound reports a CNI plugin binary missing from the plugin
	// directories.
	ErrPluginNotFound = errors.New("plugin not found")
	// ErrPlugin reports a CNI plugin that failed.
	ErrPlugin = errors.New("plugin failed")
	// ErrConflict reports a request that collides with existing state, such
	// as removing a network that a container is attached to.
	ErrConflict = errors.New("conflict")
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
