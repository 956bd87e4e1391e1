package inproc

import (
	"fmt"
)

// RemoveBridge removes everything the table inet ocinet holds for the
// bridge called bridge, whatever subnets its networks had: the rules and
// the chain masq-<bridge> and the jump to it, and the bridge's elements of
// the static sets (its networks' subnets, isolation). It is for tidying a host, or a
// test, after the bridge itself is gone; a network being removed goes
// through [Exec.RemoveNetwork], which keeps the rules of other networks on
// a shared bridge. No table or no chain is not an error.
func RemoveBridge(bridge string) error {
	if err := validIfName(bridge); err != nil {
		return fmt.Errorf("remove bridge state: %w", err)
	}
	c, err := newConn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer closeConn(c)
	if _, err := c.ListTableOfFamily(TableName, TableFamily); err != nil {
		return nil // no table
	}
	changed := false
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
	chains, err := c.ListChainsOfTableFamily(TableFamily)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == MasqChain(bridge) {
			c.FlushChain(ch)
			c.DelChain(ch)
			changed = true
		}
	}
	if changed {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: remove the state of bridge %s: %w", bridge, err)
		}
	}
	// The bridge's elements of the static sets (subnets, isolation).
	return deleteElements("remove bridge state", StaticSets, func(com string) bool { return com == NetworkComment(bridge) })
}
