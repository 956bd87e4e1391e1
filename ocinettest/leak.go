package ocinettest

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/dns"
)

// LeakConfig says where the leak oracle looks. Zero fields mean the
// defaults written on them.
type LeakConfig struct {
	// NetNSDir is the namespace directory (default /var/run/netns).
	NetNSDir string
	// CNIDataDir is host-local's data directory (default /var/lib/cni/networks).
	CNIDataDir string
	// CNICacheDir is the CNI library's result cache (default
	// /var/lib/cni/results).
	CNICacheDir string
	// StateDirs are ocinet state roots whose records are counted.
	StateDirs []string
	// IgnoreBridges are bridge names not counted: a network's bridge lives
	// as long as the network, not the container; the test removes it.
	IgnoreBridges []string
}

// Snapshot is what one look at the host found: the items of each kind.
// The kinds:
//
//   - "netns": a file in the namespace directory;
//   - "veth", "bridge": a link of that type in the caller's namespace;
//   - "iptables-save", "ip6tables-save": a rule (table and rule text) that
//     belongs to one container: it names a container ID (id: "..."), a
//     per-container chain (CNI-<hash>, CNI-DN-<hash>) or a single host
//     address (/32, /128); the shared chains the plugins keep on purpose
//     (CNI-FORWARD, CNI-HOSTPORT-DNAT, ...) and their fixed rules are not
//     counted;
//   - "ipam": an address that host-local holds (<network>/<address>);
//   - "cni-cache": an entry of the CNI library's result cache;
//   - "journal", "ports", "hosts", "dns": an ocinet state root's
//     attachment record, port reservation, hosts record, or DNS responder
//     pid file;
//   - "dns-responder": a running DNS responder process (package dns) of
//     one of StateDirs (of any state root when StateDirs is empty), by
//     state root and network.
type Snapshot map[string]map[string]bool

// TakeSnapshot looks at the host. It needs ip(8); it reads the firewall
// with iptables-save and ip6tables-save where they run (as root), and
// skips a family whose tool does not.
func TakeSnapshot(c LeakConfig) (Snapshot, error) {
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
	if ents, err := os.ReadDir(c.NetNSDir); err == nil {
		for _, e := range ents {
			add("netns", e.Name())
		}
	}
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
			if kind == "bridge" && slices.Contains(c.IgnoreBridges, name) {
				continue
			}
			add(kind, name)
		}
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(tool).Output()
		if err != nil {
			continue // the family may be unavailable; absence is not a leak
		}
		for _, r := range containerRules(out) {
			add(tool, r)
		}
	}
	// host-local keeps one file per address it holds.
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
	if ents, err := os.ReadDir(c.CNICacheDir); err == nil {
		for _, e := range ents {
			add("cni-cache", e.Name())
		}
	}
	for _, p := range responders(c.StateDirs) {
		add("dns-responder", p)
	}
	for _, root := range c.StateDirs {
		for kind, items := range stateRecords(root) {
			for _, it := range items {
				add(kind, it)
			}
		}
	}
	return s, nil
}

// stateRecords returns the records under an ocinet state root, by kind.
func stateRecords(root string) map[string][]string {
	out := map[string][]string{}
	for kind, pattern := range map[string]string{
		"journal": "attachments/*.json",
		"ports":   "ports/*.json",
		"hosts":   "hosts/*/records/*.json",
		"dns":     "dns/*.pid",
	} {
		matches, _ := filepath.Glob(filepath.Join(root, pattern))
		out[kind] = append(out[kind], matches...)
	}
	return out
}

// responders returns the DNS responder processes running for one of roots
// (for any root when roots is empty), as "<root> <network>".
func responders(roots []string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if argv[0] != dns.HelperName {
			continue
		}
		var root, network string
		for i := 1; i+1 < len(argv); i++ {
			switch argv[i] {
			case "-state":
				root = argv[i+1]
			case "-network":
				network = argv[i+1]
			}
		}
		if len(roots) == 0 || slices.Contains(roots, root) {
			out = append(out, root+" "+network)
		}
	}
	return out
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

// Diff returns what after has that before had not, one line per item
// ("kind: item"), sorted.
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

// CheckLeaks takes a snapshot now and registers a cleanup that takes
// another when the test ends and fails the test if anything was left
// behind. Register it first, so that it runs after the test's other
// cleanups. It skips the test (or fails it under CI=true) without ip(8).
//
// The host is shared: another process's work that appears between the two
// snapshots is reported as well. Tests that run beside others give their
// containers, networks and namespaces names of their own and filter [Diff]
// by them instead.
func CheckLeaks(t testing.TB, c LeakConfig) {
	t.Helper()
	requireTools(t, "ip")
	before, err := TakeSnapshot(c)
	if err != nil {
		t.Fatalf("leak check: %v", err)
	}
	t.Cleanup(func() {
		after, err := TakeSnapshot(c)
		if err != nil {
			t.Errorf("leak check: %v", err)
			return
		}
		if leaks := Diff(before, after); len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", joinLines(leaks))
		}
	})
}

func joinLines(lines []string) string { return strings.Join(lines, "\n  ") }
