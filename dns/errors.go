package dns

import "github.com/ocinet/ocinet/internal/errdefs"

var (
	// ErrInvalid reports a configuration or argument that breaks this
	// package's rules; the message names the bad value.
	ErrInvalid = errdefs.ErrInvalid
	// ErrNotSupported reports that this program cannot start a responder:
	// it does not call ocinet's helper entry (internal/reexec's Run) first
	// thing in main or TestMain.
	ErrNotSupported = errdefs.ErrNotSupported
)
