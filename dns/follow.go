package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/hosts"
)

// follower keeps a network's table in step with the hosts stores of every
// containerd namespace under StateDir/hosts, with inotify: on the stores'
// parent (a namespace appears), on each store's directory, and on each
// store's records directory, where a record is created or replaced by a
// rename and removed by an unlink. An event on a record re-reads that one
// record; only a new store, a network that becomes a neighbour, or an
// overflowed event queue reads a network's members again, through the
// store's per-network index. The neighbours are the other networks of the
// network's containers: their members are followed too (see table.others).
// nerdctl's hosts store, when there is one, is followed too (nerdctl.go):
// any change in it reads it again whole.
type follower struct {
	root    string // StateDir/hosts
	network string
	// nerdctl is nerdctl's data root ("" for none); subnets are the
	// network's, which its containers' addresses must lie in.
	nerdctl string
	subnets []netip.Prefix
	// parentWatched: the nerdctl root's parent is watched, for the root
	// to appear.
	parentWatched bool
	log           *slog.Logger
	publish       func(*table)

	f       *os.File // the inotify descriptor, non-blocking
	mu      sync.Mutex
	watches map[int32]watch // by watch descriptor
	stores  map[string]*hosts.Store
	entries map[string]entry // by "<namespace>/<container ID>"
	// read are the networks whose members are followed: the network and
	// every network that has been a neighbour since the last reload.
	read map[string]bool
}

type watch struct {
	kind      int // watchRoot, watchStore, watchRecords or watchNerdctl
	namespace string
	// parent marks the watch on the nerdctl root's parent: only an entry
	// of the root's name matters there.
	parent bool
}

const (
	watchRoot = iota
	watchStore
	watchRecords
	watchNerdctl // a directory of nerdctl's hosts store
)

func newFollower(c Config, log *slog.Logger, publish func(*table)) (*follower, error) {
	stateDir, network := c.StateDir, c.Network
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("follow the hosts stores: inotify: %w", err)
	}
	fl := &follower{
		root: filepath.Join(stateDir, "hosts"), network: network, log: log, publish: publish,
		nerdctl: c.Nerdctl, subnets: c.Subnets,
		f: os.NewFile(uintptr(fd), "inotify"), watches: map[int32]watch{},
		stores: map[string]*hosts.Store{}, entries: map[string]entry{}, read: map[string]bool{network: true},
	}
	if err := os.MkdirAll(fl.root, 0o700); err != nil {
		fl.close()
		return nil, fmt.Errorf("follow the hosts stores: %w", err)
	}
	if err := fl.add(fl.root, watch{kind: watchRoot}); err != nil {
		fl.close()
		return nil, err
	}
	if err := fl.scan(); err != nil {
		fl.close()
		return nil, err
	}
	return fl, nil
}

func (fl *follower) add(path string, w watch) error {
	mask := uint32(unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_ONLYDIR)
	switch w.kind {
	case watchRecords:
		mask |= unix.IN_CLOSE_WRITE
	case watchNerdctl:
		if !w.parent {
			mask |= unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM
		}
	}
	wd, err := unix.InotifyAddWatch(int(fl.f.Fd()), path, mask)
	if err != nil {
		return fmt.Errorf("follow the hosts stores: watch %s: %w", path, err)
	}
	fl.watches[int32(wd)] = w
	return nil
}

// scan watches every store not yet watched and reads the network's members
// of each from its index.
func (fl *follower) scan() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	ents, err := os.ReadDir(fl.root)
	if err != nil {
		return fmt.Errorf("follow the hosts stores: %w", err)
	}
	for _, e := range ents {
		ns := e.Name()
		if !e.IsDir() || fl.stores[ns] != nil {
			continue
		}
		dir := filepath.Join(fl.root, ns)
		// The store's directory first: its records directory may not be
		// there yet, and its creation is then the event that brings us
		// back here.
		if err := fl.add(dir, watch{kind: watchStore, namespace: ns}); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, "records")); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		st, err := hosts.Open(dir)
		if err != nil {
			return fmt.Errorf("follow the hosts stores: %w", err)
		}
		if err := fl.add(st.RecordsDir(), watch{kind: watchRecords, namespace: ns}); err != nil {
			return err
		}
		fl.stores[ns] = st
		for n := range fl.read {
			if err := fl.readMembers(ns, st, n); err != nil {
				return err
			}
		}
	}
	if err := fl.readNeighbours(); err != nil {
		return err
	}
	fl.scanNerdctl()
	fl.publish(buildTables(fl.entries, fl.network))
	return nil
}

