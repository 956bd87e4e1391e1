package portmap

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/ocinet/ocinet/internal/batch"
	"github.com/ocinet/ocinet/internal/fsutil"
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
	// per waiting goroutine). mu is q's lock: Reserve queues its call in
	// q, and whoever holds the lock serves every queued call in one batch
	// (serveReserves); the other methods take it with q.Lock.
	q batch.Queue[*reservation]
	// kept is the records as the last write under the lock left them,
	// kept while the directory shows no other change (fsutil.DirCache:
	// every writer takes the flock); under q's lock.
	kept *fsutil.DirCache[[]*record]
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
	a := &Allocator{dir: dir, readFile: readKernelFile, listeners: listeningTCP, kept: fsutil.NewDirCache[[]*record](dir)}
	runtime.AddCleanup(a, func(c *fsutil.DirCache[[]*record]) { c.Close() }, a.kept)
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
	r := &reservation{owner: owner, name: name, label: label, want: want}
	a.q.Do(r, a.serveReserves)
	return r.ports, r.err
}

// reservation is one Reserve call, queued in the Allocator's batch.Queue.
type reservation struct {
	owner, name, label string
	want               []Mapping
	// Set by the batch that serves the call.
	ports []Port
	err   error
}

// reserveBatch is what the reservations of one batch share: the directory's
// records as the batch changes them, and the host's sockets and local port
// range, each read at most once.
type reserveBatch struct {
	a       *Allocator
	records []*record
	read    bool
	failed  bool // a write failed: records may not be what the directory holds
	socks   map[string][]socket
	local   func() (localPorts, error)
}

// serveReserves serves the queued Reserve calls rs, in their order, under
// one exclusive flock and with one reading of the records and of the
// host's sockets: the result of each is what it would have been had the
// calls run one after the other. It runs under mu (batch.Queue.Do).
//
// Concurrent Reserves of one process would otherwise each read every
// record under the lock in turn (see package batch for why that costs more
// than the reads).
func (a *Allocator) serveReserves(rs []*reservation) {
	lock, err := lockDir(a.dir, true)
	if err != nil {
		for _, r := range rs {
			r.err = fmt.Errorf("reserve ports for %q: %w", r.owner, err)
		}
		return
	}
	defer lock.Unlock()
	b := &reserveBatch{a: a, socks: map[string][]socket{}, local: sync.OnceValues(a.readLocalPorts)}
	b.records, b.read = a.kept.Get()
	for _, r := range rs {
		r.ports, r.err = b.reserve(r)
	}
	a.kept.Put(b.records, b.read && !b.failed)
}

// reserve is Reserve's work for r within the batch.
func (b *reserveBatch) reserve(r *reservation) ([]Port, error) {
	if len(r.want) == 0 {
		if err := removeRecord(b.a.dir, r.name); err != nil {
			b.failed = true
			return nil, fmt.Errorf("reserve ports for %q: %w", r.owner, err)
		}
		b.forget(r.owner)
		return nil, nil
	}
	if !b.read {
		records, err := readRecords(b.a.dir, true)
		if err != nil {
			return nil, fmt.Errorf("reserve ports for %q: %w", r.owner, err)
		}
		b.records, b.read = records, true
	}

	taken := takenSet{}
	for _, rec := range b.records {
		if rec.Owner == r.owner {
			if !slices.Equal(rec.Mappings, r.want) {
				continue // being replaced
			}
			if rec.Label != r.label {
				rec.Label = r.label
				if err := writeRecord(b.a.dir, rec); err != nil {
					b.failed = true
					return nil, err
				}
			}
			return slices.Clone(rec.Ports), nil
		}
		for _, p := range rec.Ports {
			taken.add(p.Protocol, p.HostPort, holder{addr: p.HostIP, owner: rec.Owner, label: rec.Label})
		}
	}
	for _, proto := range protocols(r.want) {
		socks, ok := b.socks[proto]
		if !ok {
			var err error
			if socks, err = b.a.readSockets(proto); err != nil {
				return nil, fmt.Errorf("reserve ports for %q: %w", r.owner, err)
			}
			b.socks[proto] = socks
		}
		for _, s := range socks {
			taken.add(proto, s.port, holder{addr: s.addr})
		}
	}

	res := resolver{taken: taken, local: b.local}
	ports, err := res.resolve(r.want)
	if err != nil {
		return nil, err
	}
	rec := &record{Version: recordVersion, Owner: r.owner, Label: r.label, Mappings: r.want, Ports: ports}
	if err := writeRecord(b.a.dir, rec); err != nil {
		b.failed = true
		return nil, err
	}
	b.forget(r.owner)
	b.records = append(b.records, rec)
	return slices.Clone(ports), nil
}

// forget drops owner's record from the batch's records.
func (b *reserveBatch) forget(owner string) {
	b.records = slices.DeleteFunc(b.records, func(rec *record) bool { return rec.Owner == owner })
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
	a.q.Lock()
	defer a.q.Unlock()
	lock, err := lockDir(a.dir, true)
	if err != nil {
		return fmt.Errorf("release ports of %q: %w", owner, err)
	}
	defer lock.Unlock()
	records, kept := a.kept.Get()
	if err := removeRecord(a.dir, name); err != nil {
		a.kept.Put(nil, false)
		return fmt.Errorf("release ports of %q: %w", owner, err)
	}
	a.kept.Put(slices.DeleteFunc(records, func(r *record) bool { return r.Owner == owner }), kept)
	return nil
}

// Reserved returns owner's reserved ports, or nil, nil when it has none.
func (a *Allocator) Reserved(owner string) ([]Port, error) {
	name, err := checkOwner(owner)
	if err != nil {
		return nil, err
	}
	a.q.Lock()
	defer a.q.Unlock()
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
	a.q.Lock()
	defer a.q.Unlock()
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
