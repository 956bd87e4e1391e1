package inproc

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The static chains and sets of port publishing and isolation, made once
// per host (see the package documentation for the layout).
const (
	// DNATChain is the regular chain that translates published ports; the
	// base chains PreroutingChain and OutputChain jump to it.
	DNATChain = "hostports"
	// PreroutingChain is the nat chain at hook prerouting, priority dstnat.
	PreroutingChain = "prerouting"
	// OutputChain is the nat chain at hook output, priority dstnat.
	OutputChain = "output"
	// SNATChain is the nat chain at hook postrouting, priority srcnat, that
	// masquerades loopback-sourced and hairpin traffic to published ports.
	SNATChain = "hostports-snat"
	// ForwardChain is the filter chain at hook forward, priority filter:
	// isolation between networks and the containers' forward accept.
	ForwardChain = "forward"
)

// Names of the table's sets and maps. Elements that belong to an
// attachment carry the comment AttachmentComment(network, id, ifname);
// those of a network, NetworkComment(bridge).
const (
	// PortMap4 maps protocol . host IPv4 address . host port to container
	// address . port; PortMapAny4 protocol . host port (any local address).
	PortMap4    = "ports4"
	PortMapAny4 = "ports4-any"
	PortMap6    = "ports6"
	PortMapAny6 = "ports6-any"
	// Subnets4 and Subnets6 hold the subnets of the networks with
	// published ports (intervals): traffic from them to a published port
	// is masqueraded (hairpin, and a neighbour through the host).
	Subnets4 = "subnets4"
	Subnets6 = "subnets6"
	// SameBridgeSet holds "bridge . bridge" for every bridge of a network
	// with published ports or isolation (hairpin masquerade, isolation).
	SameBridgeSet = "same-bridge"
	// IsolatedSet holds the bridges of the networks isolated from one
	// another (firewall ingressPolicy same-bridge).
	IsolatedSet = "isolated"
	// Forward4 and Forward6 hold the containers' addresses that the
	// firewall's per-container forward accept names.
	Forward4 = "forward4"
	Forward6 = "forward6"
)

// StaticChains are the table's chains made once per host; StaticSets its
// sets and maps. The leak oracle counts their elements, not them.
var (
	StaticChains = []string{PostroutingChain, DNATChain, PreroutingChain, OutputChain, SNATChain, ForwardChain}
	StaticSets   = []string{PortMap4, PortMapAny4, PortMap6, PortMapAny6, Subnets4, Subnets6, SameBridgeSet, IsolatedSet, Forward4, Forward6}
)

// AttachmentComment is the comment of the set elements of one attachment
// (container ID and interface name) of a network.
func AttachmentComment(network, id, ifName string) string {
	return "ocinet:net=" + network + " att=" + id + "/" + ifName
}

// attachmentOf parses an AttachmentComment.
func attachmentOf(comment string) (network, id, ifName string, ok bool) {
	rest, ok := strings.CutPrefix(comment, "ocinet:net=")
	if !ok {
		return "", "", "", false
	}
	network, att, ok := strings.Cut(rest, " att=")
	if !ok {
		return "", "", "", false
	}
	id, ifName, ok = strings.Cut(att, "/")
	return network, id, ifName, ok
}

var (
	typeIFPair = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)
	sets       = map[string]*nftables.Set{
		PortMap4: {Table: table, Name: PortMap4, IsMap: true, Concatenation: true, HasTimeout: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeIPAddr, nftables.TypeInetService),
			DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)},
		PortMapAny4: {Table: table, Name: PortMapAny4, IsMap: true, Concatenation: true, HasTimeout: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
			DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)},
		PortMap6: {Table: table, Name: PortMap6, IsMap: true, Concatenation: true, HasTimeout: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeIP6Addr, nftables.TypeInetService),
			DataType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)},
		PortMapAny6: {Table: table, Name: PortMapAny6, IsMap: true, Concatenation: true, HasTimeout: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
			DataType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)},
		Subnets4:      {Table: table, Name: Subnets4, Interval: true, KeyType: nftables.TypeIPAddr},
		Subnets6:      {Table: table, Name: Subnets6, Interval: true, KeyType: nftables.TypeIP6Addr},
		SameBridgeSet: {Table: table, Name: SameBridgeSet, Concatenation: true, KeyType: typeIFPair},
		IsolatedSet:   {Table: table, Name: IsolatedSet, KeyType: nftables.TypeIFName},
		Forward4:      {Table: table, Name: Forward4, HasTimeout: true, KeyType: nftables.TypeIPAddr},
		Forward6:      {Table: table, Name: Forward6, HasTimeout: true, KeyType: nftables.TypeIP6Addr},
	}
)

func baseChain(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: table, Type: typ, Hooknum: hook, Priority: prio}
}

