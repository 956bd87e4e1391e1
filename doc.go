// Package ocinet attaches containers to CNI networks and detaches them, with
// the bookkeeping that running plugins alone does not give: network configs
// (a default "bridge" network made on first use, bridge networks made in
// nerdctl's conflist format), published ports reserved so that no two
// containers get the same host port, and a crash-safe journal of every
// attachment, so that teardown always runs with the exact config and
// arguments that were used to set the container up.
//
// A [Manager] owns one state root (default /var/lib/ocinet). Several
// processes may use the same root at once (container hooks run in parallel):
// every operation on a container holds a flock(2) on that container's lock
// file, and the first attachment to a network after boot is serialised so
// that plugins that create shared firewall chains never race each other.
//
// What it does:
//
//   - networks: [Manager.CreateNetwork] (bridge, macvlan, ipvlan),
//     [Manager.Networks], [Manager.Network], [Manager.RemoveNetwork],
//     [Manager.PruneNetworks], in nerdctl v2's layout: the conf dir's top
//     level and, per containerd namespace ([WithNamespace]), its directory
//     of nerdctl-<name>.conflist files;
//   - containers: [Manager.Attach] (several networks, eth0 first, static
//     addresses and MACs, published ports), [Manager.Detach],
//     [Manager.Check] (CNI CHECK), [Manager.Get], [Manager.List];
//   - recovery: [Manager.GC] finishes what crashes left half done, releases
//     containers that no longer run, and sends CNI GC; [Manager.Status]
//     runs CNI STATUS.
//
// The journal: one record per attachment under <state>/attachments, written
// (phase "adding", atomically: a crash leaves the old or the new record
// whole) before the first ADD, updated as soon as a plugin
// reports the container's addresses, rewritten after the last ADD (phase
// "attached", with the results, the exact conflist bytes and the CNI_ARGS
// and capability arguments used), marked "detaching" before the first DEL
// and removed after the last. DEL always runs from the record, in reverse
// order, and with the namespace gone or replaced it runs in a placeholder
// namespace that holds the recorded interfaces, so that plugins still find
// the addresses and firewall rules to remove.
//
// Attach goes plan → journal → ADD → commit (plan.go, attach.go): the
// request is checked and its networks resolved once before anything
// changes; the record is written before any plugin makes anything of the
// container's; each
// network's ADD runs through an executor built for that call, which hands
// every plugin's result to the journal; the record is committed. Any
// failure after the first write has one way back, the same teardown Detach
// runs (detach.go). docs/architecture.md in the repository walks through
// it step by step.
//
// The companion packages do the rest: [github.com/ocinet/ocinet/netns] for
// namespaces, [github.com/ocinet/ocinet/portmap] for the -p grammar, host
// port reservations and the IPv6 loopback proxy,
// [github.com/ocinet/ocinet/hosts] for /etc/hosts and /etc/resolv.conf,
// [github.com/ocinet/ocinet/sandbox] for one container's whole network
// (Manager, hosts files and pin together), and
// [github.com/ocinet/ocinet/hook] for the OCI hook that runs it from runc.
//
// Requirements: attaching runs CNI plugins, which need root on Linux. What
// the Manager does to the host itself (placeholder namespaces, bridge
// removal, the prefixes in use) goes through netlink, and RemoveNetwork
// deletes the firewall plugin's isolation rules through nftables netlink
// (CAP_NET_ADMIN); it starts no ip, iptables or nft process. Listing and
// creating networks needs only access to the conf dir.
//
// Helper processes: the IPv6 loopback proxy and the netns holder are this
// program started again; a program that embeds ocinet calls [RunHelper]
// first in main. Nothing in ocinet exits a program from a package init.
//
// Threads: no method switches the calling thread's namespace. Work inside
// a namespace runs through netlink handles opened there, or netns.Do on a
// goroutine of its own.
//
// Locks, in the order they are taken (public methods lock, private ones
// never): the GC lock (shared for Attach, Detach and Check; exclusive for
// GC and RemoveNetwork, which thereby wait for operations in progress and
// hold new ones back), then a container's lock, then the netconf lock
// (network creation and removal), then nerdctl's lock on the conf dir
// (<conf dir>/.nerdctl.lock, flock exclusive, held by nerdctl v2 around
// its own network create and remove), then a network's lock (exclusive for the
// first ADD after boot, shared after), then the port allocator's lock. The
// hosts store's lock is taken by callers after Attach has returned, never
// inside it.
//
// Errors:
//
//   - nil: done;
//   - errors.Is(err, ErrInvalid): bad input (an ID, a network name or
//     config, a static address or MAC, a port mapping, a namespace path that
//     is missing or is the host's); nothing changed on the host;
//   - errors.Is(err, ErrNotFound): a network or attachment that does not exist;
//   - errors.Is(err, ErrConflict): the request collides with existing state:
//     a network name or subnet taken, a static address in use (the error
//     names the owner), a network still in use (an *InUseError naming the
//     containers); nothing changed;
//   - errors.Is(err, ErrNotSupported): a well-formed request for what
//     ocinet does not do (IPv6 or --internal on macvlan/ipvlan); nothing
//     changed;
//   - errors.Is(err, ErrPluginNotFound): a plugin binary is missing from the
//     plugin directories; nothing changed on the host;
//   - errors.Is(err, portmap.ErrConflict): a host port is taken; the error is
//     a *portmap.ConflictError naming the owner;
//   - errors.Is(err, ErrPlugin): a plugin failed; after a failed Attach,
//     everything that was set up has been torn down again (or, if the
//     teardown failed too, is recorded for GC); after a failed Detach the
//     record is kept and a later Detach or GC tries again;
//   - errors.Is(err, ErrIncomplete): Check found the attachment half done;
//   - anything else: a file or system error; the message names it.
package ocinet
