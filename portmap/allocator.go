package portmap

import (
	"fmt"
	"os"
	"slices"
	"sync"
)

// Allocator reserves host ports for owners (containers) and keeps the
// reservations in a directory, one JSON file per owner, so that every
// process using the same directory sees them. It is safe for concurrent use
// by goroutines and by processes.
//
// A port is free when no other owner's reservation and no host socket holds
// it for an overlapping address (see Reserve). Host sockets are those of the
// calling process's network namespace: TCP sockets in the LISTEN state
// (through sock_diag, or /proc/net/tcp{,6} where the kernel has no
// sock_diag for TCP), and every bound UDP socket and SCTP endpoint
// (/proc/net/{udp,udp6} and /proc/net/sctp/eps). Automatic ports come from
// /proc/sys/net/ipv4/ip_local_port_range, skipping
// /proc/sys/net/ipv4/ip_local_reserved_ports.
type Allocator struct {
	dir string
	// readFile reads a kernel file by its /proc path. It is readKernelFile
	// except in tests.
	readFile func(name string) ([]byte, error)
	// listeners lists the listening TCP sockets through sock_diag; nil
	// (in tests) reads them from readFile's /proc/net/tcp{,6}.
	listeners func() ([]socket, error)

	// Locking contract: every exported method takes mu, then the flock on
	// dir/.lock (exclusive to write, shared to read), and releases both
	// before it returns; unexported methods and functions never lock. mu
	// serialises this process's goroutines; the flock serialises processes
	// (flock locks belong to an open file description, so the flock alone
	// would also work within one process, but mu avoids a file descriptor
	// per waiting goroutine).
	mu sync.Mutex
}

