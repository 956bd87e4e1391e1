// Package leakcheck is the leak oracle: a snapshot of everything on the
// host that an attachment can leave behind, taken before and after, and
// the difference. Package ocinettest re-exports it for embedders' tests
// (with a testing helper); the benchmark uses it directly, without linking
// package testing. It runs ip(8) and iptables-save(8): it is a test oracle,
// not library code.
package leakcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"time"

	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/inproc"
)

// Config says where the leak oracle looks. Zero fields mean the
// defaults written on them.
type Config struct {
	// NetNSDir is the namespace directory (default /var/run/netns).
	NetNSDir string
	// CNIDataDir is host-local's data directory (default /var/lib/cni/networks).
	CNIDataDir string
	// CNICacheDir is the CNI library's result cache (default
	// /var/lib/cni/results).
	CNICacheDir string
	// TuningDataDir is where the tuning plugin (binary or in process)
	// keeps its per-container backups (default /run/cni/tuning).
	TuningDataDir string
	// StateDirs are ocinet state roots whose records are counted.
	StateDirs []string
	// IgnoreBridges are bridge names not counted: a network's bridge lives
	// as long as the network, not the container; the test removes it.
	IgnoreBridges []string
	// ContainerFiles also counts, under each of StateDirs, every
	// container's directory of hosts and resolv.conf files in the hosts
	// store ("hosts-files") and its directory of logs ("container-dirs").
	// It is off by default because a container that only stopped keeps
	// them (Leave keeps the files for a restart); turn it on where every
	// container is removed in the end.
	ContainerFiles bool
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.NetNSDir == "" {
		c.NetNSDir = "/var/run/netns"
	}
	if c.CNIDataDir == "" {
		c.CNIDataDir = "/var/lib/cni/networks"
	}
	if c.CNICacheDir == "" {
		c.CNICacheDir = "/var/lib/cni/results"
	}
	if c.TuningDataDir == "" {
		c.TuningDataDir = "/run/cni/tuning"
	}
	return c
}

// Snapshot is what one look at the host found: the items of each kind.
// The kinds:
//
//   - "netns": a file in the namespace directory;
//   - "nftables-ocinet": an item of the in-process datapath's table inet
//     ocinet that is not part of its shared static chain: a chain, a rule
//     of such a chain or a network's rule in the static chain, a set or a
//     set element (read through netlink; absent without root); a
//     network's items live with its bridge, and those of IgnoreBridges
//     are not counted;
//   - "tuning-backup": a per-container backup file of the tuning plugin;
//   - "veth", "bridge": a link of that type in the caller's namespace;
//   - "iptables-save", "ip6tables-save": a rule (table and rule text) that
//     belongs to one container: it names a container ID (id: "..."), a
//     per-container chain (CNI-<hash>, CNI-DN-<hash>) or a single host
//     address (/32, /128); the shared chains the plugins keep on purpose
//     (CNI-FORWARD, CNI-HOSTPORT-DNAT, ...) and their fixed rules are not
//     counted;
//   - "isolation": a rule of the firewall plugin's chains
//     CNI-ISOLATION-STAGE-1 and -2 (iptables-save or ip6tables-save, then
//     the rule) that names a device (-i, -o) the host no longer has: the
//     plugin never removes them; RemoveNetwork does;
//   - "ipam": an address that host-local holds (<network>/<address>);
//   - "cni-cache": an entry of the CNI library's result cache;
//   - "journal", "ports", "hosts", "dns", "dns-stopping": an ocinet state
//     root's attachment record, port reservation, hosts record, DNS
//     responder pid file, or stopping file of a responder told to stop;
//   - "dns-responder": a running DNS responder process (package dns) of
//     one of StateDirs (of any state root when StateDirs is empty), by
//     state root and network;
//   - "hosts-files", "container-dirs" (with Config.ContainerFiles): a
//     container's directory of hosts and resolv.conf files in the hosts
//     store, or its directory of logs, under a state root.
type Snapshot map[string]map[string]bool

