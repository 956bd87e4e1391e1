package hosts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ocinet/ocinet/internal/fsutil"
)

// Layout of a store directory:
//
//	.lock                        the store-wide flock
//	records/<id>.json            one record per container (atomic writes)
//	networks/<network>/<id>      the index: one empty file per member
//	containers/<id>/hosts        bind-mounted at /etc/hosts (edited in place)
//	containers/<id>/resolv.conf  bind-mounted at /etc/resolv.conf (edited in place)
//
// The records are the truth. The index only saves reading every record: it
// names, for each network, the containers that may be on it. It is kept a
// superset of the truth across crashes (entries are added before the record
// that needs them is written and removed after), readers check each entry
// against its record, and mutations delete the entries they find stale.
// Repair rebuilds it.
const (
	lockName      = ".lock"
	recordsDir    = "records"
	networksDir   = "networks"
	containersDir = "containers"
	recordSuffix  = ".json"
)

// Store is a hosts store: one directory holding the records and files of the
// containers of one scope (one containerd namespace). A Store holds no open
// files and needs no closing; it is safe for use by several goroutines and
// several processes at once.
type Store struct {
	dir string

	// wrote, when set (by tests), is called after each in-place write of a
	// hosts file, with its path.
	wrote func(path string)
}

// Open returns the store in dir, creating dir (mode 0700) and its layout if
// needed.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("open hosts store: %w directory: it is empty", ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open hosts store %s: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, recordsDir), filepath.Join(abs, networksDir), filepath.Join(abs, containersDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open hosts store %s: %w", dir, err)
		}
	}
	return &Store{dir: abs}, nil
}

// HostsPath returns the path of the hosts file of container id, to be
// bind-mounted at /etc/hosts. It returns "" when id is not a valid container
// ID, so that an unchecked ID can never name a path outside the store.
func (s *Store) HostsPath(id string) string {
	if validateID(id) != nil {
		return ""
	}
	return filepath.Join(s.dir, containersDir, id, "hosts")
}

// ResolvConfPath returns the path of the resolv.conf file of container id,
// to be bind-mounted at /etc/resolv.conf. It returns "" when id is not a
// valid container ID.
func (s *Store) ResolvConfPath(id string) string {
	if validateID(id) != nil {
		return ""
	}
	return filepath.Join(s.dir, containersDir, id, "resolv.conf")
}

func (s *Store) recordPath(id string) string {
	return filepath.Join(s.dir, recordsDir, id+recordSuffix)
}

// lock takes the store-wide lock (flock(2) on dir/.lock): exclusive around
// mutations, shared around reads. The returned function releases it.
func (s *Store) lock(mode fsutil.LockMode) (func(), error) {
	l, err := fsutil.LockFile(filepath.Join(s.dir, lockName), mode)
	if err != nil {
		return nil, fmt.Errorf("lock hosts store: %w", err)
	}
	return l.Unlock, nil
}

// Prepare creates the directory of container id and its hosts and
// resolv.conf files, empty, unless they exist. They must exist before the
// container is created: runc bind-mounts them before any hook runs. Prepare
// is idempotent and never truncates a file.
func (s *Store) Prepare(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return fmt.Errorf("prepare %q: %w", id, err)
	}
	defer unlock()
	if err := os.MkdirAll(filepath.Join(s.dir, containersDir, id), 0o700); err != nil {
		return fmt.Errorf("prepare %q: %w", id, err)
	}
	for _, p := range []string{s.HostsPath(id), s.ResolvConfPath(id)} {
		if _, err := createEmpty(p); err != nil {
			return fmt.Errorf("prepare %q: %w", id, err)
		}
	}
	return nil
}

