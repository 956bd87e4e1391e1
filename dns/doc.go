// Package dns is the DNS responder of ocinet's networks: on a bridge
// network with a gateway (unless the network's DNS is disabled, see
// ocinet.DNSOptions), containers resolve each other by DNS, as with
// docker's embedded DNS or podman's aardvark-dns, and not only through
// /etc/hosts.
//
// A responder serves one network. It listens on the network's gateway
// addresses, port 53, UDP and TCP, and nowhere else. It answers A and AAAA
// for the names, hostnames and aliases of the containers on the network
// (a name several containers share gives all their addresses, in an order
// that turns with each answer) and, as docker and podman do, for the short
// ID (the first 12 characters) of a container whose ID is 64 hexadecimal
// characters, as theirs and nerdctl's are; each of these names followed by
// the network's ("web.mynet"), as docker's DNS answers them; PTR for their
// addresses (with the names, hostnames and aliases); the same for the
// peers on the other networks of the container that asks (found by its
// source address), the network's own names first, then those of its other
// networks in their order, as with docker's DNS (a container on the
// network alone gets none of them); and NXDOMAIN for the other addresses
// of the network's subnets. It forwards every other
// query to the upstream servers, and refuses (REFUSED) any query whose
// source is outside the network's subnets. Its data are the hosts stores
// (package hosts) of every containerd namespace under the state root,
// which it follows with inotify: a record written or removed is read again
// alone, and the members of the network and of its containers' other
// networks are read through the store's per-network index, never by
// reading the whole store. The protocol is github.com/miekg/dns's.
//
// The containers nerdctl attached to a network of the same name are
// answered for too, by name, host name, short ID and name.network, with
// PTR: the responder reads (never writes) nerdctl's hosts store
// ([Config.Nerdctl], <root>/<address hash>/etchosts/<namespace>/<ID>/
// meta.json, every containerd address's), takes only their addresses that
// lie in the network's subnets (a network of the same name under another
// CNI configuration directory gives none), and reads the store again
// whenever inotify shows a change in it; a root that is not there yet is
// waited for through its parent directory. nerdctl's containers do not
// count as the network's members for the linger.
//
// # Processes
//
// There is no daemon. [Attach], called when a container has joined its
// hosts store, starts the responder of each of its networks that does not
// run yet ([Start]): a process of the program itself, started again through
// internal/reexec (the program calls reexec.Run first thing in main; test
// binaries in TestMain), in a session of its own, with /dev/null as
// standard input and output and its log file, dns/<network>.log under the
// state root, as standard error, so that it holds none of a hook's pipes.
// Its pid and start time are in dns/<network>.pid; a pid that another
// process took since is never signalled. A responder that died (SIGKILL
// included) is started again by the next Attach or [Repair]; it loses
// nothing, since it holds no state of its own. Once its network has had
// no container for its linger (Config.Linger; package sandbox gives
// DefaultLinger, 2 s), a responder reads the stores again under the
// responders' lock and, finding none still, stops on its own: the
// network's next container, if it comes sooner, finds it running and pays
// no start. [Release], called after a container left its store, leaves
// lingering responders to that and stops at once those of networks without
// containers that do not linger; [StopUnused], called from GC, stops every
// one of those at once.
//
// A network gets a responder when its bridge holds the gateway address
// (isGateway; nerdctl's internal networks have none) and its DNS is not
// disabled ([NetworkConfig]). A network without masquerade (ocinet's
// internal networks) gets no upstream servers: names outside it get
// SERVFAIL, so DNS is no way out of it either.
//
// Upstream servers are the state root's dns/resolv.conf when it exists,
// otherwise those that package hosts chooses for a resolver on the host
// ([hosts.Upstreams]: the host's own, its loopback stub included, since the
// responder runs on the host side), on port 53.
//
// # Bounds
//
// A responder runs a fixed number of goroutines ([WithLimits]): readers
// per UDP socket (which answer local names themselves), forwarded queries
// in flight (beyond that bound, SERVFAIL), TCP connections (beyond that
// bound, they wait in the kernel's backlog), each with read, write and idle
// timeouts. A datagram larger than 4096
// bytes is dropped; a malformed query with a readable header gets FORMERR;
// one shorter than a header, or a response, is dropped.
//
// # Requirements
//
// Linux (inotify, IP_FREEBIND, setsid) and the right to bind port 53 on the
// gateway addresses: root, or CAP_NET_BIND_SERVICE. [Server] itself, on
// another port, needs neither.
//
// # Locks
//
// Starting and stopping responders holds an exclusive flock on dns/.lock
// under the state root; it is taken after the hosts store's lock has been
// released, and while it is held this package takes the hosts store's
// shared lock only (to read members). A Server is safe for use by several
// goroutines.
//
// # Errors
//
//   - nil: done.
//   - errors.Is(err, ErrInvalid): a bad configuration or argument, named in
//     the message; nothing was started.
//   - errors.Is(err, ErrNotSupported): this program does not run ocinet's
//     helpers (reexec.Run is not called), so no responder can be started.
//   - anything else: the responder could not start (the message says why,
//     such as "address already in use") or a file under the state root
//     could not be read or written.
package dns
