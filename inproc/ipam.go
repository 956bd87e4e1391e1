package inproc

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
	"github.com/ocinet/ocinet/internal/batch"
)

// defaultDataDir is host-local's lease directory when the config names none.
const defaultDataDir = "/var/lib/cni/networks"

// ipamConfig loads the host-local part of a bridge config with the plugin's
// own loader (ranges canonicalised, static addresses from CNI_ARGS IP=,
// args.cni.ips and the "ips" capability).
func ipamConfig(stdin []byte, envArgs string) (*allocator.IPAMConfig, error) {
	conf, _, err := allocator.LoadIPAMConfig(stdin, envArgs)
	if err != nil {
		return nil, fmt.Errorf("host-local: %v: %w", err, ErrInvalid)
	}
	if conf.Name == "" || conf.Name == "." || conf.Name == ".." || strings.ContainsAny(conf.Name, "/\x00") {
		return nil, fmt.Errorf("host-local: network name %q cannot name a lease directory: %w", conf.Name, ErrInvalid)
	}
	if conf.DataDir == "" {
		conf.DataDir = defaultDataDir
	}
	return conf, nil
}

// openStore opens host-local's store of the network, refusing a lease
// directory that is a symbolic link (leases would land wherever it points).
func openStore(conf *allocator.IPAMConfig) (*disk.Store, error) {
	dir := filepath.Join(conf.DataDir, conf.Name)
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("host-local: lease directory %s is a symbolic link: %w", dir, ErrInvalid)
	} else if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("host-local: lease directory %s is not a directory: %w", dir, ErrInvalid)
	}
	s, err := disk.New(conf.Name, conf.DataDir)
	if err != nil {
		return nil, fmt.Errorf("host-local: open lease directory %s: %w", dir, err)
	}
	return s, nil
}

// lease takes one address per range set, as host-local's ADD: the
// requested ones where given, else the next free one. On failure nothing
// stays reserved.
func lease(conf *allocator.IPAMConfig, id, ifName string) ([]*types100.IPConfig, error) {
	c := &leaseCall{kind: leaseAdd, conf: conf, id: id, ifName: ifName}
	leaseQueue(conf).Do(c, serveLeases)
	return c.ips, c.err
}

// leaseIn is lease's work in a batch, on its store.
func leaseIn(store *indexedStore, conf *allocator.IPAMConfig, id, ifName string) ([]*types100.IPConfig, error) {
	requested := map[string]net.IP{}
	for _, ip := range conf.IPArgs {
		requested[ip.String()] = ip
	}
	var ips []*types100.IPConfig
	var allocs []*allocator.IPAllocator
	release := func() {
		for _, a := range allocs {
			_ = a.Release(id, ifName)
		}
	}
	for idx := range conf.Ranges {
		set := &conf.Ranges[idx]
		a := allocator.NewIPAllocator(set, store, idx)
		var want net.IP
		for k, ip := range requested {
			if set.Contains(ip) {
				want = ip
				delete(requested, k)
				break
			}
		}
		ipc, err := a.Get(id, ifName, want)
		if err != nil {
			release()
			return nil, fmt.Errorf("host-local: network %q: allocate in subnet %s (range %s): %w", conf.Name, (*net.IPNet)(&(*set)[0].Subnet), set.String(), allocError(err, set, store, id, ifName, want))
		}
		allocs = append(allocs, a)
		ips = append(ips, ipc)
	}
	if len(requested) > 0 {
		release()
		var left []string
		for k := range requested {
			left = append(left, k)
		}
		return nil, fmt.Errorf("host-local: network %q: requested addresses %s are in none of its ranges: %w", conf.Name, strings.Join(left, " "), ErrInvalid)
	}
	return ips, nil
}

