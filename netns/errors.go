package netns

import (
	"errors"

	"github.com/ocinet/ocinet/internal/errdefs"
)

var (
	// ErrInvalid reports a bad name, PID, path or argument.
	ErrInvalid = errdefs.ErrInvalid
	// ErrNotFound reports a namespace path or a process that does not exist.
	ErrNotFound = errdefs.ErrNotFound
	// ErrNotNetNS reports a path that exists but is not a network namespace.
	ErrNotNetNS = errors.New("not a network namespace")
	// ErrHostNamespace reports the host's own network namespace where a
	// container's was expected.
	ErrHostNamespace = errors.New("is the host network namespace")
	// ErrExists reports a name that already holds another namespace.
	ErrExists = errors.New("already exists")
	// ErrBusy reports a namespace file that stayed busy (still a mount
	// point somewhere) for longer than Remove waits; retry later.
	ErrBusy = errors.New("namespace file is busy")
	// ErrClosed reports a [NetNS] handle used after Close.
	ErrClosed = errors.New("namespace handle is closed")
	// ErrNotSupported is returned on systems without network namespaces.
	ErrNotSupported = errdefs.ErrNotSupported
)
