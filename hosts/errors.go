package hosts

import "github.com/ocinet/ocinet/internal/errdefs"

var (
	// ErrInvalid reports input that breaks the rules of this package: a bad
	// container ID, name, network name, address, extra host or DNS setting.
	// The error that wraps it quotes the bad value. Nothing on disk has
	// changed when it is returned.
	ErrInvalid = errdefs.ErrInvalid

	// ErrNotFound reports that the store holds no record for the container.
	ErrNotFound = errdefs.ErrNotFound
)
