package ocinet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ocinet/ocinet/internal/fsutil"
	"github.com/ocinet/ocinet/portmap"
	"golang.org/x/sys/unix"
)

// Phases of an attachment record.
const (
	phaseAdding    = "adding"    // written before the first ADD
	phaseAttached  = "attached"  // every ADD succeeded
	phaseDetaching = "detaching" // written before the first DEL
)

// journalVersion is the version of the record format. Version 1 kept the
// loopback network as the first of Networks; readRecord moves it to
// Loopback, so that records written before an upgrade still detach.
const journalVersion = 2

// record is one attachment in the journal. It holds everything DEL needs:
// the exact conflist bytes and the arguments used at ADD time.
type record struct {
	Version  int               `json:"version"`
	ID       string            `json:"id"`
	Name     string            `json:"name,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Phase    string            `json:"phase"`
	NetNS    string            `json:"netns"`
	// NetNSID identifies the namespace NetNS held at ADD time (device and
	// inode), so that DEL never runs in another namespace that has taken
	// the path since (a reused PID in /proc/<pid>/ns/net).
	NetNSID string    `json:"netnsID,omitempty"`
	Created time.Time `json:"created"`
	// Loopback is the loopback network, added first and deleted last
	// (nil in a record that a crash cut short before it was written).
	Loopback *networkRecord `json:"loopback,omitempty"`
	// Networks are the container's networks, eth0 first.
	Networks []networkRecord `json:"networks"`
	Ports    []portmap.Port  `json:"ports,omitempty"`
	// Proxies relay the ports published on IPv6 loopback (portmap.StartProxy).
	Proxies []portmap.Proxy `json:"proxies,omitempty"`
}

// networkRecord is one network of an attachment, in the order of ADD.
type networkRecord struct {
	Name     string          `json:"name"`
	IfName   string          `json:"ifName"`
	ConfList json.RawMessage `json:"conflist"`
	// Args are the CNI_ARGS pairs.
	Args [][2]string `json:"args,omitempty"`
	// CapArgs are the capability arguments (portMappings, ips), as JSON.
	CapArgs json.RawMessage `json:"capabilityArgs,omitempty"`
	// Datapath is who ran ADD ("native" or "plugins"; "" in records made
	// before the native datapath existed: the binaries). DEL and CHECK go
	// the same way.
	Datapath Datapath `json:"datapath,omitempty"`
	// DatapathReason says why auto chose the binaries for a chain the
	// native datapath claims (inproc.Preflight's error), "" otherwise.
	DatapathReason string `json:"datapathReason,omitempty"`
	// Result is the CNI result (CNI 1.0 JSON): the final one once the
	// record is attached; while adding, the first result that named an
	// address, so that a crash mid-chain still leaves the addresses known.
	Result json.RawMessage `json:"result,omitempty"`
}

// chain returns rec's networks in the order of ADD: loopback first.
func (r *record) chain() []*networkRecord {
	var out []*networkRecord
	if r.Loopback != nil {
		out = append(out, r.Loopback)
	}
	for i := range r.Networks {
		out = append(out, &r.Networks[i])
	}
	return out
}

func (m *Manager) journalPath(id string) string {
	return filepath.Join(m.root, "attachments", id+".json")
}

// An attachment's journal file is a log of its records, one per line
// (compact JSON), the last whole one current. writeRecord starts the file
// durably (temp file, fsync, rename), with the record in phase adding;
// appendRecord adds each later state (a result, attached, detaching) to
// its end, without fsync and without a new file. After a crash of the
// process every line is there. After a crash of the machine the appended
// lines may be lost, or the last one cut short; readRecord then takes the
// last whole record, at worst the first: the attachment in phase adding,
// which GC undoes (what the record describes in the kernel ended with the
// machine, and its lease and ports are found by its ID).
//
// maxJournalLog bounds a log: an append that would pass it rewrites the
// file with the one record instead (a detach that keeps failing appends
// its phase each time).
const maxJournalLog = 64 << 10

// writeRecord replaces the journal file of r with r alone, durably.
func (m *Manager) writeRecord(r *record) error {
	b, err := json.Marshal(r) // not indented: one record per line
	if err != nil {
		return err
	}
	return m.writeRecordJSON(r.ID, b)
}

// writeRecordJSON replaces the journal file of id with the record b (JSON
// on one line), durably.
func (m *Manager) writeRecordJSON(id string, b []byte) error {
	return fsutil.ReplaceFile(m.journalPath(id), append(b, '\n'), 0o600)
}

// appendRecord adds r, the attachment's new state, to the end of its
// journal file (writeRecord when there is none, or the log is full).
func (m *Manager) appendRecord(r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := m.journalPath(r.ID)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return m.writeRecord(r)
	}
	if err != nil {
		return fmt.Errorf("journal of %s: %w", r.ID, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size()+int64(len(b)) >= maxJournalLog {
		f.Close()
		if err != nil {
			return fmt.Errorf("journal of %s: %w", r.ID, err)
		}
		return m.writeRecord(r) // replaces whatever is there
	}
	line := append(b, '\n')
	// A record of an earlier release has no newline after it: start the
	// line on its own.
	last := []byte{'\n'}
	if fi.Size() > 0 {
		if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
			f.Close()
			return fmt.Errorf("journal of %s: %w", r.ID, err)
		}
	}
	if last[0] != '\n' {
		line = append([]byte{'\n'}, line...)
	}
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal of %s: %w", r.ID, err)
	}
	return nil
}

// readRecord returns the record of id, or nil when there is none.
func (m *Manager) readRecord(id string) (*record, error) {
	b, err := os.ReadFile(m.journalPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal of %s: %w", id, err)
	}
	r, err := lastRecord(b, id)
	if err != nil {
		return nil, fmt.Errorf("read journal of %s: %w", id, err)
	}
	return r, nil
}

// lastRecord returns the last whole record of id in a journal file: the
// last line that decodes as one, or, when no line does, the whole file as
// one record (the indented form of earlier releases).
func lastRecord(b []byte, id string) (*record, error) {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if r, err := decodeRecord(lines[i], id); err == nil {
			return r, nil
		}
	}
	return decodeRecord(b, id)
}

func decodeRecord(b []byte, id string) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Version == 1 && len(r.Networks) > 0 && r.Networks[0].Name == loopbackNetwork {
		r.Loopback, r.Networks = &r.Networks[0], r.Networks[1:]
		r.Version = journalVersion
	}
	if r.Version != journalVersion || r.ID != id {
		return nil, fmt.Errorf("unexpected version %d or id %q", r.Version, r.ID)
	}
	return &r, nil
}

func (m *Manager) removeRecord(id string) error {
	return fsutil.Remove(m.journalPath(id))
}

// journalIDs returns the IDs that have a record, sorted.
func (m *Manager) journalIDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(m.root, "attachments"))
	if err != nil {
		return nil, fmt.Errorf("list journal: %w", err)
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		id := strings.TrimSuffix(name, ".json")
		if validID(id) == nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}
