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
	"sync/atomic"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"

	"github.com/ocinet/ocinet/internal/batch"
	"github.com/ocinet/ocinet/internal/fsutil"
)

// Host-local's lookups by container (GetByID, and ReleaseByID, FindByID)
// read every lease file of the network: an Attach on a network of 100
// containers read 100 files, a Detach 200. Here:
//
//   - Lease calls are batched per lease directory (package batch): the
//     goroutine that gets a directory's queue takes host-local's lock once
//     for every call queued meanwhile.
//   - The lookups are answered from an index of what each file holds
//     (indexedStore), read under that lock and kept up to date with the
//     batch's own leases and releases.
//   - The index outlives the batch while an inotify watch on the directory
//     reports no change but the batch's own (fsutil.DirCache): every
//     writer of the directory (host-local's binary, another process of
//     this library) writes under the same lock, so the events queued while
//     the lock is held are the batch's, and are dropped before it lets go
//     of the lock. An event found when the next batch takes the lock, a
//     directory replaced or removed, a watch the kernel dropped, a lost
//     event (queue overflow) or a directory holding anything but regular
//     files means the directory is read again.
//
// Host-local's allocator itself (which address comes next, the last
// reserved one, the lease files) is used as it is.

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

// leaseDirState is what this process keeps of one lease directory.
type leaseDirState struct {
	dir string
	q   batch.Queue[*leaseCall]
	// index is the index the last batch left, while the directory shows
	// no other change; under q's lock.
	index *fsutil.DirCache[map[string]string]
}

// leaseDirs holds the state of each lease directory used by this process
// (one per network; they are not removed).
var leaseDirs struct {
	sync.Mutex
	m map[string]*leaseDirState
}

// leaseDirOf returns the state of conf's lease directory.
func leaseDirOf(conf *allocator.IPAMConfig) *leaseDirState {
	dir := leaseDir(conf)
	leaseDirs.Lock()
	defer leaseDirs.Unlock()
	st := leaseDirs.m[dir]
	if st == nil {
		if leaseDirs.m == nil {
			leaseDirs.m = map[string]*leaseDirState{}
		}
		st = &leaseDirState{dir: dir, index: fsutil.NewDirCache[map[string]string](dir)}
		leaseDirs.m[dir] = st
	}
	return st
}

// do queues c and returns once it has been served.
func (st *leaseDirState) do(c *leaseCall) { st.q.Do(c, st.serve) }

// serve serves a batch of calls on the directory, in their order, under
// one holding of host-local's lock.
func (st *leaseDirState) serve(calls []*leaseCall) {
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
		fail(fmt.Errorf("host-local: lock lease directory %s: %w", st.dir, err))
		return
	}
	defer store.Unlock()
	ix := &indexedStore{Store: store, dir: st.dir}
	// A batch of lookups alone does not count as a reading towards the
	// index's watch (fsutil.DirCache): a Detach without a previous result
	// looks its addresses up, then releases them, and a process that does
	// one Detach (a poststop hook) should make no watch.
	cached := st.index.Watching() || slices.ContainsFunc(calls, func(c *leaseCall) bool { return c.kind != leaseFind })
	if cached {
		ix.content, _ = st.index.Get()
	}
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
	if cached {
		st.index.Put(ix.content, ix.content != nil && !ix.irregular)
	}
}

// dirReads counts the readings of lease directories (for tests).
var dirReads atomic.Int64

// indexedStore is host-local's disk store as a batch holding its lock
// sees it: Lock and Unlock do nothing (the batch holds the lock), and the
// lookups by container are answered from what each file of the directory
// holds, read when first needed (or kept from an earlier batch, see
// above) and kept up to date with the batch's own reservations and
// releases. Files are read as host-local's GetByID reads them: every file
// under the directory, its content trimmed.
type indexedStore struct {
	*disk.Store
	dir string
	// content maps each file's path to its trimmed content; nil until the
	// directory is read.
	content map[string]string
	// irregular: the directory holds something other than regular files
	// (a subdirectory, whose files the watch does not see; a symbolic
	// link, whose target it does not see), so the index is not kept.
	irregular bool
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
	dirReads.Add(1)
	s.content = map[string]string{}
	_ = filepath.Walk(s.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			s.irregular = true
			return nil
		}
		if path != s.dir && !info.Mode().IsRegular() {
			s.irregular = true
		}
		if info.IsDir() {
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
		key, _ := leaseKeys(id, ifName)
		s.content[disk.GetEscapedPath(s.dir, ip.String())] = key
		s.content[disk.GetEscapedPath(s.dir, lastIPFilePrefix+rangeID)] = ip.String()
	}
	return ok, err
}

// lastIPFilePrefix names host-local's file of a range's last reserved
// address.
const lastIPFilePrefix = "last_reserved_ip."

// leaseKeys are the contents that name the container's interface, as
// host-local compares them (trimmed): its own ("<id>\r\n<ifName>") and
// the one of its releases before interface names ("<id>").
func leaseKeys(id, ifName string) (key, old string) {
	return strings.TrimSpace(strings.TrimSpace(id) + disk.LineBreak + ifName), strings.TrimSpace(id)
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