// allocError gives the allocator's error (plain text) the sentinel that
// fits, from the situation rather than the text: a file-system error stays
// as it is; an address the interface holds already, or a requested gateway,
// is invalid; otherwise the range set is full, or the requested address is
// taken.
func allocError(err error, set *allocator.RangeSet, store backend.Store, id, ifName string, want net.IP) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	for _, held := range store.GetByID(id, ifName) {
		if set.Contains(held) {
			return fmt.Errorf("%v (the interface holds %s already): %w", err, held, ErrInvalid)
		}
	}
	if want != nil {
		if r, rerr := set.RangeFor(want); rerr != nil || want.Equal(r.Gateway) {
			return fmt.Errorf("%v: %w", err, ErrInvalid)
		}
		return fmt.Errorf("%v (in use): %w", err, ErrConflict)
	}
	return fmt.Errorf("%v (no free address): %w", err, ErrConflict)
}

// releaseLease drops every address the container's interface holds in the
// network, as host-local's DEL; a missing lease is not an error. A lease
// directory that is a symbolic link holds nothing that ADD leased here
// (ADD refuses it), and is left alone.
func releaseLease(conf *allocator.IPAMConfig, id, ifName string) error {
	if fi, err := os.Lstat(leaseDir(conf)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	c := &leaseCall{kind: leaseRelease, conf: conf, id: id, ifName: ifName}
	leaseQueue(conf).Do(c, serveLeases)
	return c.err
}

// releaseIn is releaseLease's work in a batch, on its store.
func releaseIn(store *indexedStore, conf *allocator.IPAMConfig, id, ifName string) error {
	var errs []error
	for idx := range conf.Ranges {
		if err := allocator.NewIPAllocator(&conf.Ranges[idx], store, idx).Release(id, ifName); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("host-local: network %q: release: %w", conf.Name, errors.Join(errs...))
	}
	return nil
}

// leased returns the addresses the container's interface holds in the
// network (host-local's GetByID), as its CHECK and the conntrack cleanup
// need them.
func leased(conf *allocator.IPAMConfig, id, ifName string) ([]net.IP, error) {
	c := &leaseCall{kind: leaseFind, conf: conf, id: id, ifName: ifName}
	leaseQueue(conf).Do(c, serveLeases)
	return c.held, c.err
}

// leaseHeld reports whether the container's interface holds an address,
// as host-local's CHECK.
func leaseHeld(conf *allocator.IPAMConfig, id, ifName string) (bool, error) {
	ips, err := leased(conf, id, ifName)
	return len(ips) > 0, err
}

// leaseDir is the network's lease directory.
func leaseDir(conf *allocator.IPAMConfig) string {
	return filepath.Join(conf.DataDir, conf.Name)
}

// Lease calls are batched per lease directory (package batch): the
// goroutine that gets a directory's queue takes host-local's lock once for
// every call queued meanwhile, and host-local's lookups by container
// (GetByID, ReleaseByID: each reads every lease file of the network) are
// answered from one reading of the directory made under that lock
// (indexedStore). Host-local's allocator itself (which address comes
// next, the last reserved one, the lease files) is used as it is.

// leaseCall is one lease, release or lookup, queued for its directory.
type leaseCall struct {
	kind       leaseKind
	conf       *allocator.IPAMConfig
	id, ifName string
	// Set by the batch.
	ips  []*types100.IPConfig // leaseAdd
	held []net.IP             // leaseFind
	err  error
}

type leaseKind int

const (
	leaseAdd leaseKind = iota
	leaseRelease
	leaseFind
)

// leaseQueues holds the queue of each lease directory used by this process
// (a few per network config; they are not removed).
var leaseQueues struct {
	sync.Mutex
	m map[string]*batch.Queue[*leaseCall]
}

// leaseQueue returns the queue of conf's lease directory.
func leaseQueue(conf *allocator.IPAMConfig) *batch.Queue[*leaseCall] {
	dir := leaseDir(conf)
	leaseQueues.Lock()
	defer leaseQueues.Unlock()
	q := leaseQueues.m[dir]
	if q == nil {
		if leaseQueues.m == nil {
			leaseQueues.m = map[string]*batch.Queue[*leaseCall]{}
		}
		q = &batch.Queue[*leaseCall]{}
		leaseQueues.m[dir] = q
	}
	return q
}

// serveLeases serves a batch of calls on one lease directory, in their
// order, under one holding of host-local's lock.
func serveLeases(calls []*leaseCall) {
	fail := func(err error) {
		for _, c := range calls {
			c.err = err
		}
	}
	store, err := openStore(calls[0].conf)
	if err != nil {
		fail(err)
		return
	}
	defer store.Close()
	if err := store.Lock(); err != nil {
		fail(fmt.Errorf("host-local: lock lease directory %s: %w", leaseDir(calls[0].conf), err))
		return
	}
	defer store.Unlock()
	ix := &indexedStore{Store: store, dir: leaseDir(calls[0].conf)}
	for _, c := range calls {
		switch c.kind {
		case leaseAdd:
			c.ips, c.err = leaseIn(ix, c.conf, c.id, c.ifName)
		case leaseRelease:
			c.err = releaseIn(ix, c.conf, c.id, c.ifName)
		case leaseFind:
			c.held = ix.GetByID(c.id, c.ifName)
		}
	}
}

// indexedStore is host-local's disk store as a batch holding its lock
// sees it: Lock and Unlock do nothing (the batch holds the lock), and the
// lookups by container are answered from what each file of the directory
// held when the batch first needed it, kept up to date with the batch's
// own reservations and releases (no other writer can change the directory
// while the lock is held). Files are read as host-local's GetByID reads
// them: every file under the directory, its content trimmed.
type indexedStore struct {
	*disk.Store
	dir string
	// content maps each file's path to its trimmed content; nil until the
	// directory is read.
	content map[string]string
}

var _ backend.Store = (*indexedStore)(nil)

func (s *indexedStore) Lock() error   { return nil }
func (s *indexedStore) Unlock() error { return nil }
func (s *indexedStore) Close() error  { return nil }

// read fills content from the directory, once.
func (s *indexedStore) read() {
	if s.content != nil {
		return
	}
	s.content = map[string]string{}
	_ = filepath.Walk(s.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if data, err := os.ReadFile(path); err == nil {
			s.content[path] = strings.TrimSpace(string(data))
		}
		return nil
	})
}

