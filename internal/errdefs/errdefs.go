// Package errdefs defines ocinet's error sentinels once. Every package that
// returns them re-exports them (var ErrInvalid = errdefs.ErrInvalid), so
// errors.Is(err, ocinet.ErrInvalid), errors.Is(err, hook.ErrInvalid) and
// errors.Is(err, hosts.ErrInvalid) all hold for the same error, whichever
// package refused the input. Messages put the sentinel last
// ("network name \"a b\": character ' ' not allowed: invalid argument").
package errdefs

import "errors"

var (
	// ErrInvalid reports bad input; nothing on the host was changed.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound reports something asked for by name that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a request that collides with existing state.
	ErrConflict = errors.New("conflict")
	// ErrNotSupported reports something this system or build cannot do.
	ErrNotSupported = errors.New("not supported")
)
