// Package leakcheck snapshots what attaching containers leaves on a host and
// compares two snapshots: every integration test takes one before and one
// after, and fails on any difference.
//
// What it looks at: namespace files in the namespace directory, veth and
// bridge links, per-container iptables and ip6tables chains and rules,
// host-local IPAM reservations, the CNI library's result cache, and the
// records under ocinet state roots (journal entries, port reservations,
// hosts records).
//
// Shared firewall chains that the plugins create once per host and keep on
// purpose (CNI-FORWARD, CNI-HOSTPORT-DNAT, CNI-ISOLATION-STAGE-1, ...) and
// their fixed jump rules are not leaks. A rule is counted when it belongs to
// one container: it names a container ID, a per-container chain
// (CNI-<hash>, CNI-DN-<hash>) or a single host address (/32, /128).
package leakcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Config says where to look. Zero fields mean the defaults written on them.
type Config struct {
	// NetNSDir is the namespace directory (default /var/run/netns).
	NetNSDir string
	// CNIDataDir is host-local's data directory (default /var/lib/cni/networks).
	CNIDataDir string
	// CNICacheDir is the CNI library's cache (default /var/lib/cni/results).
	CNICacheDir string
	// StateDirs are ocinet state roots whose records are counted.
	StateDirs []string
	// Bridges are bridge names to ignore (a network's bridge lives as long
	// as the network, not the container). The test removes them itself.
	IgnoreBridges []string
}

// Snapshot is what one look at the host found: a set of items per kind.
type Snapshot map[string]map[string]bool

// Take looks at the host.
func Take(c Config) (Snapshot, error) {
	if c.NetNSDir == "" {
		c.NetNSDir = "/var/run/netns"
	}
	if c.CNIDataDir == "" {
		c.CNIDataDir = "/var/lib/cni/networks"
	}
	if c.CNICacheDir == "" {
		c.CNICacheDir = "/var/lib/cni/results"
	}
	s := Snapshot{}
	add := func(kind, item string) {
		if s[kind] == nil {
			s[kind] = map[string]bool{}
		}
		s[kind][item] = true
	}
	// Namespaces.
	if ents, err := os.ReadDir(c.NetNSDir); err == nil {
		for _, e := range ents {
			add("netns", e.Name())
		}
	}
	// Links.
	for _, kind := range []string{"veth", "bridge"} {
		out, err := exec.Command("ip", "-o", "link", "show", "type", kind).Output()
		if err != nil {
			return nil, fmt.Errorf("ip link show type %s: %w", kind, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if kind == "bridge" && contains(c.IgnoreBridges, name) {
				continue
			}
			add(kind, name)
		}
	}
	// Firewall.
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(tool).Output()
		if err != nil {
			continue // the family may be unavailable; absence is not a leak
		}
		for _, r := range containerRules(out) {
			add(tool, r)
		}
	}
	// IPAM reservations: host-local keeps one file per address.
	if nets, err := os.ReadDir(c.CNIDataDir); err == nil {
		for _, n := range nets {
			files, _ := os.ReadDir(filepath.Join(c.CNIDataDir, n.Name()))
			for _, f := range files {
				if _, err := netip.ParseAddr(f.Name()); err == nil {
					add("ipam", n.Name()+"/"+f.Name())
				}
			}
		}
	}
	// CNI result cache.
	if ents, err := os.ReadDir(c.CNICacheDir); err == nil {
		for _, e := range ents {
			add("cni-cache", e.Name())
		}
	}
	// ocinet records.
	for _, root := range c.StateDirs {
		for kind, pattern := range map[string]string{
			"journal": "attachments/*.json",
			"ports":   "ports/*.json",
			"hosts":   "hosts/*/records/*.json",
		} {
			matches, _ := filepath.Glob(filepath.Join(root, pattern))
			for _, m := range matches {
				add(kind, m)
			}
		}
	}
	return s, nil
}

var (
	perContainer = regexp.MustCompile(`id: \\?"|CNI-[0-9a-f]{16,}|CNI-DN-[0-9a-f]+|/32\b|/128\b`)
	counters     = regexp.MustCompile(`\[\d+:\d+\]`)
)

// containerRules returns the lines of an iptables-save dump that belong to
// one container, prefixed by their table.
func containerRules(dump []byte) []string {
	var out []string
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			continue
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
			continue
		}
		line = counters.ReplaceAllString(line, "")
		if perContainer.MatchString(line) {
			out = append(out, table+" "+strings.TrimSpace(line))
		}
	}
	return out
}

// Diff returns what after has that before had not, one line per item, sorted.
func Diff(before, after Snapshot) []string {
	var out []string
	for kind, items := range after {
		for item := range items {
			if !before[kind][item] {
				out = append(out, kind+": "+item)
			}
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
