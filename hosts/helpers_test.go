package hosts

import (
	"bytes"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
)

var equateAddr = cmpopts.EquateComparable(netip.Addr{})

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ips(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = ip(s)
	}
	return out
}

func net1(name string, addrs ...string) Network {
	return Network{Name: name, IPs: ips(addrs...)}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJoin(t *testing.T, s *Store, rs ...Record) {
	t.Helper()
	for _, r := range rs {
		if err := s.Prepare(r.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Join(r); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustRender(t *testing.T, s *Store, id string) string {
	t.Helper()
	b, err := s.Render(id)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// entries returns the lines of a managed block after the fixed local
// entries, without the markers.
func entries(t *testing.T, block string) []string {
	t.Helper()
	head := beginLine + "\n" + localEntries
	body, ok := strings.CutPrefix(block, head)
	if !ok {
		t.Fatalf("managed block does not start with the marker and local entries:\n%s", block)
	}
	body, ok = strings.CutSuffix(body, endMarker+"\n")
	if !ok {
		t.Fatalf("managed block does not end with the end marker:\n%s", block)
	}
	if body == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n")
}

// snapshot returns every path under dir with its content (directories as
// "dir"), to check that a failed call changed nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[p] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeCounter records the hosts files a store writes.
type writeCounter struct{ paths []string }

func (c *writeCounter) hook(p string) { c.paths = append(c.paths, p) }

func (c *writeCounter) ids() []string {
	var out []string
	for _, p := range c.paths {
		out = append(out, filepath.Base(filepath.Dir(p)))
	}
	return out
}

func hasLine(content, line string) bool {
	return bytes.Contains([]byte("\n"+content), []byte("\n"+line+"\n"))
}
