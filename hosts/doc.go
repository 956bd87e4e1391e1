// Package hosts keeps the /etc/hosts and /etc/resolv.conf files of
// containers. A Store is one directory per scope (one containerd namespace)
// holding a record per container (its name, hostname, addresses on each
// network and extra hosts) and, per container, a hosts and a resolv.conf
// file that the runtime bind-mounts into the container. Containers that
// share a network find each other by name: when one joins or leaves, the
// store rewrites the hosts files of exactly the containers that share a
// network with it, found through a per-network index, so the cost of an
// event grows with its peers and not with every container in the scope.
// On a network marked [Network.PeersByDNS] peers are left out of hosts
// files (the network's DNS responder, package dns, answers for them), so a
// join or leave there writes the container's own file alone. A record's
// aliases are for DNS only and never written into a hosts file. Readers
// that follow the store (the responder) read a network's members with
// [Store.Members] and watch [Store.RecordsDir].
//
// A hosts file lists, as docker, podman and nerdctl do, the local entries,
// then the extra hosts (--add-host), then the container's own names, then
// its peers'. An extra host wins: the names it defines are left out of the
// lines after it, so a name that a peer and an extra host both define
// resolves to the extra host's address.
//
// # Requirements
//
// Linux (flock(2)). No root is needed: a Store only touches files under its
// directory, and tests run in a temporary one. Paths come only from the
// store's directory and validated container IDs and network names.
//
// # Files edited in place
//
// The hosts and resolv.conf files are bind-mounted into the container, and a
// bind mount holds on to the inode, not to the path. So these files are
// never replaced by a rename, which would leave the container reading the
// old inode: they are opened without O_TRUNC, written with one write of the
// full content at offset 0, then truncated to that length. They must exist
// before the container is created, since runc mounts them before any hook
// runs: call [Store.Prepare] first. A reader inside the container may see a
// half-written file during an update, and a crash may leave one torn. That
// is repaired by writing again, because the files are derived from the
// records: [Store.Repair] rewrites them all. The records themselves are
// replaced whole (a temporary file renamed over the old one), without
// fsync: they describe running containers, which a reboot ends, so a crash
// of the machine may lose or damage one without harm (a damaged record is
// mended by joining again).
//
// A hosts file holds a managed block between two marker comment lines,
// rewritten on every update, then the lines the user added inside the
// container, which are kept. A begin marker without an end marker (a torn
// block) extends to the end of the file. Blank comment lines ("#" and
// spaces) and trailing empty lines outside the block are dropped: the store
// uses them as padding so that a crash between the write and the truncate
// leaves a valid file. Only the first MiB of a hosts file is read back.
//
// # Locking
//
// Every method that changes the store (Prepare, Join, Leave, Remove, Repair,
// WriteResolvConf) holds an exclusive flock(2) on dir/.lock; Get, List and
// Render hold a shared one. The lock excludes other processes and other
// goroutines of this one alike. Lock order: the hosts store lock is taken
// after the Manager's per-container lock, and never while the port
// allocator's lock is held. It is a leaf: while holding it, this package
// takes no other lock.
//
// # Errors
//
//   - nil: done.
//   - errors.Is(err, ErrInvalid): bad input (container ID, name, network
//     name, address, extra host, host-gateway on a network without a
//     gateway, DNS setting, a host resolv.conf over 64 KiB); the message
//     quotes the bad value and nothing on disk has changed.
//   - errors.Is(err, ErrNotFound): Get or Render of a container without a
//     record.
//   - anything else: an I/O error, or a damaged record file, which the
//     message names. Join of that container rewrites it, Leave and Remove
//     delete it, and Repair treats it as absent.
package hosts
