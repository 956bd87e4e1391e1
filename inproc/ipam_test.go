package inproc_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/reexec"
	"github.com/ocinet/ocinet/internal/testenv"
)

func TestMain(m *testing.M) {
	reexec.Run()
	code := m.Run()
	testenv.CleanupBuilds()
	os.Exit(code)
}

const leaseHelper = "inproc-test-lease"

func init() { reexec.Register(leaseHelper, leaseChild) }

// leaseConf is a bridge config whose host-local leases live in dataDir.
func leaseConf(dataDir string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"inp-leases","type":"bridge","bridge":"unused0",
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.217.0.0/23"}]]}}`, dataDir)
}

// leaseChild takes leases (host-local is told that the namespace, which it
// does not use, may be its own): leaseChild DATADIR PLUGINDIR PREFIX COUNT
// MODE, MODE being "inproc", "binary" (host-local's binary) or "mixed"
// (alternating). It prints one line "ID ADDRESS" per lease.
func leaseChild() int {
	a := os.Args[1:]
	if len(a) != 5 {
		fmt.Fprintln(os.Stderr, "usage: DATADIR PLUGINDIR PREFIX COUNT MODE")
		return 2
	}
	dataDir, pluginDir, prefix, mode := a[0], a[1], a[2], a[4]
	count, err := strconv.Atoi(a[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conf := leaseConf(dataDir)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := range count {
		id := fmt.Sprintf("%s-%d", prefix, i)
		binary := mode == "binary" || (mode == "mixed" && i%2 == 1)
		var addr string
		if binary {
			cmd := exec.Command(filepath.Join(pluginDir, "host-local"))
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_NETNS=/proc/self/ns/net", "CNI_NETNS_OVERRIDE=1", "CNI_IFNAME=eth0", "CNI_PATH=" + pluginDir}
			cmd.Stdin = bytes.NewReader(conf)
			b, err := cmd.Output()
			if err != nil {
				fmt.Fprintf(os.Stderr, "host-local %s: %v: %s\n", id, err, b)
				return 1
			}
			var res types100.Result
			if err := json.Unmarshal(b, &res); err != nil || len(res.IPs) != 1 {
				fmt.Fprintf(os.Stderr, "host-local %s: result %s: %v\n", id, b, err)
				return 1
			}
			addr = res.IPs[0].Address.IP.String()
		} else {
			ipam, err := inproc.IPAMConfigForTest(conf)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			ips, err := inproc.LeaseForTest(ipam, id, "eth0")
			if err != nil {
				fmt.Fprintf(os.Stderr, "lease %s: %v\n", id, err)
				return 1
			}
			addr = ips[0].Address.IP.String()
		}
		fmt.Fprintf(out, "%s %s\n", id, addr)
	}
	return 0
}

// TestLeasesAcrossProcesses: three processes lease at once from one subnet,
// one in process, one through host-local's binary, one alternating, 300
// leases in all: no address is given twice, and every lease file names
// its holder in host-local's format.
func TestLeasesAcrossProcesses(t *testing.T) {
	plugins := testenv.PluginDir
	if _, err := os.Stat(filepath.Join(plugins, "host-local")); err != nil {
		testenv.Skip(t, "needs the host-local plugin in "+plugins+" (run scripts/install.sh)")
	}
	dataDir := t.TempDir()
	type child struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	var children []*child
	for _, mode := range []string{"inproc", "binary", "mixed"} {
		c := &child{cmd: reexec.Command(leaseHelper, dataDir, plugins, mode, "100", mode)}
		c.cmd.Stdout = &c.out
		c.cmd.Stderr = os.Stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, c)
	}
	holder := map[string]string{}
	for _, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("%v: %v", c.cmd.Args, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(c.out.String()), "\n") {
			id, addr, _ := strings.Cut(line, " ")
			if prev, dup := holder[addr]; dup {
				t.Errorf("%s given to both %s and %s", addr, prev, id)
			}
			holder[addr] = id
		}
	}
	if len(holder) != 300 {
		t.Errorf("%d distinct addresses, want 300", len(holder))
	}
	for addr, id := range holder {
		b, err := os.ReadFile(filepath.Join(dataDir, "inp-leases", addr))
		if err != nil {
			t.Errorf("lease file of %s: %v", addr, err)
			continue
		}
		if want := id + "\r\neth0"; string(b) != want {
			t.Errorf("lease file of %s holds %q, want %q", addr, b, want)
		}
	}
}

// TestLeaseIndexSeesHostLocal: a lease that host-local's binary takes
// between two in-process calls is seen by the second: the in-process
// index of the directory, kept between calls, follows the binary's write.
func TestLeaseIndexSeesHostLocal(t *testing.T) {
	plugins := testenv.PluginDir
	if _, err := os.Stat(filepath.Join(plugins, "host-local")); err != nil {
		testenv.Skip(t, "needs the host-local plugin in "+plugins+" (run scripts/install.sh)")
	}
	conf := leaseConf(t.TempDir())
	ipam, err := inproc.IPAMConfigForTest(conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inproc.LeaseForTest(ipam, "a", "eth0"); err != nil {
		t.Fatal(err)
	}
	if ips, err := inproc.LeasedForTest(ipam, "h", "eth0"); err != nil || len(ips) != 0 {
		t.Fatalf("h holds %v (%v) before host-local ran", ips, err)
	}
	cmd := exec.Command(filepath.Join(plugins, "host-local"))
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=h", "CNI_NETNS=/proc/self/ns/net", "CNI_NETNS_OVERRIDE=1", "CNI_IFNAME=eth0", "CNI_PATH=" + plugins}
	cmd.Stdin = bytes.NewReader(conf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("host-local: %v: %s", err, out)
	}
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("host-local's result %s: %v", out, err)
	}
	ips, err := inproc.LeasedForTest(ipam, "h", "eth0")
	if err != nil || len(ips) != 1 || !ips[0].Equal(res.IPs[0].Address.IP) {
		t.Errorf("h holds %v (%v), want %s, host-local's lease", ips, err, res.IPs[0].Address.IP)
	}
	if _, err := inproc.LeaseForTest(ipam, "h", "eth0"); err == nil || !strings.Contains(err.Error(), "duplicate allocation") {
		t.Errorf("a second lease of h: %v, want host-local's duplicate error", err)
	}
}
