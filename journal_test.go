package ocinet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/portmap"
)

// recordLines splits a journal file into its lines.
func recordLines(b []byte) [][]byte {
	return bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
}

// rewriteJournal replaces the journal file of id with change(its content).
func rewriteJournal(t *testing.T, e *env, id string, change func([]byte) []byte) {
	t.Helper()
	path := filepath.Join(e.state, "attachments", id+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// journalLines returns the phase of each line of an attachment's journal
// file, and the file's inode.
func journalLines(t *testing.T, e *env, id string) ([]string, uint64) {
	t.Helper()
	path := filepath.Join(e.state, "attachments", id+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	for _, l := range recordLines(b) {
		var r struct {
			Phase string `json:"phase"`
		}
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("journal line %q: %v", l, err)
		}
		phases = append(phases, r.Phase)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return phases, fi.Sys().(*syscall.Stat_t).Ino
}

// An attachment's journal file is a log: the record in phase adding is
// its first line, and the later phases are appended to the same file (the
// same inode: no new file, no rename).
func TestJournalIsALog(t *testing.T) {
	e := newEnv(t)
	var addingIno uint64
	restore := ocinet.SetCrashHook(func(point string) {
		if point == "attach:adding" {
			_, addingIno = journalLines(t, e, "jlog")
		}
	})
	e.attach(ocinet.AttachRequest{ID: "jlog", NetNS: e.ns()})
	restore()
	phases, ino := journalLines(t, e, "jlog")
	// adding first, attached last; between them, under the plugin
	// binaries, the record of the first result (still adding).
	if len(phases) < 2 || phases[0] != "adding" || phases[len(phases)-1] != "attached" || slices.ContainsFunc(phases[1:len(phases)-1], func(p string) bool { return p != "adding" }) {
		t.Errorf("journal lines after Attach: %v, want adding, then attached last", phases)
	}
	if addingIno == 0 || ino != addingIno {
		t.Errorf("journal file inode %d after Attach, %d in phase adding: want the same file", ino, addingIno)
	}
	e.detach("jlog")
}

// What a crash of the machine can leave of a journal file: appended
// lines cut short, a tail of zeros, or only the first line. The reader
// takes the last whole record; with only the adding record left, GC
// undoes the attachment. Each case ends with nothing of it left (the
// leak check).
func TestJournalAfterMachineCrash(t *testing.T) {
	for _, tc := range []struct {
		name     string
		damage   func(b []byte) []byte
		complete bool // what the reader finds: phase attached
	}{
		{"cut short", func(b []byte) []byte { // half of another attached line
			lines := recordLines(b)
			last := lines[len(lines)-1]
			return append(b, last[:len(last)/2]...)
		}, true},
		{"zeros", func(b []byte) []byte { return append(b, make([]byte, 700)...) }, true},
		{"appends lost", func(b []byte) []byte { return b[:bytes.IndexByte(b, '\n')+1] }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.attach(ocinet.AttachRequest{ID: "jcrash", NetNS: e.ns()})
			rewriteJournal(t, e, "jcrash", tc.damage)
			a, err := e.m.Get("jcrash")
			if err != nil {
				t.Fatalf("Get after the damage: %v", err)
			}
			if a.Complete != tc.complete {
				t.Errorf("Complete = %v, want %v", a.Complete, tc.complete)
			}
			if tc.complete {
				if len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) == 0 {
					t.Errorf("attachment %+v: want eth0 and its address from the attached record", a.Interfaces)
				}
				e.detach("jcrash")
				return
			}
			r, err := e.m.GC(context.Background(), nil, ocinet.GCOptions{})
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			if !slices.Equal(r.Finished, []string{"jcrash"}) {
				t.Errorf("GC finished %v, want [jcrash]", r.Finished)
			}
		})
	}
}

// A journal file written by an earlier release (one record, compact or
// indented, with no newline after it) is read, and so is the phase
// appended to it (here detaching, seen from the step right after it).
func TestJournalEarlierRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format func(line []byte) []byte
	}{
		{"compact", func(line []byte) []byte { return line }},
		{"indented", func(line []byte) []byte {
			var ind bytes.Buffer
			if err := json.Indent(&ind, line, "", "  "); err != nil {
				t.Fatal(err)
			}
			return ind.Bytes()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.attach(ocinet.AttachRequest{ID: "jold", NetNS: e.ns()})
			rewriteJournal(t, e, "jold", func(b []byte) []byte {
				lines := recordLines(b)
				return tc.format(lines[len(lines)-1])
			})
			a, err := e.m.Get("jold")
			if err != nil || !a.Complete {
				t.Fatalf("Get of an earlier release's record: %+v, %v; want it complete", a, err)
			}
			var phase error = errors.New("the detaching step was not reached")
			restore := ocinet.SetCrashHook(func(step string) {
				if step == "detach:detaching" {
					a, err := e.m.Get("jold")
					switch {
					case err != nil:
						phase = err
					case a.Complete:
						phase = errors.New("still complete after detaching was appended")
					default:
						phase = nil
					}
				}
			})
			e.detach("jold")
			restore()
			if phase != nil {
				t.Errorf("the record after the detaching phase was appended: %v", phase)
			}
		})
	}
}

