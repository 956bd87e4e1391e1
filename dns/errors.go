package dns

import "errors"

var (
	// ErrInvalid reports a configuration or argument that breaks this
	// package's rules; the message names the bad value.
	ErrInvalid = errors.New("invalid")
	// ErrNotSupported reports that this program cannot start a responder:
	// it does not call ocinet's helper entry (internal/reexec's Run) first
	// thing in main or TestMain.
	ErrNotSupported = errors.New("not supported")
)