// Take looks at the host. It needs ip(8); it reads the firewall
// with iptables-save and ip6tables-save where they run (as root), and
// skips a family whose tool does not; as root it reads the table inet
// ocinet of package inproc through netlink.
func Take(c Config) (Snapshot, error) {
	c = c.withDefaults()
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
	links := map[string]bool{}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				links[strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]] = true
			}
		}
	} else {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(tool).Output()
		if err != nil {
			continue // the family may be unavailable; absence is not a leak
		}
		for _, r := range containerRules(out) {
			add(tool, r)
		}
		for _, r := range staleIsolationRules(out, links) {
			add("isolation", tool+" "+r)
		}
	}
	if os.Geteuid() == 0 {
		items, err := ocinetTable()
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if !ofIgnoredBridge(it, c.IgnoreBridges) {
				add("nftables-ocinet", it)
			}
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
	if ents, err := os.ReadDir(c.TuningDataDir); err == nil {
		for _, e := range ents {
			add("tuning-backup", e.Name())
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
		for kind, items := range StateRecords(root) {
			for _, it := range items {
				add(kind, it)
			}
		}
		if c.ContainerFiles {
			for kind, items := range ContainerFiles(root) {
				for _, it := range items {
					add(kind, it)
				}
			}
		}
	}
	return s, nil
}

// StateRecords returns the records under an ocinet state root, by kind.
func StateRecords(root string) map[string][]string {
	return globKinds(root, map[string]string{
		"journal":      "attachments/*.json",
		"ports":        "ports/*.json",
		"hosts":        "hosts/*/records/*.json",
		"dns":          "dns/*.pid",
		"dns-stopping": "dns/*.stopping",
	})
}

// ContainerFiles returns the containers' directories of files under an
// ocinet state root, by kind: "hosts-files" (hosts and resolv.conf in the
// hosts store) and "container-dirs" (logs).
func ContainerFiles(root string) map[string][]string {
	return globKinds(root, map[string]string{
		"hosts-files":    "hosts/*/containers/*",
		"container-dirs": "containers/*/*",
	})
}

// globKinds returns, for each kind, the paths under root that match its
// pattern.
func globKinds(root string, patterns map[string]string) map[string][]string {
	out := map[string][]string{}
	for kind, pattern := range patterns {
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

// eachRule calls f with each rule line of an iptables-save dump and its
// table, counters removed.
func eachRule(dump []byte, f func(table, line string)) {
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
		f(table, strings.TrimSpace(counters.ReplaceAllString(line, "")))
	}
}

// containerRules returns the lines of an iptables-save dump that belong to
// one container, prefixed by their table.
func containerRules(dump []byte) []string {
	var out []string
	eachRule(dump, func(table, line string) {
		if perContainer.MatchString(line) {
			out = append(out, table+" "+line)
		}
	})
	return out
}

// staleIsolationRules returns the rules of the isolation chains in an
// iptables-save dump's filter table that name a device not in links.
func staleIsolationRules(dump []byte, links map[string]bool) []string {
	var out []string
	eachRule(dump, func(table, line string) {
		if table != "filter" || !strings.HasPrefix(line, "-A CNI-ISOLATION-STAGE-") {
			return
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if (f[i] == "-i" || f[i] == "-o") && !links[f[i+1]] {
				out = append(out, line)
				return
			}
		}
	})
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

// ofIgnoredBridge reports whether an item of the table inet ocinet belongs
// to one of the bridges: its chain, or a rule that names the network.
func ofIgnoredBridge(item string, bridges []string) bool {
	for _, f := range strings.Fields(item) {
		for _, b := range bridges {
			if f == inproc.MasqChain(b) || f == inproc.NetworkComment(b) || strings.HasPrefix(f, inproc.NetworkComment(b)+" ") {
				return true
			}
		}
	}
	return false
}

// settleLimit is how long what ends asynchronously may outlive the test:
// the kernel removes the interfaces of a namespace that has ended
// (tens of milliseconds later, more under load), and a detach told that
// the namespace ends leaves them to it; a DNS responder told to stop
// exits, and removes its stopping file, a few milliseconds later; one
// that lingers (dns.Config.Linger) exits, and takes its pid file, once
// its network has had no container for its linger.
const settleLimit = 5 * time.Second

// transient are the kinds of leak that Settled waits for.
var transient = []string{"veth: ", "dns-responder: ", "dns: ", "dns-stopping: "}

// Settled is Diff against a snapshot taken now, taken again while what
// is left is only of the transient kinds, for at most settleLimit.
func Settled(before Snapshot, c Config) ([]string, error) {
	deadline := time.Now().Add(settleLimit)
	for {
		after, err := Take(c)
		if err != nil {
			return nil, err
		}
		leaks := Diff(before, after)
		settling := len(leaks) > 0
		for _, l := range leaks {
			settling = settling && slices.ContainsFunc(transient, func(p string) bool { return strings.HasPrefix(l, p) })
		}
		if !settling || time.Now().After(deadline) {
			return leaks, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