// When the first record cannot be written (here the journal directory is
// replaced by a file before the ports are reserved), Attach fails and
// leaves nothing: no record, no reservation, lo down again in the
// namespace (it came up while the record was being written).
func TestAttachFirstRecordFails(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.state, "attachments")
	restore := ocinet.SetCrashHook(func(step string) {
		if step == "attach:planned" {
			if err := os.Rename(dir, dir+".away"); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Error(err)
			}
		}
	})
	ns := e.ns()
	_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "jfail", NetNS: ns, Ports: []portmap.Mapping{mustParse(t, "127.0.0.1:28120:80")}})
	restore()
	if rerr := os.Remove(dir); rerr != nil {
		t.Fatal(rerr)
	}
	if rerr := os.Rename(dir+".away", dir); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "attachments") {
		t.Fatalf("Attach with an unwritable journal: %v, want an error naming the journal", err)
	}
	if ports, err := e.m.Ports().Reserved("jfail"); err != nil || len(ports) > 0 {
		t.Errorf("reservation after the failed Attach: %v, %v; want none", ports, err)
	}
	if _, err := e.m.Get("jfail"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("record after the failed Attach: %v, want ErrNotFound", err)
	}
	wantLoDown(t, ns, "the failed Attach")
	// The network's ADD started while the record was written, and
	// waited for it: it made nothing.
	if out := linksIn(t, ns); out != "lo" {
		t.Errorf("links in the namespace after the failed Attach: %s; want lo alone", out)
	}
}

// The in-process loopback's ADD starts beside the plan; an Attach that
// fails before its first record (a network that does not exist, a host
// port another attachment holds) puts lo down again and leaves no record.
func TestAttachRefusedLeavesLoDown(t *testing.T) {
	e := newEnv(t)
	hold := e.ns()
	e.attach(ocinet.AttachRequest{ID: "jhold", NetNS: hold, Ports: []portmap.Mapping{mustParse(t, "127.0.0.1:28121:80")}})
	defer e.detach("jhold")
	for _, c := range []struct {
		name string
		req  ocinet.AttachRequest
		want error
	}{
		{"unknown network", ocinet.AttachRequest{ID: "jlo", Networks: []string{"nosuch"}}, ocinet.ErrNotFound},
		{"host port taken", ocinet.AttachRequest{ID: "jlo", Ports: []portmap.Mapping{mustParse(t, "127.0.0.1:28121:80")}}, ocinet.ErrConflict},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := e.ns()
			c.req.NetNS = ns
			_, err := e.m.Attach(context.Background(), c.req)
			if !errors.Is(err, c.want) {
				t.Fatalf("Attach: %v, want %v", err, c.want)
			}
			if _, err := e.m.Get("jlo"); !errors.Is(err, ocinet.ErrNotFound) {
				t.Errorf("record after the refused Attach: %v, want ErrNotFound", err)
			}
			wantLoDown(t, ns, "the refused Attach")
		})
	}
}

