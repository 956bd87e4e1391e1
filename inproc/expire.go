package inproc

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
)

// A DEL takes an attachment's elements out of the maps and sets by
// expiring them, not by deleting them: a transaction that deletes waits a
// kernel grace period (about 12 ms here, whatever the number of elements),
// one that sets an element's timeout does not (about 0.1 ms). The
// per-attachment sets are made with timeout support; their elements carry
// none until DEL re-adds them with expiryTimeout, after which the kernel
// stops matching them within a clock tick and its garbage collector frees
// them. Where that does not work (a table made before the sets had timeout
// support, a kernel that cannot update an element's timeout), DEL deletes
// them as before.
//
// An element that is expiring still matches until its clock tick comes;
// adding one with the same key then would keep the old one, with its
// timeout, or fail. So an ADD adds its elements as new ones (addnew.go),
// and when the kernel refuses a key as taken, it waits until no element
// with one of its keys is expiring (at most a tick: the port and the
// address went to the new container after the old one's DEL expired them)
// and adds them again. And before the old
// attachment's lease and ports go, its DEL (the in-process bridge's, or,
// when the chain's main plugin is a binary, the next DEL of the
// attachment) settles what it expired: any element that did not take the
// timeout is deleted.
//
// None of these trusts a listing of a set (Conn.GetSetElements): a listing
// that runs while other attachments come and go, and while the kernel
// frees the elements they expired, skips elements. A DEL knows its
// elements from its config and previous result, as the ADD did, and
// re-adds them with the timeout; the ADD's wait and settle look elements
// up by their keys (lookupElements). Only a DEL without a previous result
// (an ADD cut short) finds them by their comment in a listing of every
// set, as GC does.

// expiryTimeout is the timeout DEL gives an attachment's elements; the
// kernel rounds it up to one clock tick (1 to 10 ms).
var expiryTimeout = time.Millisecond // a variable for tests only

// settleLimit bounds an ADD's wait for an expiring element with one of its
// keys to go.
const settleLimit = time.Second

// attachmentSets are the sets whose elements belong to one attachment,
// made with timeout support.
var attachmentSets = []string{PortMap4, PortMapAny4, PortMap6, PortMapAny6, Forward4, Forward6}

// expiring records, per attachment (container ID and interface), the
// element comment and the sets whose elements DEL expired and that are not
// yet settled.
type expiring struct {
	mu sync.Mutex
	m  map[string]pendingExpiry
}

type pendingExpiry struct {
	comment string
	sets    []string
	// elems are the elements expired, by set, when the DEL knew them; nil
	// when it found them by their comment.
	elems map[string][]nftables.SetElement
}

func attachmentKey(containerID, ifName string) string { return containerID + "/" + ifName }

func (x *expiring) add(key string, p pendingExpiry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[string]pendingExpiry{}
	}
	if old, ok := x.m[key]; ok && old.comment == p.comment {
		for _, s := range old.sets {
			if !slices.Contains(p.sets, s) {
				p.sets = append(p.sets, s)
			}
		}
		switch {
		case old.elems == nil || p.elems == nil:
			p.elems = nil // some were found by comment: settle looks so too
		default:
			for s, els := range old.elems {
				p.elems[s] = append(p.elems[s], els...)
			}
		}
	}
	x.m[key] = p
}

func (x *expiring) has(key, comment string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.m[key]
	return ok && p.comment == comment
}

func (x *expiring) take(key string) (pendingExpiry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.m[key]
	delete(x.m, key)
	return p, ok
}