// Seed makes the lines of content outside any managed block the user part
// of container id's hosts file (what every rewrite keeps after the managed
// block), replacing the user part there and keeping the managed block of
// the container's record, if it has one. It is how a container on the
// host's network starts from the host's hosts file. content is at most
// 1 MiB (ErrInvalid otherwise).
func (s *Store) Seed(id string, content []byte) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if len(content) > maxReadSize {
		return fmt.Errorf("seed %q: %d bytes, more than %d: %w", id, len(content), maxReadSize, ErrInvalid)
	}
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return fmt.Errorf("seed %q: %w", id, err)
	}
	defer unlock()
	v := newView(s)
	var managed []byte
	r, err := v.record(id)
	if err != nil && !isDamaged(err) {
		return fmt.Errorf("seed %q: %w", id, err)
	}
	if r != nil {
		if managed, err = renderManaged(r, v); err != nil {
			return fmt.Errorf("seed %q: %w", id, err)
		}
	}
	f, err := openInPlace(s.HostsPath(id))
	if err != nil {
		return fmt.Errorf("seed %q: %w", id, err)
	}
	defer f.Close()
	_, size, err := readLimited(f)
	if err != nil {
		return fmt.Errorf("seed %q: %w", id, err)
	}
	if err := writeInPlace(f, composeHosts(managed, userLines(content)), size); err != nil {
		return fmt.Errorf("seed %q: %w", id, err)
	}
	return nil
}

// Join stores r, replacing the container's previous record if any, writes
// r's hosts file and rewrites the hosts files of exactly the containers that
// share a network with r, before or after this call. The record is
// replaced whole (see the package's doc); the hosts files are written in
// place. Join is idempotent: repeating it repairs what an
// interrupted one left. Invalid input gives ErrInvalid and changes nothing;
// so does an extra host of host-gateway when r has no network or its first
// network has no gateway (the error names the network).
func (s *Store) Join(r Record) error {
	r = r.clone()
	if err := r.validate(); err != nil {
		return fmt.Errorf("join %q: %w", r.ID, err)
	}
	if err := r.checkHostGateway(); err != nil {
		return fmt.Errorf("join %q: %w", r.ID, err)
	}
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return fmt.Errorf("join %q: %w", r.ID, err)
	}
	defer unlock()
	if err := s.join(&r); err != nil {
		return fmt.Errorf("join %q: %w", r.ID, err)
	}
	return nil
}

func (s *Store) join(r *Record) error {
	v := newView(s)
	old, err := v.record(r.ID)
	if isDamaged(err) {
		// Joining again is how a damaged record is mended. Its old networks
		// are unknown; their index entries are cleaned up as stale later.
		old, err = nil, nil
	}
	if err != nil {
		return err
	}
	// Index entries first, record second, removals last: after a crash of
	// the process the index is still a superset of the records. Every
	// entry r needs is made, not only those of new networks: after a crash
	// of the machine an entry may be gone while the record is there, and
	// joining again mends that too.
	for _, n := range r.Networks {
		if err := s.addIndex(n.Name, r.ID); err != nil {
			return err
		}
	}
	data, err := encodeRecord(r)
	if err != nil {
		return err
	}
	var oldData []byte
	if old != nil {
		oldData, _ = encodeRecord(old)
	}
	if !bytes.Equal(data, oldData) {
		if err := writeRecordFile(filepath.Join(s.dir, recordsDir, r.ID+recordSuffix), data); err != nil {
			return fmt.Errorf("write record: %w", err)
		}
	}
	v.records[r.ID] = r
	nets := r.networkNames()
	if old != nil {
		for _, n := range old.Networks {
			if r.network(n.Name) == nil {
				if err := s.removeIndex(n.Name, r.ID); err != nil {
					return err
				}
				nets = append(nets, n.Name)
			}
		}
	}
	peers, err := v.peers(r.ID, filesNetworks(nets, r, old))
	if err != nil {
		return err
	}
	if err := s.rewriteHosts(v, r); err != nil {
		return err
	}
	for _, p := range peers {
		if err := s.rewriteHosts(v, p); err != nil {
			return err
		}
	}
	return v.removeStale()
}

