// Package sandbox is one container's (or one pod sandbox's) network: the
// composition of an [ocinet.Manager] (CNI ADD and DEL with the journal),
// the hosts store (/etc/hosts of the container and of its peers), its
// /etc/resolv.conf and its pinned namespace, behind three calls:
//
//   - [Attach] connects a container whose network namespace is at a path:
//     a namespace the program made before the container (as containerd's
//     CRI plugin does), a created task's /proc/<pid>/ns/net, or the pin the
//     OCI hook made (package hook calls Attach from createRuntime);
//   - [Detach] undoes it;
//   - [GC] releases what crashed or vanished containers of one containerd
//     namespace left behind.
//
// [Config] says where the state lives and where the plugins are; it is
// fixed by the program, never taken from a container. A [Request] is what
// the container asks for, in typed values; [Request.Validate] checks it.
// Package hook carries a Request in an OCI annotation (its versioned JSON
// codec) and calls Attach and Detach from runc's hooks.
//
// [Request.Mode] chooses how the container is networked: through networks
// of its own (the zero value), [ModeNone] (loopback only) or [ModeHost]
// (the host's network), as docker's and nerdctl's --network none and host.
// In the last two nothing is attached and nothing is pinned: the Manager
// has no record of the container, only the hosts store has (a record on no
// network, which Detach and GC remove).
//
// Requirements: Linux and root, as for the Manager.
//
// Threads: nothing here switches a thread's namespace.
//
// Locks: the Manager's (per container, GC) and the hosts store's; Attach
// takes the Manager's before the store's, and Detach releases the store's
// record before running DEL.
//
// Errors: nil; errors.Is(err, ErrInvalid) for a request or configuration
// refused before anything changed (the sentinel is ocinet's, shared by
// every package); errors from the Manager and the hosts store otherwise,
// wrapped.
package sandbox

import "github.com/ocinet/ocinet/internal/errdefs"

// ErrInvalid reports a request or configuration that was refused before
// anything on the host changed.
var ErrInvalid = errdefs.ErrInvalid
