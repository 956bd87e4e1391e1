// Package ocinet attaches containers to CNI networks and detaches them, with
// the bookkeeping that running plugins alone does not give: network configs
// (a default "bridge" network made on first use), published ports reserved
// so that no two containers get the same host port, and a crash-safe journal
// of every attachment, so that teardown always runs with the exact config and
// arguments that were used to set the container up.
//
// A [Manager] owns one state root (default /var/lib/ocinet). Several
// processes may use the same root at once (container hooks run in parallel):
// every operation on a container holds a flock(2) on that container's lock
// file, and the first attachment to a network is serialised so that plugins
// that create shared firewall chains never race each other.
//
// The companion packages do the rest: [github.com/ocinet/ocinet/netns] for
// namespaces, [github.com/ocinet/ocinet/portmap] for the -p grammar and host
// port reservations, [github.com/ocinet/ocinet/hosts] for /etc/hosts and
// /etc/resolv.conf, and [github.com/ocinet/ocinet/hook] for the OCI hook that
// runs all of it from runc.
//
// Requirements: attaching runs CNI plugins, which need root on Linux.
//
// Lock order: the GC lock (shared for Attach and Detach) before a container's
// lock, before the network lock, before the port allocator's lock. The hosts
// store's lock is taken by callers after Attach has returned, never inside it.
//
// Errors:
//
//   - nil: done;
//   - errors.Is(err, ErrInvalid): bad input (an ID, a network name, a port
//     mapping, a namespace path that is missing or is the host's); nothing
//     changed on the host;
//   - errors.Is(err, ErrNotFound): a network or attachment that does not exist;
//   - errors.Is(err, ErrPluginNotFound): a plugin binary is missing from the
//     plugin directories; nothing changed on the host;
//   - errors.Is(err, portmap.ErrConflict): a host port is taken; the error is
//     a *portmap.ConflictError naming the owner;
//   - errors.Is(err, ErrPlugin): a plugin failed; everything that was set up
//     has been torn down again;
//   - anything else: a file or system error; the message names it.
package ocinet