// Leave removes the record of container id and rewrites the hosts files of
// the containers that shared a network with it. The container's own files
// are kept: a restart may use them again. Leaving a container that has no
// record is not an error.
func (s *Store) Leave(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return fmt.Errorf("leave %q: %w", id, err)
	}
	defer unlock()
	if err := s.leave(id); err != nil {
		return fmt.Errorf("leave %q: %w", id, err)
	}
	return nil
}

// Remove is Leave followed by the removal of the container's directory and
// files. It is idempotent.
func (s *Store) Remove(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return fmt.Errorf("remove %q: %w", id, err)
	}
	defer unlock()
	if err := s.leave(id); err != nil {
		return fmt.Errorf("remove %q: %w", id, err)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, containersDir, id)); err != nil {
		return fmt.Errorf("remove %q: %w", id, err)
	}
	return nil
}

func (s *Store) leave(id string) error {
	v := newView(s)
	old, err := v.record(id)
	if isDamaged(err) {
		// Its networks are unknown: remove the record; its index entries
		// are cleaned up as stale, and its peers' files catch up at their
		// next update or at Repair.
		if err := os.Remove(s.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove record: %w", err)
		}
		return nil
	}
	if err != nil || old == nil {
		return err
	}
	// The peers are rewritten first, as if id had gone, and the record is
	// removed last: if this is interrupted, the record is still there and
	// repeating Leave finishes the work.
	v.exclude = id
	peers, err := v.peers(id, filesNetworks(old.networkNames(), old, nil))
	if err != nil {
		return err
	}
	for _, p := range peers {
		if err := s.rewriteHosts(v, p); err != nil {
			return err
		}
	}
	if err := os.Remove(s.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove record: %w", err)
	}
	for _, n := range old.Networks {
		if err := s.removeIndex(n.Name, id); err != nil {
			return err
		}
	}
	return v.removeStale()
}

// Get returns the record of container id, or an error wrapping ErrNotFound.
func (s *Store) Get(id string) (Record, error) {
	if err := validateID(id); err != nil {
		return Record{}, fmt.Errorf("get record: %w", err)
	}
	unlock, err := s.lock(fsutil.Shared)
	if err != nil {
		return Record{}, fmt.Errorf("get record %q: %w", id, err)
	}
	defer unlock()
	r, err := s.readRecord(id)
	if err != nil {
		return Record{}, fmt.Errorf("get record %q: %w", id, err)
	}
	if r == nil {
		return Record{}, fmt.Errorf("get record %q: %w", id, ErrNotFound)
	}
	return r.clone(), nil
}

