// Package inproc runs the standard CNI plugins bridge, host-local (as the
// bridge's IPAM), loopback, tuning, portmap and firewall of
// containernetworking/plugins v1.9.1 inside the calling process, behind the
// CNI library's invoke.Exec interface, so that a Manager built with
// ocinet.WithExec(inproc.New(...)) sets containers up without starting a
// plugin process for them. Plugins and configs it does not claim (any
// other type, any field it does not implement) run through the fallback
// executor, exactly as before.
//
// What is claimed: a plugin config whose type is bridge, loopback, tuning,
// portmap or firewall and whose every field is one this package implements
// (see [ClaimsPlugin]); a bridge's IPAM must be host-local with one range
// per range set; portmap only in the configuration the templates write
// ({"type":"portmap","capabilities":{"portMappings":true}}: snat,
// markMasqBit, conditionsV4/V6, backend and the rest run the binary);
// firewall without a field or with ingressPolicy "", "none" or
// "same-bridge" (backend, firewalldZone, iptablesAdminChainName run the
// binary). The decision depends on the config and CNI_ARGS alone, so that
// the DEL of an attachment runs where its ADD ran. [Claims] tells whether
// a whole conflist would run in process.
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
// container end created in the namespace, named as the plugin names them;
// both ends get a random, locally administered MAC chosen here rather
// than by the kernel (the same kind of address, which udev's MAC policy
// then leaves alone), unless the config names the container's. Under
// [WithUnfinished] the bridge returns its result before it has configured
// the container's interface, and finishes meanwhile (see there); under
// [WithChain] it adds the elements of the chain's portmap and firewall
// itself, beside its veth pair, and their ADDs find them made.
// Ports and the firewall live in this package's table instead of the
// plugins' (ip cni_hostport, iptables' CNI-* chains), which it never
// touches; a host port mapped twice fails the second ADD (ErrConflict)
// where the binary adds a second rule that never matches; the bridge's
// DEL also removes the conntrack entries of the container's addresses
// (portmap's binary does it for UDP mappings only); hairpin masquerade
// covers the network's subnets (the binary marks per mapping).
//
// Port publishing and the firewall, in one nftables table. Chains are
// written once per host, elements once per network and per container: the
// portmap ADD adds every mapping of the container in one netlink
// transaction, whatever their number, and a DEL removes exactly the
// attachment's elements in one transaction (the first of firewall's and
// portmap's DEL removes them all; a transaction that deletes waits for a
// kernel grace period, about 12 ms here). Each element of a container
// carries the comment [AttachmentComment] (network, container ID,
// interface), which DEL, CHECK and GC (cni.dev/valid-attachments) go by;
// those of a network [NetworkComment], removed by [RemoveNetwork]. If the
// table or one of its static chains or sets is gone (nft flush ruleset),
// the next ADD makes them again; CHECK names an element that is missing.
// What a user of the binaries sees is kept: a published port answers from
// the host on 127.0.0.1 (route_localnet on the bridge, and loopback-sourced
// traffic masqueraded), on the bridge's gateway, on the host's addresses
// and from other hosts; a container reaches its own and its neighbours'
// published ports through the host (hairpin: traffic from the network's
// subnets to a published port is masqueraded); UDP, SCTP, IPv4 and IPv6
// (an empty host IP publishes on both families the container has; [::1]
// is not served by rules but by the Manager's proxy). A port published on
// a 127.0.0.0/8 address is dropped when it did not come in on lo.
// Isolation (ingressPolicy same-bridge): forwarding between two isolated
// bridges that are not the same one is dropped, both ways; a bridge whose
// firewall ran as the binary through this executor is made isolated in
// the table too (the binary's own isolation chains see only the bridges
// registered there). The firewall's per-container forward accept is kept
// as elements (the containers' addresses), but an accept verdict in one
// nftables table does not override a drop in another: see [Preflight],
// which the firewall's ADD runs and which a caller runs to choose between
// this package and the binaries.
//
// DEL of the bridge deletes the veth (from inside the namespace: deleting
// the container's end deletes both), then the conntrack entries of the
// container's addresses (a UDP flow to a published port would keep going
// to the old address), and only then releases the lease: an address or a
// port is never live for two containers.
//
// Layout of the nftables table (the static part is made on first use and
// kept, like the plugins' shared chains; [StaticChains], [StaticSets]):
//
//	table inet ocinet
//	  chain postrouting     nat hook postrouting, priority srcnat: returns
//	                        multicast (224.0.0.0/4, ff00::/8), then one
//	                        "jump masq-<bridge>" per bridge (comment
//	                        "ocinet:net=<bridge>")
//	  chain masq-<bridge>   one masquerade rule per subnet of the networks
//	                        on the bridge: source in the subnet, in from
//	                        the bridge and out through another interface
//	                        (the host's own traffic from the gateway
//	                        address is left alone, as by the plugin)
//	                        (comment "ocinet:net=<bridge> subnet=<cidr>")
//	  chain prerouting      nat hook prerouting, priority dstnat: drop what
//	                        did not come in on lo for a port published on
//	                        127.0.0.0/8 (counted), then jump hostports
//	  chain output          nat hook output, priority dstnat: jump hostports
//	  chain hostports       dnat to "meta l4proto . ip daddr . th dport map
//	                        @ports4", then, for a local destination
//	                        ("fib daddr type local"), "meta l4proto . th
//	                        dport map @ports4-any"; the same for IPv6
//	                        (ports6, ports6-any)
//	  chain hostports-snat  nat hook postrouting, priority srcnat:
//	                        masquerade after dnat what comes from
//	                        127.0.0.0/8 or from @subnets4 / @subnets6
//	  chain forward         filter hook forward, priority filter: drop
//	                        "iifname @isolated oifname @isolated iifname .
//	                        oifname != @same-bridge" (counted); accept
//	                        from @forward4/6, and to them when established
//	  maps ports4, ports4-any, ports6, ports6-any: a container's mappings
//	  sets subnets4/6 (intervals), isolated, same-bridge: a network's
//	  sets forward4/6: a container's addresses
//
// Needs: Linux and root (CAP_NET_ADMIN, CAP_SYS_ADMIN), nf_tables with
// nat, fib, ct and concatenated sets (Linux 5.6 or later). No process is
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
// <runtime dir>/inproc/nftables.lock, taken after it; elements are added
// and deleted without a lock (each transaction is atomic, and a host port
// already mapped to another container fails the whole ADD); leases are taken
// under host-local's own lock in its data directory (default
// /var/lib/cni/networks/<network>/lock), as the binary does: the leases,
// releases and lookups of one directory that wait meanwhile are served
// under one holding of it, and host-local's lookups by container are
// answered from an index of the directory, kept while an inotify watch
// shows no change but this process's own (leasedir.go).
//
// Errors from ExecPlugin are *types.Error values (the CNI error JSON a
// plugin prints, which the CNI library passes on) whose message names what
// failed; they also wrap one of this package's sentinels where one fits:
//
//   - nil: done;
//   - errors.Is(err, ErrInvalid): bad config or arguments; nothing changed;
//   - errors.Is(err, ErrNotFound): the namespace is gone (ADD, CHECK);
//   - errors.Is(err, ErrNotFound): CHECK: an element of the attachment is
//     missing from the table (the error names it);
//   - errors.Is(err, ErrConflict): the interface name is taken in the
//     namespace, the bridge name is taken by a link that is not a bridge,
//     the subnet has no free address, or a host port is published for
//     another container; nothing is left behind;
//   - errors.Is(err, ErrNotSupported): Claims and ClaimsPlugin: a plugin
//     or field that is not implemented here (the error names it);
//     Preflight and the firewall's ADD: a forward chain with policy drop
//     or firewalld would drop the traffic (the error names it);
//   - anything else: a system call failed; the message names it.
package inproc
