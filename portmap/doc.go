// Package portmap publishes container ports on the host: it parses and
// validates the -p grammar of Docker and nerdctl
// ([hostIP:][hostPort[-end]:]containerPort[-end][/protocol]) into a Mapping,
// expands mappings to concrete Ports, and reserves host ports through an
// Allocator that detects conflicts with sockets listening on the host and
// with other containers' reservations, safely across goroutines and
// processes. The result converts to go-cni's PortMapping (package portmap/gocni) or travels
// as JSON in the form of the CNI "portMappings" capability. The package
// knows nothing of CNI plugins or namespaces; it only decides which ports.
//
// # Requirements
//
// Parsing, validation and expansion work everywhere and need no privilege.
// The Allocator needs no root either, only a directory it can write; but it
// reads the host's sockets and local port range from Linux's /proc, so on
// other systems Reserve fails, and it relies on flock(2), so on systems
// without it NewAllocator fails. /proc/net describes the network namespace
// of the calling process: call the Allocator from the host's namespace.
//
// # Locking
//
// An Allocator's methods take an in-process mutex, then an flock(2) on
// <dir>/.lock, and hold both only for the duration of the call. No other
// lock of this library is taken while they are held, so callers may hold
// their own locks around Allocator calls.
//
// # Errors
//
//   - nil: success.
//   - errors.Is(err, ErrInvalid): a malformed -p value, Mapping, owner key or
//     directory; the message names the offending part.
//   - errors.Is(err, ErrConflict): a host port asked for by number is held
//     by a host process or another owner; errors.As gives a *ConflictError
//     saying which.
//   - errors.Is(err, ErrExhausted): a pool (8000-8010:80) or the local port
//     range has no free port left.
//   - anything else: reading /proc or the reservation directory failed.
//
// # Differences from Docker and nerdctl
//
// The grammar is nerdctl's, a little stricter. Like nerdctl (and unlike
// Docker) an IPv6 host IP must be in brackets: "::1:8080:80" is refused.
// Also refused, though Docker takes them: an IPv4 address in brackets, an
// empty host IP ("::80"), and a zoned or IPv4-mapped IPv6 address. Refused
// everywhere: whitespace, signs, and values over 128 bytes. Leading zeros in
// port numbers are accepted ("080" is 80), as both do. Automatic ports come
// from the kernel's ip_local_port_range, as Docker's do (nerdctl uses a
// fixed 49153-60999), scanning from its start every time under the lock,
// so that no two processes ever receive the same port.
package portmap
