package portmap

import (
	"errors"
	"fmt"

	"github.com/ocinet/ocinet/internal/errdefs"
)

var (
	// ErrInvalid means a -p specification, a Mapping built in code, or another
	// argument (an owner key, an allocator directory) is malformed. The error's
	// text names the offending part.
	ErrInvalid = errdefs.ErrInvalid

	// ErrConflict means a host port that was asked for by number is held by a
	// process on the host or by another owner's reservation. The error is, or
	// wraps, a *ConflictError that says which.
	ErrConflict = errdefs.ErrConflict
	// ErrNotSupported means this program cannot do what was asked: a proxy
	// needs the program to run ocinet's helpers (ocinet.RunHelper).
	ErrNotSupported = errdefs.ErrNotSupported

	// ErrExhausted means every port of the range an allocation could choose
	// from (a host port pool such as 8000-8010:80, or the kernel's local port
	// range for an automatic port) is taken. It is distinct from ErrConflict.
	ErrExhausted = errors.New("no free host port")
)

// ConflictError reports a host port that cannot be reserved because something
// else holds it. errors.Is(err, ErrConflict) is true for it.
type ConflictError struct {
	// Port is the mapping that was asked for.
	Port Port
	// Owner is the owner key of the reservation that holds the port, or ""
	// when a socket of a process on the host holds it.
	Owner string
	// Label is the human name the other owner reserved under ("" when Owner
	// is "" or the owner gave none).
	Label string
}

// Error returns a message such as
//
//	publish 127.0.0.1:8080/tcp: host port 8080 is in use by another container (web)
//	publish 0.0.0.0:8080/tcp: host port 8080 is in use by a process on the host
func (e *ConflictError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("publish %s: host port %d is in use by a process on the host",
			e.Port.hostSide(), e.Port.HostPort)
	}
	name := e.Label
	if name == "" {
		name = e.Owner
	}
	return fmt.Sprintf("publish %s: host port %d is in use by another container (%s)",
		e.Port.hostSide(), e.Port.HostPort, name)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// kindError is an error with its own message that matches a sentinel through
// errors.Is without repeating the sentinel's text.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// invalidf returns an error that wraps ErrInvalid with the formatted message.
func invalidf(format string, a ...any) error {
	return &kindError{msg: fmt.Sprintf(format, a...), kind: ErrInvalid}
}

// exhaustedf returns an error that wraps ErrExhausted with the formatted
// message.
func exhaustedf(format string, a ...any) error {
	return &kindError{msg: fmt.Sprintf(format, a...), kind: ErrExhausted}
}