// attachDel takes the plugin's elements of the attachment out of the
// per-attachment sets in one transaction, those its config and previous
// result name (expireKnown). Without a previous result it takes out every
// element of the attachment, the other plugin's too, found by their
// comment: the first of firewall's and portmap's DEL does the work and the
// second finds the elements already expiring. None is not an error.
func (e *Exec) attachDel(c call) error {
	e.dropEarly(attachmentKey(c.containerID, c.ifc))
	n, err := loadAttachConf(c.plugin, c.stdin)
	if err != nil {
		return err
	}
	com := AttachmentComment(n.Name, c.containerID, c.ifc)
	key := attachmentKey(c.containerID, c.ifc)
	if mine, ok := ownElements(c.plugin, n, com); ok {
		expired, err := expireKnown(c.plugin, mine)
		if err != nil {
			e.log.Debug("expiring elements failed, deleting them", "plugin", c.plugin, "container", c.containerID, "error", err)
			return deleteElements(c.plugin, attachmentSets, func(s string) bool { return s == com })
		}
		if len(expired) > 0 {
			e.expiring.add(key, pendingExpiry{comment: com, sets: slices.Collect(maps.Keys(expired)), elems: expired})
		}
		return nil
	}
	if e.expiring.has(key, com) {
		return nil // expired by the other plugin's DEL, and not settled yet
	}
	sets, err := expireElements(c.plugin, com)
	if err != nil {
		e.log.Debug("expiring elements failed, deleting them", "plugin", c.plugin, "container", c.containerID, "error", err)
		return deleteElements(c.plugin, attachmentSets, func(s string) bool { return s == com })
	}
	if len(sets) > 0 {
		e.expiring.add(attachmentKey(c.containerID, c.ifc), pendingExpiry{comment: com, sets: sets})
	}
	return nil
}

// ownElements are the elements of the per-attachment sets that the
// plugin's ADD made for the attachment, from its config and previous
// result; false when the DEL has no previous result to tell them.
func ownElements(plugin string, n *attachConf, com string) (map[string][]nftables.SetElement, bool) {
	a, err := prevAttachment(plugin, n)
	if err != nil || len(a.ips) == 0 {
		return nil, false
	}
	var all map[string][]nftables.SetElement
	switch plugin {
	case "portmap":
		if all, err = portElements(n.RuntimeConfig.PortMaps, a, com); err != nil {
			return nil, false
		}
	case "firewall":
		all = firewallElements(n, a, com)
	}
	out := map[string][]nftables.SetElement{}
	for _, name := range attachmentSets {
		if len(all[name]) > 0 {
			out[name] = all[name]
		}
	}
	return out, true
}

