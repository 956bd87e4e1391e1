package inproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// firewalldPidFile is where firewalld writes its process ID.
var firewalldPidFile = "/run/firewalld.pid"

// Preflight reports whether what the table inet ocinet accepts can pass
// on this host (its current network namespace). An accept verdict in one
// nftables table does not override a drop in another, so a forward base
// chain of another table whose policy is drop (iptables' FORWARD chain
// with policy DROP, as a host with docker has, lives in table ip filter)
// would drop the containers' forwarded traffic; firewalld drops what its
// zones do not allow. Preflight reads the chains through netlink and
// firewalld's pid file, and starts no process.
//
// nil: the in-process portmap and firewall can run. errors.Is(err,
// ErrNotSupported): the error names what would drop the traffic; run the
// plugin binaries instead (their firewall plugin inserts its accept rules
// into iptables' own FORWARD chain). Other errors: the chains could not be
// read. The in-process firewall's ADD runs Preflight and refuses with its
// error rather than set up a container whose traffic is dropped.
//
// A namespace whose chains passed less than a second ago is not listed
// again (an Attach checks once when it chooses the datapath and again in
// the firewall's ADD, a few milliseconds apart); firewalld's pid file is
// read each time.
func Preflight() error {
	ns, nsErr := threadNS()
	if nsErr != nil || !chainsPassed.recent(ns) {
		c, err := newConn()
		if err != nil {
			return fmt.Errorf("preflight: nftables: %w", err)
		}
		err = forwardChains(c)
		closeConn(c)
		if err != nil {
			return err
		}
		if nsErr == nil {
			chainsPassed.passed(ns)
		}
	}
	return firewalld()
}

// chainsPassed is the namespace whose forward chains last passed, and
// when.
var chainsPassed passedAt

// chainsFreshFor is how long a pass of the chains holds.
const chainsFreshFor = time.Second

type passedAt struct {
	mu sync.Mutex
	ns uint64 // the namespace's inode
	at time.Time
}

func (p *passedAt) recent(ns uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ns == ns && time.Since(p.at) < chainsFreshFor
}

func (p *passedAt) passed(ns uint64) {
	p.mu.Lock()
	p.ns, p.at = ns, time.Now()
	p.mu.Unlock()
}

// threadNS returns the inode of the calling thread's network namespace.
func threadNS() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func preflight(c *nftables.Conn) error {
	if err := forwardChains(c); err != nil {
		return err
	}
	return firewalld()
}

// forwardChains refuses a forward base chain with policy drop in another
// table than the project's.
func forwardChains(c *nftables.Conn) error {
	chains, err := c.ListChains()
	if err != nil {
		return fmt.Errorf("preflight: list nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Table.Family == TableFamily {
			continue
		}
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		return fmt.Errorf("preflight: chain %s in table %s %s has policy drop and would drop forwarded container traffic: %w",
			ch.Name, familyName(ch.Table.Family), ch.Table.Name, ErrNotSupported)
	}
	return nil
}

// firewalld refuses a running firewalld.
func firewalld() error {
	if pid, ok := firewalldRunning(); ok {
		return fmt.Errorf("preflight: firewalld is running (pid %d in %s) and would drop forwarded container traffic: %w", pid, firewalldPidFile, ErrNotSupported)
	}
	return nil
}

// firewalldRunning reads firewalld's pid file and tells whether that
// process lives.
func firewalldRunning() (int, bool) {
	b, err := os.ReadFile(firewalldPidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	err = syscall.Kill(pid, 0)
	return pid, err == nil || err == syscall.EPERM
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return strconv.Itoa(int(f))
}