// Reserve is the disk store's, noting the files it writes.
func (s *indexedStore) Reserve(id, ifName string, ip net.IP, rangeID string) (bool, error) {
	ok, err := s.Store.Reserve(id, ifName, ip, rangeID)
	switch {
	case err != nil:
		s.content = nil // what it left is unknown: read the directory again
	case ok && s.content != nil:
		s.content[disk.GetEscapedPath(s.dir, ip.String())] = strings.TrimSpace(strings.TrimSpace(id) + disk.LineBreak + ifName)
		s.content[disk.GetEscapedPath(s.dir, lastIPFilePrefix+rangeID)] = ip.String()
	}
	return ok, err
}

// lastIPFilePrefix names host-local's file of a range's last reserved
// address.
const lastIPFilePrefix = "last_reserved_ip."

// keys are the contents that name the container's interface: host-local's
// own ("<id>\r\n<ifName>") and the one of its releases before interface
// names ("<id>").
func leaseKeys(id, ifName string) (key, old string) {
	return strings.TrimSpace(id) + disk.LineBreak + ifName, strings.TrimSpace(id)
}

// matching returns the paths whose content is key, sorted.
func (s *indexedStore) matching(key string) []string {
	s.read()
	var paths []string
	for p, c := range s.content {
		if c == key {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	return paths
}

// GetByID returns the addresses leased to the container's interface, under
// either key, as host-local's.
func (s *indexedStore) GetByID(id, ifName string) []net.IP {
	key, old := leaseKeys(id, ifName)
	var ips []net.IP
	for _, p := range append(s.matching(key), s.matching(old)...) {
		if ip := net.ParseIP(filepath.Base(p)); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// ReleaseByID removes the files of the container's interface, as
// host-local's: those under its key, or when there are none those under
// the old one. A file that cannot be removed is skipped, as there.
func (s *indexedStore) ReleaseByID(id, ifName string) error {
	key, old := leaseKeys(id, ifName)
	if !s.remove(key) {
		s.remove(old)
	}
	return nil
}

// remove removes the files whose content is key and reports whether it
// removed one.
func (s *indexedStore) remove(key string) bool {
	found := false
	for _, p := range s.matching(key) {
		err := os.Remove(p)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			delete(s.content, p)
		}
		found = found || err == nil
	}
	return found
}
