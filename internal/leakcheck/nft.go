package leakcheck

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"

	"github.com/ocinet/ocinet/inproc"
)

// ocinetTable returns the items of the in-process datapath's nftables table
// (package inproc, table inet ocinet), read through netlink: every chain
// but the static ones (inproc.StaticChains: "chain NAME"), every rule of
// those chains and the rules of the static chains that a network owns
// ("rule CHAIN #HANDLE COMMENT"), every set but the static ones
// (inproc.StaticSets: "set NAME") and every element of every set, the
// static ones too ("element SET KEY COMMENT": port mappings, subnets,
// isolated bridges, forward accepts). The table itself, its static chains
// with their fixed rules and its static sets are shared and kept, like the
// plugins' shared chains, and are not counted. No table is no items.
func ocinetTable() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTableOfFamily(inproc.TableName, inproc.TableFamily); err != nil {
		return nil, nil // no table
	}
	table := &nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily}
	chains, err := c.ListChainsOfTableFamily(inproc.TableFamily)
	if err != nil {
		return nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	var out []string
	for _, ch := range chains {
		if ch.Table.Name != inproc.TableName {
			continue
		}
		static := slices.Contains(inproc.StaticChains, ch.Name)
		if !static {
			out = append(out, "chain "+ch.Name)
		}
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return nil, fmt.Errorf("nftables: rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			com := inproc.RuleComment(r)
			if static && !isNetworkComment(com) {
				continue
			}
			out = append(out, fmt.Sprintf("rule %s #%d %s", ch.Name, r.Handle, com))
		}
	}
	sets, err := c.GetSets(table)
	if err != nil {
		return nil, fmt.Errorf("nftables: sets: %w", err)
	}
	for _, s := range sets {
		if !slices.Contains(inproc.StaticSets, s.Name) {
			out = append(out, "set "+s.Name)
		}
		elems, err := listElements(c, s)
		if err != nil {
			return nil, err
		}
		if s.Interval {
			// An interval's end carries no comment: it gets its start's.
			slices.SortFunc(elems, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
			start := ""
			for i := range elems {
				if elems[i].IntervalEnd {
					elems[i].Comment = start
				} else {
					start = elems[i].Comment
				}
			}
		}
		for _, e := range elems {
			out = append(out, strings.TrimSpace("element "+s.Name+" "+hex.EncodeToString(e.Key)+" "+e.Comment))
		}
	}
	return out, nil
}

// listElements returns the elements of s but those expiring (a DEL's,
// which the kernel stops matching within a tick). It lists the set twice
// and keeps what either listing has: a listing skips elements when the set
// changes between two of its netlink messages (the kernel freeing expired
// elements is enough), and a leak must not go unseen for that.
func listElements(c *nftables.Conn, s *nftables.Set) ([]nftables.SetElement, error) {
	var out []nftables.SetElement
	seen := map[string]bool{}
	for range 2 {
		elems, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: elements of set %s: %w", s.Name, err)
		}
		for _, e := range elems {
			id := fmt.Sprint(e.IntervalEnd, hex.EncodeToString(e.Key))
			if e.Expires > 0 || seen[id] {
				continue
			}
			seen[id] = true
			out = append(out, e)
		}
	}
	return out, nil
}

func isNetworkComment(c string) bool {
	return strings.HasPrefix(c, inproc.NetworkComment("")) && c != inproc.NetworkComment("")
}
