package inproc

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
)

// forwardSets are the sets of the firewall's per-container forward accept.
var forwardSets = []string{Forward4, Forward6}

// firewallElements are the attachment's elements: its addresses in the
// forward sets and, with ingressPolicy same-bridge, its bridge in the
// isolated and same-bridge sets.
func firewallElements(n *attachConf, a *attachment, com string) map[string][]nftables.SetElement {
	out := map[string][]nftables.SetElement{}
	if ip := a.ip4(); ip != nil {
		out[Forward4] = []nftables.SetElement{{Key: []byte(ip), Comment: com}}
	}
	if ip := a.ip6(); ip != nil {
		out[Forward6] = []nftables.SetElement{{Key: []byte(ip), Comment: com}}
	}
	if n.IngressPolicy == "same-bridge" && a.bridge != "" {
		out[IsolatedSet] = []nftables.SetElement{{Key: ifname(a.bridge), Comment: NetworkComment(a.bridge)}}
		out[SameBridgeSet] = []nftables.SetElement{{Key: ifPairKey(a.bridge), Comment: NetworkComment(a.bridge)}}
	}
	return out
}

// firewallAdd refuses when Preflight finds a firewall that would drop what
// the table accepts, then adds the attachment's elements in one
// transaction.
func (e *Exec) firewallAdd(c call) ([]byte, error) {
	n, a, err := loadAttachment(c)
	if err != nil {
		return nil, err
	}
	if n.IngressPolicy == "same-bridge" && a.bridge == "" {
		return nil, fmt.Errorf("firewall: ingressPolicy same-bridge: the previous result names no bridge: %w", ErrInvalid)
	}
	if err := Preflight(); err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	key := attachmentKey(c.containerID, c.ifc)
	elems := firewallElements(n, a, AttachmentComment(n.Name, c.containerID, c.ifc))
	fresh := e.static.fresh(key)
	if part, _, made := e.takeEarly(key, "firewall"); made {
		if sameElements(part, elems) {
			// The bridge made them (WithChain).
			e.stepAt(c, "static")
			e.stepAt(c, "elements")
			return encodeResult(n.PrevResult, n.CNIVersion)
		}
		if err := undoEarly("firewall", part); err != nil {
			return nil, err
		}
	}
	if !fresh {
		if err := e.ensureStatic(); err != nil {
			return nil, err
		}
	}
	e.stepAt(c, "static")
	err = addElements("firewall", elems)
	if err != nil && fresh && isNotExist(err) {
		// The table went between the two plugins (a flush of the
		// ruleset): make it again, once.
		if err := e.ensureStatic(); err != nil {
			return nil, err
		}
		err = addElements("firewall", elems)
	}
	if err != nil {
		return nil, err
	}
	e.stepAt(c, "elements")
	return encodeResult(n.PrevResult, n.CNIVersion)
}

// staticSeen remembers the attachment whose ADD last found the static
// chains and sets in place, and when: the chain's portmap and firewall run
// one after the other, and the second need not list the table again.
type staticSeen struct {
	mu  sync.Mutex
	key string
	at  time.Time
}

// staticFreshFor is how long the finding holds for the same attachment.
const staticFreshFor = 2 * time.Second

func (s *staticSeen) saw(key string) {
	s.mu.Lock()
	s.key, s.at = key, time.Now()
	s.mu.Unlock()
}

// fresh reports whether the static part was found in place for this
// attachment moments ago, and forgets it (one use).
func (s *staticSeen) fresh(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.key == key && time.Since(s.at) < staticFreshFor
	s.key = ""
	return ok
}

func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}

// addElements adds elements to the table's sets in one transaction, once
// no element with one of their keys is still expiring (see expire.go and
// addnew.go).
func addElements(plugin string, elems map[string][]nftables.SetElement) error {
	if err := addAttachmentElements(nil, "", elems); err != nil {
		return fmt.Errorf("%s: add elements: %w", plugin, err)
	}
	return nil
}

func firewallWant(n *attachConf, a *attachment, com string) (map[string][]nftables.SetElement, error) {
	return firewallElements(n, a, com), nil
}

// registerIsolated puts the bridge of a firewall binary's network with
// ingressPolicy same-bridge into the isolated set, so that the table
// isolates in-process networks from it too (the binary's own isolation
// chains see only the bridges registered there).
func (e *Exec) registerIsolated(stdin []byte) error {
	n, err := loadAttachConf("firewall", stdin)
	if err != nil || n.IngressPolicy != "same-bridge" {
		return err
	}
	a, err := prevAttachment("firewall", n)
	if err != nil || a.bridge == "" {
		return err
	}
	if err := e.ensureStatic(); err != nil {
		return err
	}
	all := firewallElements(n, a, "")
	return addElements("firewall", map[string][]nftables.SetElement{IsolatedSet: all[IsolatedSet], SameBridgeSet: all[SameBridgeSet]})
}

// removeNetworkElements removes the bridge's elements of the isolated and
// same-bridge sets, and whatever attachment elements of the network are
// left.
func (e *Exec) removeNetworkElements(network, bridge string) error {
	return deleteElements("remove network state", StaticSets, func(com string) bool {
		n, _, _, ok := attachmentOf(com)
		return com == NetworkComment(bridge) || (ok && n == network)
	})
}
