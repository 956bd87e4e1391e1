package ocinet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const cacheTestConf = `{"cniVersion":"1.0.0","name":"NAME","nerdctlLabels":{"a":"b"},"plugins":[{"type":"bridge","bridge":"br-x","ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]]}}]}`

func writeAged(t *testing.T, path, content string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-age)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func cached(file string) bool { return confCache.Has(file) }

// A conflist read once is not parsed again while it is unchanged, but a
// file modified within fsutil.RacyFor of its reading is not kept (file times
// tick coarsely), and a changed file (size or time) is read again. What
// a caller gets is its own: changing it changes nothing for the next.
func TestConfCache(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.conflist")
	fresh := filepath.Join(dir, "fresh.conflist")
	writeAged(t, old, replaceName(cacheTestConf, "old1"), time.Hour)
	writeAged(t, fresh, replaceName(cacheTestConf, "new1"), 0)
	for range 2 {
		nets, err := readNetworkDir(dir, "")
		if err != nil || len(nets) != 2 {
			t.Fatalf("readNetworkDir: %v, %v", nets, err)
		}
		nets[0].Labels["a"] = "changed by the caller"
		nets[0].Subnets[0] = nets[0].Subnets[0].Masked()
	}
	if !cached(old) || cached(fresh) {
		t.Errorf("cached: old %v (want true), fresh %v (want false)", cached(old), cached(fresh))
	}
	nets, _ := readNetworkDir(dir, "")
	for _, n := range nets {
		if n.Labels["a"] != "b" {
			t.Errorf("network %s: label a = %q after a caller changed its copy, want b", n.Name, n.Labels["a"])
		}
	}
	// A rewrite (another size, a new time) is seen.
	writeAged(t, old, replaceName(cacheTestConf, "old-renamed"), time.Hour/2)
	nets, _ = readNetworkDir(dir, "")
	if len(nets) != 2 || nets[0].Name != "new1" && nets[1].Name != "new1" || nets[0].Name != "old-renamed" && nets[1].Name != "old-renamed" {
		t.Errorf("after a rewrite: %v, %v; want new1 and old-renamed", nets[0].Name, nets[1].Name)
	}
}

func replaceName(conf, name string) string { return strings.Replace(conf, "NAME", name, 1) }