// List returns every record, sorted by ID.
func (s *Store) List() ([]Record, error) {
	unlock, err := s.lock(fsutil.Shared)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer unlock()
	ids, err := s.recordIDs()
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	out := make([]Record, 0, len(ids))
	for _, id := range ids {
		r, err := s.readRecord(id)
		if err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

// IDs returns, sorted, every container ID that has a record or a directory
// of files in the store: what Remove would find something of. A container
// that left (Leave) but was not removed is among them.
func (s *Store) IDs() ([]string, error) {
	unlock, err := s.lock(fsutil.Shared)
	if err != nil {
		return nil, fmt.Errorf("list container IDs: %w", err)
	}
	defer unlock()
	ids, err := s.recordIDs()
	if err != nil {
		return nil, fmt.Errorf("list container IDs: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, containersDir))
	if err != nil {
		return nil, fmt.Errorf("list container IDs: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && validateID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Render returns the managed block that the hosts file of container id
// should hold, computed from the records: what Join writes, before the
// user's lines. The error wraps ErrNotFound when id has no record.
func (s *Store) Render(id string) ([]byte, error) {
	if err := validateID(id); err != nil {
		return nil, fmt.Errorf("render hosts: %w", err)
	}
	unlock, err := s.lock(fsutil.Shared)
	if err != nil {
		return nil, fmt.Errorf("render hosts of %q: %w", id, err)
	}
	defer unlock()
	v := newView(s)
	r, err := v.record(id)
	if err != nil {
		return nil, fmt.Errorf("render hosts of %q: %w", id, err)
	}
	if r == nil {
		return nil, fmt.Errorf("render hosts of %q: %w", id, ErrNotFound)
	}
	b, err := renderManaged(r, v)
	if err != nil {
		return nil, fmt.Errorf("render hosts of %q: %w", id, err)
	}
	return b, nil
}

// Repair rebuilds the network index from the records, removes temporary
// files left by interrupted writes, and rewrites the hosts file of every
// container that has a record, which mends torn files. Run it when the
// store may have been interrupted, for example at boot. A damaged record
// does not stop the repair of the others: it is treated as absent (its
// index entries are dropped, its peers no longer list it) and reported in
// the error.
func (s *Store) Repair() error {
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return fmt.Errorf("repair hosts store: %w", err)
	}
	defer unlock()
	if err := s.repair(); err != nil {
		return fmt.Errorf("repair hosts store: %w", err)
	}
	return nil
}

func (s *Store) repair() error {
	var errs []error
	v := newView(s)
	ids, err := s.recordIDs()
	if err != nil {
		return err
	}
	var (
		recs    []*Record
		damaged []string
	)
	for _, id := range ids {
		r, err := v.record(id)
		if err != nil {
			// Treated as absent from here on: the others are repaired, and
			// its index entries go until the record is mended and Repair
			// runs again.
			errs = append(errs, err)
			damaged = append(damaged, id)
			v.records[id] = nil
			continue
		}
		if r != nil {
			recs = append(recs, r)
		}
	}
	// Drop every index entry that its record does not confirm, then add the
	// missing ones.
	nets, err := os.ReadDir(filepath.Join(s.dir, networksDir))
	if err != nil {
		return err
	}
	for _, n := range nets {
		if _, err := v.members(n.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := v.removeStale(); err != nil {
		return err
	}
	for _, r := range recs {
		for _, n := range r.Networks {
			if err := s.addIndex(n.Name, r.ID); err != nil {
				return err
			}
		}
	}
	v = newView(s)
	for _, r := range recs {
		v.records[r.ID] = r
	}
	for _, id := range damaged {
		v.records[id] = nil
	}
	for _, r := range recs {
		if err := s.rewriteHosts(v, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recordIDs lists the IDs that have a record file, sorted, and removes
// temporary files left by interrupted writes when the caller holds the
// exclusive lock (it is harmless under the shared one: a writer's temporary
// file only exists while it holds the exclusive lock).
func (s *Store) recordIDs() ([]string, error) {
	dir := filepath.Join(s.dir, recordsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if fsutil.IsTemp(name) {
			_ = os.Remove(filepath.Join(dir, name)) // a leftover; best effort
			continue
		}
		id, ok := strings.CutSuffix(name, recordSuffix)
		if ok && validateID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// readRecord returns the record of id, or nil if there is none.
func (s *Store) readRecord(id string) (*Record, error) {
	b, err := os.ReadFile(s.recordPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(b, id)
	if err != nil {
		return nil, &damagedError{path: s.recordPath(id), err: err}
	}
	return &r, nil
}

// damagedError reports a record file that cannot be read back.
type damagedError struct {
	path string
	err  error
}

func (e *damagedError) Error() string { return e.path + ": " + e.err.Error() }

func isDamaged(err error) bool {
	var d *damagedError
	return errors.As(err, &d)
}

// addIndex makes id a member of network in the index (nothing to do when
// it is one).
func (s *Store) addIndex(network, id string) error {
	dir := filepath.Join(s.dir, networksDir, network)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("index network %q: %w", network, err)
	}
	if _, err := createEmpty(filepath.Join(dir, id)); err != nil {
		return fmt.Errorf("index network %q: %w", network, err)
	}
	return nil
}

// writeRecordFile replaces a record file whole (a temporary file renamed
// over it), with no fsync: a record describes a container that runs, which
// a reboot ends. A crash of the process leaves the old record or the new;
// a crash of the machine may also leave one missing or damaged, which
// readers treat as stale (a damaged record is mended by joining again, and
// GC detaches what ran before the reboot).
func writeRecordFile(path string, data []byte) error {
	return fsutil.ReplaceFileNoSync(path, data, 0o600)
}

// removeIndex removes id from network in the index, and the network's
// directory when it is left empty.
func (s *Store) removeIndex(network, id string) error {
	dir := filepath.Join(s.dir, networksDir, network)
	if err := os.Remove(filepath.Join(dir, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unindex network %q: %w", network, err)
	}
	_ = os.Remove(dir) // fails while other members remain, which is fine
	return nil
}

// rewriteHosts renders r's managed block and writes it, followed by the
// user lines already in the file, into r's hosts file in place. A file that
// already holds exactly that is not written.
func (s *Store) rewriteHosts(v *view, r *Record) error {
	managed, err := renderManaged(r, v)
	if err != nil {
		return err
	}
	path := s.HostsPath(r.ID)
	f, err := openInPlace(path)
	if err != nil {
		return fmt.Errorf("write hosts file: %w", err)
	}
	defer f.Close()
	cur, size, err := readLimited(f)
	if err != nil {
		return fmt.Errorf("read hosts file: %w", err)
	}
	content := composeHosts(managed, userLines(cur))
	if int64(len(content)) == size && bytes.Equal(content, cur) {
		return nil
	}
	if err := writeInPlace(f, content, size); err != nil {
		return fmt.Errorf("write hosts file: %w", err)
	}
	if s.wrote != nil {
		s.wrote(path)
	}
	return nil
}

// view is one operation's look at the store, under the store lock: it reads
// each record and each network's index at most once.
type view struct {
	s       *Store
	records map[string]*Record   // nil value: no record
	nets    map[string][]*Record // members of a network, sorted by ID
	// exclude is a container to treat as gone (Leave renders the peers
	// before it removes the record).
	exclude string
	// stale are index entries found pointing at nothing.
	stale []string
}

func newView(s *Store) *view {
	return &view{s: s, records: map[string]*Record{}, nets: map[string][]*Record{}}
}

func (v *view) record(id string) (*Record, error) {
	if r, ok := v.records[id]; ok {
		return r, nil
	}
	r, err := v.s.readRecord(id)
	if err != nil {
		return nil, err
	}
	v.records[id] = r
	return r, nil
}

// members returns the containers on network, checked against their records.
func (v *view) members(network string) ([]*Record, error) {
	if m, ok := v.nets[network]; ok {
		return m, nil
	}
	dir := filepath.Join(v.s.dir, networksDir, network)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read index of network %q: %w", network, err)
	}
	var m []*Record
	for _, e := range entries {
		id := e.Name()
		if id == v.exclude {
			continue
		}
		var r *Record
		if validateID(id) == nil {
			if r, err = v.record(id); err != nil {
				return nil, err
			}
		}
		if r == nil || r.network(network) == nil {
			v.stale = append(v.stale, filepath.Join(dir, id))
			continue
		}
		m = append(m, r)
	}
	// os.ReadDir sorts by name, so m is sorted by ID.
	v.nets[network] = m
	return m, nil
}

// peers returns the containers other than id on any of networks, once each,
// sorted by ID.
func (v *view) peers(id string, networks []string) ([]*Record, error) {
	seen := map[string]bool{id: true}
	var out []*Record
	for _, n := range networks {
		m, err := v.members(n)
		if err != nil {
			return nil, err
		}
		for _, r := range m {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// removeStale deletes the stale index entries found so far. Only for
// callers that hold the exclusive lock.
func (v *view) removeStale() error {
	for _, p := range v.stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove stale index entry: %w", err)
		}
		_ = os.Remove(filepath.Dir(p)) // only succeeds when empty
	}
	v.stale = nil
	return nil
}
