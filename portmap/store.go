package portmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocinet/ocinet/internal/fsutil"
	"golang.org/x/sys/unix"
)

// On-disk layout of an Allocator's directory:
//
//	.lock              flock(2)ed around every read-check-write
//	<escaped owner>.json  one record per owner
//	.tmp-*             a record being written (stale if found under the lock)
//
// Records are replaced atomically: write the temp file and rename it over
// the record, without fsync: a reservation describes what a reboot ends
// (the journal record of its attachment, written durably, holds the same
// ports), and a record that a crash of the machine cut short is older than
// the boot, which readRecords checks before it fails on one. Records and the lock file are opened
// with O_NOFOLLOW and must be regular files: a symbolic link planted in the
// directory is an error, never followed.
const (
	lockName     = ".lock"
	recordSuffix = ".json"
	// recordVersion is the version of the record format.
	recordVersion = 1
	// maxEscapedOwner bounds a record's file name well below NAME_MAX (255).
	maxEscapedOwner = 200
	// maxRecordSize bounds what is read from one record.
	maxRecordSize = 16 << 20
)

// record is one owner's reservation as stored.
type record struct {
	Version int    `json:"version"`
	Owner   string `json:"owner"`
	Label   string `json:"label,omitempty"`
	// Mappings is what was asked for: validated, protocols filled in,
	// duplicates removed. A repeated Reserve with the same list is answered
	// from Ports.
	Mappings []Mapping `json:"mappings"`
	Ports    []Port    `json:"ports"`
}

// escapeOwner turns an owner key into a file name: ASCII letters, digits,
// '-', '_' and '.' (not first) stay, every other byte becomes %XX. The
// mapping is one to one, so unescapeOwner can check a name is canonical.
func escapeOwner(owner string) string {
	var b strings.Builder
	for i := 0; i < len(owner); i++ {
		c := owner[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || (c == '.' && i > 0)
		if safe {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// unescapeOwner reverses escapeOwner; ok is false for a name escapeOwner
// would not have produced.
func unescapeOwner(name string) (owner string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '%' {
			b.WriteByte(name[i])
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		v, err := hexByte(name[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v)
		i += 2
	}
	owner = b.String()
	return owner, owner != "" && escapeOwner(owner) == name
}

func hexByte(s string) (byte, error) {
	var v byte
	for i := 0; i < 2; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, errors.New("not upper-case hex")
		}
	}
	return v, nil
}

// checkOwner validates an owner key and returns its record's file name.
func checkOwner(owner string) (string, error) {
	if owner == "" {
		return "", invalidf("empty owner")
	}
	name := escapeOwner(owner)
	if len(name) > maxEscapedOwner {
		return "", invalidf("owner %q is too long", owner)
	}
	return name + recordSuffix, nil
}

// lockDir locks dir/.lock (fsutil.LockFile); Unlock releases it.
func lockDir(dir string, exclusive bool) (*fsutil.Lock, error) {
	mode := fsutil.Shared
	if exclusive {
		mode = fsutil.Exclusive
	}
	return fsutil.LockFile(filepath.Join(dir, lockName), mode)
}

// readRecord reads the record in file name of dir; it returns nil, nil when
// there is none.
func readRecord(dir, name string) (*record, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open reservation: %w", err)
	}
	defer f.Close()
	if err := fsutil.CheckRegular(f); err != nil {
		return nil, fmt.Errorf("open reservation: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read reservation %s: %w", path, err)
	}
	if len(data) > maxRecordSize {
		return nil, fmt.Errorf("read reservation %s: larger than %d bytes", path, maxRecordSize)
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode reservation %s: %w", path, err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("decode reservation %s: unknown version %d", path, r.Version)
	}
	if escapeOwner(r.Owner)+recordSuffix != name {
		return nil, fmt.Errorf("decode reservation %s: it belongs to owner %q", path, r.Owner)
	}
	return &r, nil
}

// listRecords returns the file names of the records in dir, sorted, and
// removes stale temporary files when clean is set (the caller holds the
// exclusive lock, so no write is in progress).
func listRecords(dir string, clean bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list reservations: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if clean && fsutil.IsTemp(name) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("remove stale temporary file: %w", err)
			}
			continue
		}
		base, ok := strings.CutSuffix(name, recordSuffix)
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		if _, ok := unescapeOwner(base); !ok {
			continue // not ours
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// recordCache keeps the records read from reservation files, so that a
// Reserve, which reads every record, decodes only the files that changed
// (fsutil.StatCache; records are written by rename, so each write is a
// new file).
var recordCache = fsutil.StatCache[*record]{NoFollow: true}

// readRecordCached is readRecord through recordCache; the record it
// returns is the caller's own.
func readRecordCached(dir, name string) (*record, error) {
	r, err := recordCache.Get(filepath.Join(dir, name), func() (*record, error) { return readRecord(dir, name) }, (*record).clone)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // gone since the listing
	}
	return r, err
}

// clone returns a copy of r that shares nothing mutable with it.
func (r *record) clone() *record {
	if r == nil {
		return nil
	}
	c := *r
	c.Mappings = slices.Clone(r.Mappings)
	c.Ports = slices.Clone(r.Ports)
	return &c
}

// readRecords reads every record in dir. A record that does not decode
// fails the read, unless it was last written before the machine started:
// records are written without fsync, so a crash of the machine can leave
// one cut short, and what it reserved ended with that boot. Such a record
// is skipped, and removed when clean is set.
func readRecords(dir string, clean bool) ([]*record, error) {
	recordReads.Add(1)
	names, err := listRecords(dir, clean)
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, name := range names {
		r, err := readRecordCached(dir, name)
		if err != nil {
			if !beforeBoot(filepath.Join(dir, name)) {
				return nil, err
			}
			if clean {
				if err := removeRecord(dir, name); err != nil {
					return nil, err
				}
			}
			continue
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// recordReads counts the readings of a whole directory (for tests).
var recordReads atomic.Int64

// beforeBoot reports whether the file at path was last modified before
// the machine started (false when either is unknown).
func beforeBoot(path string) bool {
	fi, err := os.Lstat(path)
	boot := bootTime()
	return err == nil && !boot.IsZero() && fi.ModTime().Before(boot)
}

// bootTime is when the machine started, to the second (btime in
// /proc/stat), or the zero time when it cannot be read.
var bootTime = sync.OnceValue(func() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(sec, 0)
			}
		}
	}
	return time.Time{}
})

// writeRecord atomically replaces r's file in dir.
func writeRecord(dir string, r *record) error {
	name, err := checkOwner(r.Owner)
	if err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode reservation of %q: %w", r.Owner, err)
	}
	if err := fsutil.ReplaceFileNoSync(filepath.Join(dir, name), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write reservation of %q: %w", r.Owner, err)
	}
	return nil
}

// removeRecord removes the record file name from dir; a missing one is not
// an error.
func removeRecord(dir, name string) error {
	if err := fsutil.Remove(filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("remove reservation: %w", err)
	}
	return nil
}
