// Package netns creates, pins, opens, runs code in, lists, sweeps and
// removes persistent network namespaces: namespaces that outlive the
// processes inside them because a file in a namespace directory (default
// /var/run/netns, the one `ip netns` uses) is a bind mount of the
// namespace.
//
// Two ways to get one:
//
//   - [Create] makes a new, empty namespace under a name, random
//     ([RandomName], "cni-<uuid>") or chosen by the caller (a container ID),
//     which is what containerd's CRI plugin does before a pod starts;
//   - [Pin] binds the namespace of a running process, /proc/<pid>/ns/net,
//     onto a name, so that the namespace can still be torn down after the
//     process has exited and a reused PID cannot redirect the teardown.
//
// [Remove] undoes either; [Closed] tells whether a path still holds one.
// [Check] and [Open] tell whether a path is a network namespace, and refuse
// the host's own; [NetNS.Do] runs a function inside an open one. [List] and
// [Sweep] find the namespaces in a directory and remove those a caller
// says are orphans, with the empty files that crashes leave. [Hold] keeps a
// small process inside a namespace and hands out its /proc/<pid>/ns/net,
// for CNI plugins that accept nothing else.
//
// Requirements: Linux and CAP_SYS_ADMIN (root). On other systems every
// function returns [ErrNotSupported] (and [Closed] reports true).
//
// Threads: no function here switches the caller's OS thread into another
// namespace. [Create] and [NetNS.Do] do their namespace work on a fresh
// goroutine locked to its own thread, and unlock it only once it is back in
// its original namespace; if it cannot be put back, the goroutine exits
// locked and the runtime throws the thread away. The main thread is never
// used for this. netns/README.md explains why all of this matters, and how
// [Hold]'s helper process works.
//
// Files and locks: the namespace directory is locked with flock(2), the
// lock `ip netns` takes, while it is made a shared bind mount of itself and
// while a namespace is bound into it; [Sweep] takes it to delete stale
// files. Namespace files are created with O_EXCL. Handles from [Open] are
// closed by the caller; [Hold]'s release function must be called once the
// holder is no longer needed.
//
// Errors:
//
//   - nil: done;
//   - errors.Is(err, ErrInvalid): a bad name, PID, path or argument; nothing changed;
//   - errors.Is(err, ErrNotFound): the path or process does not exist;
//   - errors.Is(err, ErrNotNetNS): the path exists but is not a network
//     namespace (Remove leaves such a file alone unless it is an empty,
//     stale mount point);
//   - errors.Is(err, ErrHostNamespace): the path is the host's own network
//     namespace, which nothing here attaches to;
//   - errors.Is(err, ErrExists): the name already holds another namespace;
//   - errors.Is(err, ErrBusy): Remove found the file still a mount point
//     after retrying for a couple of seconds; retry later;
//   - errors.Is(err, ErrClosed): a [NetNS] used after Close;
//   - errors.Is(err, ErrNotSupported): not Linux;
//   - anything else: a system call failed, or a [NetNS.Do] function's own
//     error; the error names it.
package netns
