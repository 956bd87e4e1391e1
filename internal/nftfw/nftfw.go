package nftfw

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Chains are the firewall plugin's isolation chains in table filter.
var Chains = []string{"CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"}

// Rule is one rule of an isolation chain.
type Rule struct {
	// Family is "ip" or "ip6".
	Family string
	// Chain is the chain the rule is in.
	Chain string
	// Handle is the rule's nftables handle.
	Handle uint64
	// Interfaces are the device names the rule matches on (-i or -o, with
	// or without "!"), in the order they appear.
	Interfaces []string
}

// Names reports whether the rule matches on the device called name.
func (r Rule) Names(name string) bool {
	for _, i := range r.Interfaces {
		if i == name {
			return true
		}
	}
	return false
}

func (r Rule) String() string {
	return fmt.Sprintf("%s filter %s handle %d (%s)", r.Family, r.Chain, r.Handle, strings.Join(r.Interfaces, ", "))
}

// Report is what [RemoveBridge] did.
type Report struct {
	// Removed are the rules deleted.
	Removed []Rule
	// Legacy names the families ("ip", "ip6") whose filter table is in
	// legacy iptables (x_tables) rather than nftables: their rules were
	// left alone.
	Legacy []string
}

// Option configures a call.
type Option func(*config)

type config struct{ netnsFd int }

// WithNetNS works in the network namespace open as fd instead of the
// caller's.
func WithNetNS(fd int) Option { return func(c *config) { c.netnsFd = fd } }

func connect(opts []Option) (*nftables.Conn, error) {
	c := config{netnsFd: -1}
	for _, o := range opts {
		o(&c)
	}
	var copts []nftables.ConnOption
	if c.netnsFd >= 0 {
		copts = append(copts, nftables.WithNetNSFd(c.netnsFd))
	}
	conn, err := nftables.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink connection: %w", err)
	}
	return conn, nil
}

var families = []struct {
	name   string
	family nftables.TableFamily
	legacy string // the x_tables list of the family's loaded tables
}{
	{"ip", nftables.TableFamilyIPv4, "/proc/thread-self/net/ip_tables_names"},
	{"ip6", nftables.TableFamilyIPv6, "/proc/thread-self/net/ip6_tables_names"},
}

// IsolationRules returns the rules of the isolation chains in the tables
// ip filter and ip6 filter; a family without the table or the chains has
// none.
func IsolationRules(opts ...Option) ([]Rule, error) {
	conn, err := connect(opts)
	if err != nil {
		return nil, err
	}
	defer conn.CloseLasting()
	var out []Rule
	for _, f := range families {
		rules, _, err := familyRules(conn, f.family, f.name)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			out = append(out, r.Rule)
		}
	}
	return out, nil
}

type nftRule struct {
	Rule
	table *nftables.Table
	chain *nftables.Chain
}

// familyRules lists one family's isolation rules; found says whether the
// family has an isolation chain in nftables at all.
func familyRules(conn *nftables.Conn, family nftables.TableFamily, name string) (rules []nftRule, found bool, err error) {
	tables, err := conn.ListTablesOfFamily(family)
	if err != nil {
		return nil, false, fmt.Errorf("list %s tables: %w", name, err)
	}
	var table *nftables.Table
	for _, t := range tables {
		if t.Name == "filter" {
			table = t
		}
	}
	if table == nil {
		return nil, false, nil
	}
	chains, err := conn.ListChainsOfTableFamily(family)
	if err != nil {
		return nil, false, fmt.Errorf("list %s chains: %w", name, err)
	}
	for _, ch := range chains {
		if ch.Table.Name != "filter" || !isIsolationChain(ch.Name) {
			continue
		}
		found = true
		rs, err := conn.GetRules(table, ch)
		if err != nil {
			return nil, true, fmt.Errorf("list rules of %s filter %s: %w", name, ch.Name, err)
		}
		for _, r := range rs {
			rules = append(rules, nftRule{
				Rule:  Rule{Family: name, Chain: ch.Name, Handle: r.Handle, Interfaces: interfaces(r.Exprs)},
				table: table, chain: ch,
			})
		}
	}
	return rules, found, nil
}

func isIsolationChain(name string) bool {
	for _, c := range Chains {
		if c == name {
			return true
		}
	}
	return false
}

// interfaces decodes the device names a rule compares iifname or oifname
// with: iptables-nft writes -i NAME as a meta load of the name into a
// register followed by a compare of that register with NAME and a NUL (a
// wildcard NAME+ compares the prefix only, without the NUL).
func interfaces(exprs []expr.Any) []string {
	var out []string
	loaded := map[uint32]bool{} // registers holding a device name
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister {
				continue
			}
			loaded[e.Register] = e.Key == expr.MetaKeyIIFNAME || e.Key == expr.MetaKeyOIFNAME
		case *expr.Cmp:
			if !loaded[e.Register] || (e.Op != expr.CmpOpEq && e.Op != expr.CmpOpNeq) {
				continue
			}
			if name := string(bytes.TrimRight(e.Data, "\x00")); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}

// RemoveBridge deletes the isolation rules that name the device bridge, in
// both families. A family that has no isolation chain in nftables but a
// filter table in legacy iptables (x_tables, read from
// /proc/thread-self/net: the calling thread's namespace) is listed in the
// report's Legacy and left alone.
func RemoveBridge(bridge string, opts ...Option) (Report, error) {
	var rep Report
	if bridge == "" || len(bridge) >= unix.IFNAMSIZ || strings.ContainsAny(bridge, "/ \x00") {
		return rep, fmt.Errorf("remove isolation rules: bad device name %q", bridge)
	}
	conn, err := connect(opts)
	if err != nil {
		return rep, err
	}
	defer conn.CloseLasting()
	for _, f := range families {
		rules, found, err := familyRules(conn, f.family, f.name)
		if err != nil {
			return rep, fmt.Errorf("remove isolation rules of %s: %w", bridge, err)
		}
		if !found {
			if legacyTable(f.legacy, opts) {
				rep.Legacy = append(rep.Legacy, f.name)
			}
			continue
		}
		for _, r := range rules {
			if !r.Names(bridge) {
				continue
			}
			if err := conn.DelRule(&nftables.Rule{Table: r.table, Chain: r.chain, Handle: r.Handle}); err != nil {
				return rep, fmt.Errorf("remove isolation rule %s: %w", r.Rule, err)
			}
			if err := conn.Flush(); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // removed by someone else meanwhile
				}
				return rep, fmt.Errorf("remove isolation rule %s: %w", r.Rule, err)
			}
			rep.Removed = append(rep.Removed, r.Rule)
		}
	}
	return rep, nil
}

// legacyTable reports whether legacy iptables has a filter table loaded in
// the calling thread's namespace. With WithNetNS the x_tables list of
// another namespace is not read and the answer is false.
func legacyTable(list string, opts []Option) bool {
	c := config{netnsFd: -1}
	for _, o := range opts {
		o(&c)
	}
	if c.netnsFd >= 0 {
		return false
	}
	b, err := os.ReadFile(list)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "filter" {
			return true
		}
	}
	return false
}