// readMembers reads the members of network n in store st (of namespace
// ns) from its index. Under mu.
func (fl *follower) readMembers(ns string, st *hosts.Store, n string) error {
	recs, err := st.Members(n)
	if err != nil {
		return fmt.Errorf("follow the hosts stores: %w", err)
	}
	for i := range recs {
		if e := entryOf(&recs[i]); len(e.nets) > 0 {
			fl.entries[ns+"/"+recs[i].ID] = e
		}
	}
	return nil
}

// readNeighbours reads, from every store, the members of the neighbours
// not followed yet. Under mu.
func (fl *follower) readNeighbours() error {
	for _, n := range neighbours(fl.entries, fl.network) {
		if fl.read[n] {
			continue
		}
		fl.read[n] = true
		for ns, st := range fl.stores {
			if err := fl.readMembers(ns, st, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// followed reports whether e is on a network whose members are followed.
func (fl *follower) followed(e entry) bool {
	for n := range e.nets {
		if fl.read[n] {
			return true
		}
	}
	return false
}

// reload forgets everything and reads the members of every store again:
// what an overflowed event queue calls for.
func (fl *follower) reload() error {
	fl.mu.Lock()
	for wd, w := range fl.watches {
		if w.kind != watchRoot {
			_, _ = unix.InotifyRmWatch(int(fl.f.Fd()), uint32(wd))
			delete(fl.watches, wd)
		}
	}
	fl.stores = map[string]*hosts.Store{}
	fl.entries = map[string]entry{}
	fl.read = map[string]bool{fl.network: true}
	fl.parentWatched = false
	fl.mu.Unlock()
	return fl.scan()
}

// update re-reads the record of id in namespace ns.
func (fl *follower) update(ns, id string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	st := fl.stores[ns]
	if st == nil {
		return
	}
	key := ns + "/" + id
	r, err := st.Get(id)
	switch {
	case errors.Is(err, hosts.ErrNotFound):
		delete(fl.entries, key)
	case err != nil:
		// A damaged record: the store treats it as absent, so do we.
		fl.log.Warn("unreadable record", "namespace", ns, "id", id, "err", err)
		delete(fl.entries, key)
	default:
		e := entryOf(&r)
		if !fl.followed(e) {
			delete(fl.entries, key)
			return
		}
		fl.entries[key] = e
		if _, on := e.nets[fl.network]; on {
			// A container of the network may bring a new neighbour.
			if err := fl.readNeighbours(); err != nil {
				fl.log.Warn("reading a neighbour network failed", "err", err)
			}
		}
	}
}

// run reads events until close. Every batch of events read at once is
// applied, then one new table is published.
func (fl *follower) run() error {
	buf := make([]byte, 64<<10)
	for {
		n, err := fl.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("follow the hosts stores: %w", err)
		}
		rescan, changed, nerdctl := false, false, false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameLen := int(ev.Len)
			end := off + unix.SizeofInotifyEvent + nameLen
			if end > n {
				break
			}
			name := cString(buf[off+unix.SizeofInotifyEvent : end])
			off = end
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				fl.log.Warn("inotify queue overflowed; reading the stores again")
				if err := fl.reload(); err != nil {
					return err
				}
				rescan, changed, nerdctl = false, false, false
				continue
			}
			fl.mu.Lock()
			w, ok := fl.watches[ev.Wd]
			if ev.Mask&unix.IN_IGNORED != 0 {
				if w.parent {
					fl.parentWatched = false
				}
				delete(fl.watches, ev.Wd)
				if w.kind != watchRoot {
					delete(fl.stores, w.namespace)
				}
			}
			fl.mu.Unlock()
			if !ok {
				continue
			}
			switch w.kind {
			case watchRoot, watchStore:
				rescan = true
			case watchRecords:
				if id := hosts.RecordID(name); id != "" {
					fl.update(w.namespace, id)
					changed = true
				}
			case watchNerdctl:
				nerdctl = nerdctl || !w.parent || name == filepath.Base(fl.nerdctl)
			}
		}
		if rescan {
			if err := fl.scan(); err != nil {
				fl.log.Error("rescan failed", "err", err)
			}
		} else if changed || nerdctl {
			fl.mu.Lock()
			if nerdctl {
				fl.scanNerdctl()
			}
			fl.publish(buildTables(fl.entries, fl.network))
			fl.mu.Unlock()
		}
	}
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (fl *follower) close() { _ = fl.f.Close() }
