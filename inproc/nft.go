package inproc

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/internal/fsutil"
)

// The project's own nftables table. Nothing here touches another table.
const (
	// TableName is the name of the table, in family TableFamily.
	TableName = "ocinet"
	// PostroutingChain is the table's static nat chain; its rules that a
	// network owns carry the comment NetworkComment(bridge).
	PostroutingChain = "postrouting"
)

// TableFamily is the table's family: inet (IPv4 and IPv6).
const TableFamily = nftables.TableFamilyINet

// MasqChain returns the name of the masquerade chain of the network whose
// bridge is bridge.
func MasqChain(bridge string) string { return "masq-" + bridge }

// NetworkComment is the comment of the rules in the static chains that
// belong to the network whose bridge is bridge.
func NetworkComment(bridge string) string { return "ocinet:net=" + bridge }

// Comments of the static rules made with the table.
const (
	commentMulticast4 = "ocinet:multicast4"
	commentMulticast6 = "ocinet:multicast6"
)

var table = &nftables.Table{Name: TableName, Family: TableFamily}

func postrouting() *nftables.Chain {
	return &nftables.Chain{
		Name:     PostroutingChain,
		Table:    table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}
}

// RuleComment returns the comment of an nftables rule, "" when it has none.
func RuleComment(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// subnetComment is the comment of the masquerade rule of one subnet.
func subnetComment(bridge string, s *net.IPNet) string {
	return NetworkComment(bridge) + " subnet=" + s.String()
}

// ensureMasq makes sure the network's masquerade chain has a rule for each
// of its subnets and is jumped to from the static postrouting chain. Two
// networks on one bridge share the chain, each with its subnets' rules.
// The caller holds the bridge's lock.
func (e *Exec) ensureMasq(bridge string, subnets []*net.IPNet) error {
	c, err := newConn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer closeConn(c)
	if masqInPlace(c, bridge, subnets) {
		return nil
	}
	l, err := e.lock("nftables")
	if err != nil {
		return err
	}
	defer l.Unlock()
	c.AddTable(table)
	base := c.AddChain(postrouting())
	has := ruleComments(c, base) // none when the chain is new
	// Multicast is never masqueraded: these come first in the chain.
	if !has[commentMulticast6] {
		c.InsertRule(&nftables.Rule{Table: table, Chain: base, Exprs: multicast6(), UserData: comment(commentMulticast6)})
	}
	if !has[commentMulticast4] {
		c.InsertRule(&nftables.Rule{Table: table, Chain: base, Exprs: multicast4(), UserData: comment(commentMulticast4)})
	}
	masq := c.AddChain(&nftables.Chain{Name: MasqChain(bridge), Table: table})
	inChain := ruleComments(c, masq)
	for _, s := range subnets {
		if !inChain[subnetComment(bridge, s)] {
			c.AddRule(&nftables.Rule{Table: table, Chain: masq, Exprs: masqExprs(s, bridge), UserData: comment(subnetComment(bridge, s))})
		}
	}
	if !has[NetworkComment(bridge)] {
		c.AddRule(&nftables.Rule{Table: table, Chain: base, UserData: comment(NetworkComment(bridge)),
			Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: MasqChain(bridge)}}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: masquerade for bridge %s: %w", bridge, err)
	}
	return nil
}

// ruleComments returns the comments of a chain's rules; none when the
// chain (or the table) does not exist.
func ruleComments(c *nftables.Conn, ch *nftables.Chain) map[string]bool {
	rules, _ := c.GetRules(table, ch)
	has := map[string]bool{}
	for _, r := range rules {
		has[RuleComment(r)] = true
	}
	return has
}

// masqInPlace reports whether every subnet has its rule and the jump to
// the chain is there.
func masqInPlace(c *nftables.Conn, bridge string, subnets []*net.IPNet) bool {
	inChain := ruleComments(c, &nftables.Chain{Name: MasqChain(bridge), Table: table})
	for _, s := range subnets {
		if !inChain[subnetComment(bridge, s)] {
			return false
		}
	}
	return ruleComments(c, postrouting())[NetworkComment(bridge)]
}

// removeMasq removes the rules of the subnets from the bridge's chain, and
// the chain and the jump to it once no rule is left; what is absent is not
// an error. The caller holds the bridge's lock.
func (e *Exec) removeMasq(bridge string, subnets []*net.IPNet) error {
	c, err := newConn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer closeConn(c)
	l, err := e.lock("nftables")
	if err != nil {
		return err
	}
	defer l.Unlock()
	masq := &nftables.Chain{Name: MasqChain(bridge), Table: table}
	rules, err := c.GetRules(table, masq)
	if err != nil {
		rules = nil // no chain
	}
	drop := map[string]bool{}
	for _, s := range subnets {
		drop[subnetComment(bridge, s)] = true
	}
	left, changed := 0, false
	for _, r := range rules {
		if !drop[RuleComment(r)] {
			left++
			continue
		}
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		changed = true
	}
	if left == 0 {
		if base, err := c.GetRules(table, postrouting()); err == nil {
			for _, r := range base {
				if RuleComment(r) == NetworkComment(bridge) {
					if err := c.DelRule(r); err != nil {
						return fmt.Errorf("nftables: %w", err)
					}
					changed = true
				}
			}
		}
		if rules != nil {
			c.DelChain(masq)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: remove masquerade of bridge %s: %w", bridge, err)
	}
	return nil
}

// newConn returns a netlink connection to nftables that stays open for
// the requests of one step: a Conn made without AsLasting dials a socket
// for each dump and each commit (about 0.03 ms a time). closeConn closes
// it.
func newConn() (*nftables.Conn, error) { return nftables.New(nftables.AsLasting()) }

func closeConn(c *nftables.Conn) { _ = c.CloseLasting() }

// lock takes an exclusive flock on <runtime dir>/inproc/<name>.lock.
func (e *Exec) lock(name string) (*fsutil.Lock, error) {
	dir := filepath.Join(e.runtimeDir, "inproc")
	l, err := fsutil.LockFile(filepath.Join(dir, name+".lock"), fsutil.Exclusive)
	if err == nil {
		return l, nil
	}
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}
	return fsutil.LockFile(filepath.Join(dir, name+".lock"), fsutil.Exclusive)
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// multicast4 is "ip daddr 224.0.0.0/4 return".
func multicast4() []expr.Any {
	return append(nfproto(unix.NFPROTO_IPV4),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xf0, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{224, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictReturn})
}

// multicast6 is "ip6 daddr ff00::/8 return".
func multicast6() []expr.Any {
	return append(nfproto(unix.NFPROTO_IPV6),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0xff}},
		&expr.Verdict{Kind: expr.VerdictReturn})
}

// masqExprs is "ip saddr SUBNET iifname BRIDGE oifname != BRIDGE
// masquerade" (ip6 for an IPv6 subnet): what the containers send out
// through another interface. The host's own traffic from the gateway
// address is not masqueraded (the plugin's rules match container
// addresses only): traffic to the gateway itself leaves through lo, and
// masquerading it would make the network's DNS responder see it from
// 127.0.0.1.
func masqExprs(s *net.IPNet, bridge string) []expr.Any {
	proto, off, addr := byte(unix.NFPROTO_IPV4), uint32(12), s.IP.To4()
	if addr == nil {
		proto, off, addr = unix.NFPROTO_IPV6, 8, s.IP.To16()
	}
	mask := net.IP(s.Mask)
	if len(mask) != len(addr) { // a v4 mask in 16 bytes
		mask = mask[len(mask)-len(addr):]
	}
	n := uint32(len(addr))
	return append(nfproto(proto),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: []byte(mask), Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(addr.Mask(net.IPMask(mask)))},
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(bridge)},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(bridge)},
		&expr.Masq{})
}

// ifname is an interface name as nftables compares it: NUL-padded to
// IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}
