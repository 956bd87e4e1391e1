// Package netns creates, pins, checks and removes persistent network
// namespaces: namespaces that outlive the processes inside them because a
// file in a namespace directory (default /var/run/netns, the one `ip netns`
// uses) is a bind mount of the namespace.
//
// Two ways to get one:
//
//   - [Create] makes a new, empty namespace under a name (what containerd's CRI
//     plugin does before a pod starts);
//   - [Pin] binds the namespace of a running process, /proc/<pid>/ns/net, onto
//     a name, so that the namespace can still be torn down after the process
//     has exited and a reused PID cannot redirect the teardown.
//
// [Remove] undoes either. [Check] tells whether a path is a network
// namespace, and refuses the host's own.
//
// Requirements: Linux and CAP_SYS_ADMIN (root). On other systems every
// function returns [ErrNotSupported].
//
// Threads: no function here switches the caller's OS thread into another
// namespace. [Create] does its work on a fresh goroutine locked to its own
// thread, which exits without unlocking, so the Go runtime throws that thread
// away instead of reusing it. netns/README.md explains why that matters.
//
// The namespace directory is locked with flock(2) while it is prepared, and
// is made a shared bind mount of itself (as `ip netns` does), so that
// namespace files mounted in it propagate to mount namespaces that copied it.
//
// Errors:
//
//   - nil: done;
//   - errors.Is(err, ErrInvalid): a bad name, PID or path; nothing changed;
//   - errors.Is(err, ErrNotFound): the path or process does not exist;
//   - errors.Is(err, ErrNotNetNS): the path exists but is not a network namespace;
//   - errors.Is(err, ErrHostNamespace): the path is the host's own network namespace;
//   - errors.Is(err, ErrExists): the name already holds another namespace;
//   - errors.Is(err, ErrNotSupported): not Linux;
//   - anything else: a system call failed; the error names it.
package netns
