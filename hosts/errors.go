package hosts

import "github.com/ocinet/ocinet/internal/errdefs"

var (
	// ErrInvalid reports input that breaks the rules of this package: a bad
	// container ID, name, network name, address, extra host (host-gateway
	// included, on a network without a gateway) or DNS setting, or a host
	// resolv.conf larger than 64 KiB. The error that wraps it quotes the
	// bad value. Nothing on disk has changed when it is returned.
	ErrInvalid = errdefs.ErrInvalid

	// ErrNotFound reports that the store holds no record for the container.
	ErrNotFound = errdefs.ErrNotFound
)