func staticChainDefs() []*nftables.Chain {
	return []*nftables.Chain{
		postrouting(),
		{Name: DNATChain, Table: table},
		baseChain(PreroutingChain, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		baseChain(OutputChain, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		baseChain(SNATChain, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		baseChain(ForwardChain, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter),
	}
}

// staticInPlace reports whether every static chain and set is there, each
// set as sets defines it (two netlink dumps).
func staticInPlace(c *nftables.Conn) bool {
	chains, err := c.ListChainsOfTableFamily(TableFamily)
	if err != nil {
		return false
	}
	have := map[string]bool{}
	for _, ch := range chains {
		if ch.Table.Name == TableName {
			have["chain "+ch.Name] = true
		}
	}
	ss, err := c.GetSets(table)
	if err != nil {
		return false
	}
	for _, s := range ss {
		if def, ok := sets[s.Name]; ok && s.HasTimeout == def.HasTimeout {
			have["set "+s.Name] = true
		}
	}
	for _, n := range StaticChains {
		if !have["chain "+n] {
			return false
		}
	}
	for _, n := range StaticSets {
		if !have["set "+n] {
			return false
		}
	}
	return true
}

// ensureStatic makes the static chains, sets and rules of port publishing
// and isolation unless they are all there; after "nft flush ruleset" the
// next call makes them again. A chain found incomplete is flushed and its
// rules written again, so that no rule is ever there twice. A
// per-attachment set made without timeout support (by the first release)
// is made again with it, its elements carried over, in the same
// transaction.
func (e *Exec) ensureStatic() error {
	c, err := newConn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer closeConn(c)
	if staticInPlace(c) {
		return nil
	}
	l, err := e.lock("nftables")
	if err != nil {
		return err
	}
	defer l.Unlock()
	if staticInPlace(c) {
		return nil
	}
	existing := map[string]*nftables.Set{}
	if ss, err := c.GetSets(table); err == nil {
		for _, s := range ss {
			existing[s.Name] = s
		}
	}
	c.AddTable(table)
	var chains []*nftables.Chain
	for _, def := range staticChainDefs() {
		if def.Name == PostroutingChain {
			continue // ensureMasq's
		}
		ch := c.AddChain(def)
		c.FlushChain(ch) // before a set its rules use is made again
		chains = append(chains, ch)
	}
	for _, n := range StaticSets {
		if old := existing[n]; old != nil && old.HasTimeout != sets[n].HasTimeout {
			if err := remakeSet(c, old, sets[n]); err != nil {
				return err
			}
			continue
		}
		if err := c.AddSet(sets[n], nil); err != nil {
			return fmt.Errorf("nftables: set %s: %w", n, err)
		}
	}
	for _, ch := range chains {
		for _, r := range staticRules(ch.Name) {
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: r})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: make the static chains of table %s %s: %w", "inet", TableName, err)
	}
	return nil
}

// remakeSet queues, in c's transaction, the deletion of set old and the
// making of def in its place with old's elements. The rules that use the
// set must be flushed earlier in the same transaction.
func remakeSet(c *nftables.Conn, old, def *nftables.Set) error {
	els, err := c.GetSetElements(old)
	if err != nil {
		return fmt.Errorf("nftables: elements of set %s: %w", old.Name, err)
	}
	c.DelSet(old)
	var keep []nftables.SetElement
	for _, el := range els {
		keep = append(keep, nftables.SetElement{Key: el.Key, Val: el.Val, KeyEnd: el.KeyEnd, IntervalEnd: el.IntervalEnd, Comment: el.Comment})
	}
	if err := c.AddSet(def, keep); err != nil {
		return fmt.Errorf("nftables: set %s: %w", def.Name, err)
	}
	return nil
}

// staticRules are the rules of a static chain.
func staticRules(chain string) [][]expr.Any {
	switch chain {
	case PreroutingChain:
		// A port published on a loopback address answers only what came in
		// on lo: dnat would otherwise turn a packet sent from another host
		// to 127.0.0.1 into one to the container.
		return [][]expr.Any{
			concat(nfproto(unix.NFPROTO_IPV4),
				metaNeq(expr.MetaKeyIIFNAME, ifname("lo")),
				prefix(16, 4, net.IPv4(127, 0, 0, 0).To4(), 8),
				lookupPortKey4(),
				&expr.Lookup{SourceRegister: 1, SetName: PortMap4},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop}),
			{&expr.Verdict{Kind: expr.VerdictJump, Chain: DNATChain}},
		}
	case OutputChain:
		return [][]expr.Any{{&expr.Verdict{Kind: expr.VerdictJump, Chain: DNATChain}}}
	case DNATChain:
		return [][]expr.Any{
			dnatRule(unix.NFPROTO_IPV4, false), dnatRule(unix.NFPROTO_IPV4, true),
			dnatRule(unix.NFPROTO_IPV6, false), dnatRule(unix.NFPROTO_IPV6, true),
		}
	case SNATChain:
		return [][]expr.Any{
			// Loopback-sourced traffic to a published port leaves through a
			// bridge: the container answers its gateway instead.
			concat(nfproto(unix.NFPROTO_IPV4), ctDNAT(),
				prefix(12, 4, net.IPv4(127, 0, 0, 0).To4(), 8),
				&expr.Masq{}),
			// Hairpin: from a network with published ports to a published
			// port (its own, or a neighbour's through the host).
			concat(nfproto(unix.NFPROTO_IPV4), ctDNAT(),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Lookup{SourceRegister: 1, SetName: Subnets4}, &expr.Masq{}),
			concat(nfproto(unix.NFPROTO_IPV6), ctDNAT(),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
				&expr.Lookup{SourceRegister: 1, SetName: Subnets6}, &expr.Masq{}),
		}
	case ForwardChain:
		return [][]expr.Any{
			// Two isolated bridges that are not the same one: drop.
			{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Lookup{SourceRegister: 1, SetName: IsolatedSet},
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
				&expr.Lookup{SourceRegister: 1, SetName: IsolatedSet},
				ifPair()[0], ifPair()[1],
				&expr.Lookup{SourceRegister: 1, SetName: SameBridgeSet, Invert: true},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			},
			forwardAccept(unix.NFPROTO_IPV4, 12, Forward4, false),
			forwardAccept(unix.NFPROTO_IPV4, 16, Forward4, true),
			forwardAccept(unix.NFPROTO_IPV6, 8, Forward6, false),
			forwardAccept(unix.NFPROTO_IPV6, 24, Forward6, true),
		}
	}
	return nil
}

func concat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch v := p.(type) {
		case []expr.Any:
			out = append(out, v...)
		case expr.Any:
			out = append(out, v)
		}
	}
	return out
}