// expireKnown re-adds the elements of mine with the expiry timeout, in
// one transaction, and returns them by set. The attachment's host ports
// and addresses are its own until its DEL is done, so no other
// attachment's element has one of their keys: one that is still there
// takes the timeout, one that is gone comes back for a tick. An error
// (a set that is gone, or a key another element holds after all) leaves
// the elements as they were.
func expireKnown(plugin string, mine map[string][]nftables.SetElement) (map[string][]nftables.SetElement, error) {
	conn, err := newConn()
	if err != nil {
		return nil, fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	upd := map[string][]nftables.SetElement{}
	for _, name := range attachmentSets {
		for _, el := range mine[name] {
			upd[name] = append(upd[name], nftables.SetElement{Key: el.Key, Val: el.Val, Comment: el.Comment, Timeout: expiryTimeout})
		}
		if len(upd[name]) > 0 {
			if err := conn.SetAddElements(sets[name], upd[name]); err != nil {
				return nil, fmt.Errorf("%s: %w", plugin, err)
			}
		}
	}
	if len(upd) == 0 {
		return nil, nil
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("%s: expire elements: %w", plugin, err)
	}
	return upd, nil
}

// keysOf returns the keys of els.
func keysOf(els []nftables.SetElement) [][]byte {
	keys := make([][]byte, len(els))
	for i, el := range els {
		keys[i] = el.Key
	}
	return keys
}

// expireElements gives every element commented com that carries no
// timeout yet the expiry timeout, in one transaction, and returns the sets
// it touched, found in listings of every per-attachment set (a DEL with no
// previous result; a listing may miss an element while the set changes,
// which GC then finds). An error leaves the elements as they were.
func expireElements(plugin, com string) ([]string, error) {
	conn, err := newConn()
	if err != nil {
		return nil, fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	var touched []string
	for _, name := range attachmentSets {
		got, err := conn.GetSetElements(sets[name])
		if err != nil {
			continue // no table or no set: nothing to expire
		}
		var upd []nftables.SetElement
		for _, el := range got {
			if el.Comment != com || el.Expires > 0 {
				continue
			}
			upd = append(upd, nftables.SetElement{Key: el.Key, Val: el.Val, Comment: el.Comment, Timeout: expiryTimeout})
		}
		if len(upd) == 0 {
			continue
		}
		if err := conn.SetAddElements(sets[name], upd); err != nil {
			return nil, fmt.Errorf("%s: %w", plugin, err)
		}
		touched = append(touched, name)
	}
	if len(touched) == 0 {
		return nil, nil
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("%s: expire elements: %w", plugin, err)
	}
	return touched, nil
}

// settle deletes the elements expired for the attachment that did not
// take the timeout (a kernel that cannot update an element's timeout keeps
// them). Nothing pending is not an error.
func (e *Exec) settle(plugin, containerID, ifName string) error {
	p, ok := e.expiring.take(attachmentKey(containerID, ifName))
	if !ok {
		return nil
	}
	if p.elems != nil {
		return settleKnown(plugin, p)
	}
	conn, err := newConn()
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	for _, name := range p.sets {
		got, err := conn.GetSetElements(sets[name])
		if err != nil {
			continue
		}
		for _, el := range got {
			if el.Comment == p.comment && el.Expires == 0 {
				return deleteElements(plugin, p.sets, func(s string) bool { return s == p.comment })
			}
		}
	}
	return nil
}

// settleKnown deletes, in one transaction, those of the elements p names
// that are still in their sets with p's comment and no timeout. Whether an
// update took the timeout is the kernel's doing, the same for every
// element of a transaction: the first of each set tells.
func settleKnown(plugin string, p pendingExpiry) error {
	del := map[string][]nftables.SetElement{}
	for name, els := range p.elems {
		first, err := lookupElements(sets[name], keysOf(els[:1]))
		if err != nil {
			return fmt.Errorf("%s: %w", plugin, err)
		}
		if el, ok := first[string(els[0].Key)]; !ok || el.Comment != p.comment || el.Expires > 0 {
			continue
		}
		got, err := lookupElements(sets[name], keysOf(els))
		if err != nil {
			return fmt.Errorf("%s: %w", plugin, err)
		}
		for _, el := range got {
			if el.Comment == p.comment && el.Expires == 0 {
				del[name] = append(del[name], nftables.SetElement{Key: el.Key})
			}
		}
	}
	if len(del) == 0 {
		return nil
	}
	conn, err := newConn()
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	for name, els := range del {
		if err := conn.SetDeleteElements(sets[name], els); err != nil {
			return fmt.Errorf("%s: %w", plugin, err)
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("%s: delete elements: %w", plugin, err)
	}
	return nil
}

// waitExpired waits until no element of the per-attachment sets with the
// key of one of elems is expiring, for at most settleLimit; one still
// there then is an error.
func waitExpired(elems map[string][]nftables.SetElement) error {
	deadline := time.Now().Add(settleLimit)
	for {
		var wait time.Duration
		for _, name := range attachmentSets {
			if len(elems[name]) == 0 {
				continue
			}
			got, err := lookupElements(sets[name], keysOf(elems[name]))
			if err != nil {
				return err
			}
			for _, el := range got {
				if el.Expires > 0 {
					wait = max(wait, el.Expires)
				}
			}
		}
		if wait == 0 {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("an element of an earlier attachment with the same key is still expiring after %s: %w", settleLimit, ErrConflict)
		}
		time.Sleep(wait)
	}
}