// NewAllocator returns an Allocator keeping its reservations in dir, which
// it creates (mode 0700) if needed. Several Allocators, in one process or
// many, may share dir.
func NewAllocator(dir string) (*Allocator, error) {
	if dir == "" {
		return nil, invalidf("port reservation directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create port reservation directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("port reservation directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("port reservation directory %s is not a directory", dir)
	}
	a := &Allocator{dir: dir, readFile: readKernelFile, listeners: listeningTCP}
	// Create the lock file now, so that a directory we cannot use fails here.
	f, err := lockDir(dir, false)
	if err != nil {
		return nil, fmt.Errorf("port reservation directory %s: %w", dir, err)
	}
	f.Unlock()
	return a, nil
}

// Reserve resolves ms to concrete Ports for owner, checks them, records them
// and returns them, in the order of ms. owner is an opaque non-empty key
// (such as "default/web"); label is a human name used in other owners'
// conflict messages (such as "web").
//
// Host ports given by number (8080:80, 8000-8002:80-82) must be free. A pool
// (8000-8010:80) takes its lowest free port. A mapping without host ports
// (80, 127.0.0.1::80, 80-82) takes the lowest contiguous block of free ports,
// one per container port, from the kernel's local port range less its
// reserved ports. A port is held when a host socket or another owner's
// reservation has the same protocol and port on an overlapping address:
// tcp, udp and sctp never collide with each other; 127.0.0.1 and 127.0.0.2
// do not overlap; 0.0.0.0 overlaps every IPv4 address, :: every address of
// both families (Linux's dual-stack wildcard), and a Mapping without a host
// IP overlaps everything.
//
// Identical mappings in ms are merged; two different mappings of ms that
// overlap are an ErrInvalid error. Reserve is all or nothing: on error
// nothing is recorded and the owner's previous reservation, if any, stays.
//
// Reserving again for an owner that already holds a reservation for the
// same mappings returns that reservation unchanged, without checking the
// host again (a hook may run twice). For different mappings the owner's
// reservation is replaced: its old ports count as free for the new choice.
// An empty ms leaves the owner with no reservation.
//
// Errors: ErrInvalid for a bad owner or mapping; a *ConflictError (wrapping
// ErrConflict) for a port given by number that is held; ErrExhausted when a
// pool or the local port range has no free port left; anything else for
// I/O.
func (a *Allocator) Reserve(owner, label string, ms []Mapping) ([]Port, error) {
	name, err := checkOwner(owner)
	if err != nil {
		return nil, err
	}
	want, err := normalize(ms)
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	lock, err := lockDir(a.dir, true)
	if err != nil {
		return nil, fmt.Errorf("reserve ports for %q: %w", owner, err)
	}
	defer lock.Unlock()

	if len(want) == 0 {
		if err := removeRecord(a.dir, name); err != nil {
			return nil, fmt.Errorf("reserve ports for %q: %w", owner, err)
		}
		return nil, nil
	}
	records, err := readRecords(a.dir, true)
	if err != nil {
		return nil, fmt.Errorf("reserve ports for %q: %w", owner, err)
	}

	taken := takenSet{}
	for _, r := range records {
		if r.Owner == owner {
			if !slices.Equal(r.Mappings, want) {
				continue // being replaced
			}
			if r.Label != label {
				r.Label = label
				if err := writeRecord(a.dir, r); err != nil {
					return nil, err
				}
			}
			return slices.Clone(r.Ports), nil
		}
		for _, p := range r.Ports {
			taken.add(p.Protocol, p.HostPort, holder{addr: p.HostIP, owner: r.Owner, label: r.Label})
		}
	}
	for _, proto := range protocols(want) {
		socks, err := a.readSockets(proto)
		if err != nil {
			return nil, fmt.Errorf("reserve ports for %q: %w", owner, err)
		}
		for _, s := range socks {
			taken.add(proto, s.port, holder{addr: s.addr})
		}
	}

	res := resolver{taken: taken, local: a.readLocalPorts}
	ports, err := res.resolve(want)
	if err != nil {
		return nil, err
	}
	rec := &record{Version: recordVersion, Owner: owner, Label: label, Mappings: want, Ports: ports}
	if err := writeRecord(a.dir, rec); err != nil {
		return nil, err
	}
	return slices.Clone(ports), nil
}

// normalize validates ms, fills in the default protocol and merges
// identical mappings, keeping the first.
func normalize(ms []Mapping) ([]Mapping, error) {
	out := make([]Mapping, 0, len(ms))
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			return nil, err
		}
		m.Protocol = m.protocol()
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// protocols lists the distinct protocols of ms.
func protocols(ms []Mapping) []string {
	var out []string
	for _, m := range ms {
		if !slices.Contains(out, m.Protocol) {
			out = append(out, m.Protocol)
		}
	}
	return out
}

// Release removes owner's reservation. Releasing an owner that has none is
// not an error.
func (a *Allocator) Release(owner string) error {
	name, err := checkOwner(owner)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	lock, err := lockDir(a.dir, true)
	if err != nil {
		return fmt.Errorf("release ports of %q: %w", owner, err)
	}
	defer lock.Unlock()
	if err := removeRecord(a.dir, name); err != nil {
		return fmt.Errorf("release ports of %q: %w", owner, err)
	}
	return nil
}

// Reserved returns owner's reserved ports, or nil, nil when it has none.
func (a *Allocator) Reserved(owner string) ([]Port, error) {
	name, err := checkOwner(owner)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	lock, err := lockDir(a.dir, false)
	if err != nil {
		return nil, fmt.Errorf("reserved ports of %q: %w", owner, err)
	}
	defer lock.Unlock()
	r, err := readRecord(a.dir, name)
	if err != nil {
		return nil, fmt.Errorf("reserved ports of %q: %w", owner, err)
	}
	if r == nil {
		return nil, nil
	}
	return r.Ports, nil
}

// Owners returns every owner that holds a reservation, sorted (for leak
// checks and garbage collection); nil when there is none.
func (a *Allocator) Owners() ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lock, err := lockDir(a.dir, false)
	if err != nil {
		return nil, fmt.Errorf("list port reservations: %w", err)
	}
	defer lock.Unlock()
	names, err := listRecords(a.dir, false)
	if err != nil {
		return nil, err
	}
	var owners []string
	for _, n := range names {
		owner, _ := unescapeOwner(n[:len(n)-len(recordSuffix)])
		owners = append(owners, owner)
	}
	slices.Sort(owners)
	return owners, nil
}