func metaNeq(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: data}}
}

// prefix matches the network header field at off (n bytes) against
// addr/bits.
func prefix(off, n uint32, addr net.IP, bits int) []expr.Any {
	mask := net.CIDRMask(bits, int(n)*8)
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr.Mask(mask)},
	}
}

// ipsDstNAT is the conntrack status bit IPS_DST_NAT.
const ipsDstNAT = 1 << 5

// ctDNAT is "ct status dnat".
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ifPair loads "iifname . oifname" from register 1.
func ifPair() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 12},
	}
}

// lookupPortKey4 loads "meta l4proto . ip daddr . th dport" from register 1.
func lookupPortKey4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// dnatRule is "dnat ip to meta l4proto . ip daddr . th dport map @ports4"
// or, any, "fib daddr type local dnat ip to meta l4proto . th dport map
// @ports4-any" (ip6 and the 6 maps for IPv6).
func dnatRule(proto byte, anyAddr bool) []expr.Any {
	out := nfproto(proto)
	v4 := proto == unix.NFPROTO_IPV4
	addrOff, addrLen, portReg, natPort := uint32(16), uint32(4), uint32(10), uint32(9)
	name := PortMap4
	family := uint32(unix.NFPROTO_IPV4)
	if !v4 {
		addrOff, addrLen, portReg, natPort, name, family = 24, 16, 13, 12, PortMap6, unix.NFPROTO_IPV6
	}
	if anyAddr {
		name += "-any"
		out = append(out,
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	} else {
		out = append(out,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: addrLen},
			&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	}
	return append(out,
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: name},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: family, RegAddrMin: 1, RegProtoMin: natPort, Specified: true})
}

// forwardAccept is "ip saddr @forward4 accept" or, reply, "ip daddr
// @forward4 ct state established,related accept".
func forwardAccept(proto byte, off uint32, set string, reply bool) []expr.Any {
	n := uint32(4)
	if proto == unix.NFPROTO_IPV6 {
		n = 16
	}
	out := concat(nfproto(proto),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: set})
	if reply {
		out = append(out,
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	}
	return append(out, &expr.Verdict{Kind: expr.VerdictAccept})
}

// pad4 pads b to a multiple of 4 bytes, as concatenated keys are.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func port(p int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(p)) }

// ifPairKey is the SameBridgeSet key of a bridge.
func ifPairKey(bridge string) []byte { return append(ifname(bridge), ifname(bridge)...) }

// subnetElements are the interval elements of a subnet: its first address
// and, as the interval's end, the address after its last.
func subnetElements(n *net.IPNet, com string) []nftables.SetElement {
	ip := n.IP.Mask(n.Mask)
	if v4 := ip.To4(); v4 != nil && len(n.Mask) == 4 {
		ip = v4
	}
	end := make(net.IP, len(ip))
	carry := true
	for i := len(ip) - 1; i >= 0; i-- {
		end[i] = ip[i] | ^n.Mask[i]
		if carry {
			end[i]++
			carry = end[i] == 0
		}
	}
	out := []nftables.SetElement{{Key: []byte(ip), Comment: com}}
	if !carry { // the last subnet of the space has no end element
		out = append(out, nftables.SetElement{Key: []byte(end), IntervalEnd: true})
	}
	return out
}
