// Package inproc runs the standard CNI plugins bridge, host-local (as the
// bridge's IPAM), loopback and tuning of containernetworking/plugins v1.9.1
// inside the calling process, behind the CNI library's invoke.Exec
// interface, so that a Manager built with ocinet.WithExec(inproc.New(...))
// sets containers up without starting a plugin process for them. Plugins
// and configs it does not claim (portmap, firewall, any field it does not
// implement) run through the fallback executor, exactly as before.
//
// What is claimed: a plugin config whose type is bridge, loopback or
// tuning and whose every field is one this package implements (see
// [ClaimsPlugin]); a bridge's IPAM must be host-local with one range per
// range set. The decision depends on the config and CNI_ARGS alone, so
// that the DEL of an attachment runs where its ADD ran. [Claims] tells
// whether a whole conflist would run in process.
//
// What it does, as the plugins do: the bridge (name, MTU, gateway
// addresses when isGateway, IP forwarding, hairpin, promiscuous mode, its
// MAC pinned), a veth pair made with its container end directly inside
// the container's namespace, addresses and routes set through a netlink
// handle opened in that namespace, host-local leases in the plugin's own
// on-disk format (so the binary and nerdctl share them), and tuning's MAC
// and sysctls with the plugin's checks and backup file. One thing is done
// differently: ipMasq is one masquerade chain per network in the nftables
// table "inet ocinet" ([TableName], [TableFamily]), made with the bridge,
// instead of a rule per container; [RemoveNetwork] removes it. CHECK, GC
// and STATUS of claimed plugins run in process too (GC and STATUS do what
// the v1.9.1 binaries do, which is nothing).
//
// Where it differs from the binaries, on purpose: masquerade is per network
// (above) rather than a rule per container in the plugin's own table; the
// per-network setup comes before the veth pair rather than after the
// lease, so the bridge's MAC is pinned to its own rather than to its first
// port's (stable either way); a lease directory that is a symbolic link is
// refused by ADD (and left alone by DEL); tuning's DEL removes its backup
// file also when the namespace is gone; a config that ADD refuses can
// always be deleted. The veth pair is made from the host side with the
// container end created in the namespace, named as the plugin names them.
//
// Layout of the nftables table (the static part is made on first use and
// kept, like the plugins' shared chains):
//
//	table inet ocinet
//	  chain postrouting   nat hook postrouting, priority srcnat: returns
//	                      multicast (224.0.0.0/4, ff00::/8), then one
//	                      "jump masq-<bridge>" per bridge (comment
//	                      "ocinet:net=<bridge>")
//	  chain masq-<bridge> one masquerade rule per subnet of the networks on
//	                      the bridge: source in the subnet, in from the
//	                      bridge and out through another interface (the
//	                      host's own traffic from the gateway address is
//	                      left alone, as by the plugin) (comment
//	                      "ocinet:net=<bridge> subnet=<cidr>")
//
// A later part can add port maps and isolation the same way: static chains
// made once per host and per network, and per container only elements of
// sets and maps.
//
// Needs: Linux and root (CAP_NET_ADMIN, CAP_SYS_ADMIN). No process is
// started for claimed plugins; no ip, iptables or nft command is run.
//
// Threads: links, addresses and routes inside a container's namespace
// are set through a netlink handle opened there (netlink.NewHandleAt);
// the few sysctls inside it are written on a fresh locked goroutine by
// netns.NetNS.Do. The caller's thread never changes namespace. An Exec is
// safe for concurrent use.
//
// Locks: the per-network setup (bridge, its addresses, forwarding, the
// masquerade chain) is made under a flock(2) on
// <runtime dir>/inproc/bridge-<bridge>.lock (default runtime dir
// /run/ocinet), and changes to the table's static part under
// <runtime dir>/inproc/nftables.lock, taken after it; leases are taken
// under host-local's own lock in its data directory (default
// /var/lib/cni/networks/<network>/lock), as the binary does.
//
// Errors from ExecPlugin are *types.Error values (the CNI error JSON a
// plugin prints, which the CNI library passes on) whose message names what
// failed; they also wrap one of this package's sentinels where one fits:
//
//   - nil: done;
//   - errors.Is(err, ErrInvalid): bad config or arguments; nothing changed;
//   - errors.Is(err, ErrNotFound): the namespace is gone (ADD, CHECK);
//   - errors.Is(err, ErrConflict): the interface name is taken in the
//     namespace, the bridge name is taken by a link that is not a bridge,
//     or the subnet has no free address; nothing is left behind;
//   - errors.Is(err, ErrNotSupported): Claims and ClaimsPlugin: a plugin
//     or field that is not implemented here (the error names it);
//   - anything else: a system call failed; the message names it.
package inproc