// The networks' ADDs start while the first record is written but change
// nothing until it is on disk (attach:adding): at that point the
// container's namespace has lo alone and the host has nothing new but the
// record, the port reservation and the loopback's cache entry (no veth,
// lease, firewall rule or set element), under either datapath.
func TestNothingBeforeTheRecord(t *testing.T) {
	e := newEnv(t)
	const id = "jgate"
	ns := e.ns()
	cfg := leakcheck.Config{StateDirs: []string{e.state}, IgnoreBridges: []string{testBridge}}
	before, err := leakcheck.Take(cfg)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(item string) bool {
		return strings.HasPrefix(item, "journal: ") || strings.HasPrefix(item, "ports: ") ||
			strings.HasPrefix(item, "cni-cache: ") && strings.HasSuffix(item, "-"+id+"-lo")
	}
	seen := 0
	restore := ocinet.SetCrashHook(func(step string) {
		if step != "attach:adding" {
			return
		}
		seen++
		if out := linksIn(t, ns); out != "lo" {
			t.Errorf("links in the namespace before the record was written: %s; want lo alone", out)
		}
		at, err := leakcheck.Take(cfg)
		if err != nil {
			t.Error(err)
			return
		}
		for _, item := range leakcheck.Diff(before, at) {
			if !allowed(item) {
				t.Errorf("made before the record was written: %s", item)
			}
		}
	})
	e.attach(ocinet.AttachRequest{ID: id, NetNS: ns, Ports: []portmap.Mapping{mustParse(t, "127.0.0.1:28121:80")}})
	restore()
	if seen != 1 {
		t.Errorf("attach:adding seen %d times, want once", seen)
	}
	// The checks above can fail: after the Attach, the namespace has
	// eth0 and the host has a veth, a lease and firewall state.
	if out := linksIn(t, ns); !strings.Contains(out, "eth0") {
		t.Errorf("links in the namespace after Attach: %s; want eth0", out)
	}
	after, err := leakcheck.Take(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, item := range leakcheck.Diff(before, after) {
		if !allowed(item) {
			kinds[strings.SplitN(item, ":", 2)[0]] = true
		}
	}
	if !kinds["veth"] || !kinds["ipam"] || !kinds["nftables-ocinet"] && !kinds["iptables-save"] {
		t.Errorf("new on the host after Attach: %v; want a veth, a lease and firewall state", kinds)
	}
	// The in-process loopback runs without the CNI library's chain, so
	// without a cache entry; the binary's has one.
	loCache := slices.ContainsFunc(leakcheck.Diff(before, after), func(item string) bool {
		return strings.HasPrefix(item, "cni-cache: ") && strings.HasSuffix(item, "-"+id+"-lo")
	})
	if native := testenv.Datapath() != "plugins"; loCache == native {
		t.Errorf("the loopback's cache entry after Attach: %v, want %v", loCache, !native)
	}
	e.detach(id)
}

// wantLoDown fails t unless lo is down in the namespace at ns after what.
func wantLoDown(t *testing.T, ns, what string) {
	t.Helper()
	out, err := inNS(ns, "ip", "-o", "link", "show", "lo")
	if err != nil {
		t.Fatalf("ip link in the namespace: %v: %s", err, out)
	}
	if strings.Contains(out, "LOWER_UP") || strings.Contains(out, ",UP") {
		t.Errorf("lo after %s: %s; want it down", what, strings.TrimSpace(out))
	}
}

// linksIn lists the names of the links inside a namespace, space separated.
func linksIn(t *testing.T, path string) string {
	t.Helper()
	out, err := inNS(path, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatalf("ip link in %s: %v: %s", path, err, out)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return strings.Join(names, " ")
}

// A port held by another container fails the Attach before anything is
// made: no record, lo untouched, and the holder keeps its port.
func TestAttachPortTaken(t *testing.T) {
	e := newEnv(t)
	port := mustParse(t, "127.0.0.1:28122:80")
	e.attach(ocinet.AttachRequest{ID: "jholder", NetNS: e.ns(), Ports: []portmap.Mapping{port}})
	ns := e.ns()
	_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "jsecond", NetNS: ns, Ports: []portmap.Mapping{port}})
	if !errors.Is(err, ocinet.ErrConflict) || !strings.Contains(err.Error(), "28122") {
		t.Fatalf("Attach with a held port: %v, want ErrConflict naming the port", err)
	}
	if _, err := e.m.Get("jsecond"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("record after the refused Attach: %v, want ErrNotFound", err)
	}
	if out := linksIn(t, ns); out != "lo" {
		t.Errorf("links in the namespace after the refused Attach: %s; want lo alone", out)
	}
	if ports, err := e.m.Ports().Reserved("jholder"); err != nil || len(ports) != 1 {
		t.Errorf("the holder's reservation after the refused Attach: %v, %v", ports, err)
	}
	e.detach("jholder")
}
