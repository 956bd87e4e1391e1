package inproc

import (
	"fmt"
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
// Whatever was expired is settled before the attachment's lease and ports
// can go to another container: the in-process bridge's DEL (or, when the
// chain's main plugin is a binary, the next DEL of the attachment) waits
// until none of its elements is listed any more, and deletes any that did
// not take the timeout.

// expiryTimeout is the timeout DEL gives an attachment's elements; the
// kernel rounds it up to one clock tick (1 to 10 ms).
const expiryTimeout = time.Millisecond

// settleLimit bounds the wait for expired elements to stop being listed.
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

// attachDel takes the attachment's elements out of every per-attachment
// set, the other plugin's too, in one transaction: the first of
// firewall's and portmap's DEL (firewall, in the default chain's reverse
// order) does the work and the second finds the elements already expiring.
// None is not an error.
func (e *Exec) attachDel(c call) error {
	n, err := loadAttachConf(c.plugin, c.stdin)
	if err != nil {
		return err
	}
	com := AttachmentComment(n.Name, c.containerID, c.ifc)
	if e.expiring.has(attachmentKey(c.containerID, c.ifc), com) {
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

// expireElements gives every element commented com that carries no
// timeout yet the expiry timeout, in one transaction, and returns the sets
// it touched. An error leaves the elements as they were.
func expireElements(plugin, com string) ([]string, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("%s: nftables: %w", plugin, err)
	}
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

// settle waits until the elements expired for the attachment are no longer
// listed; any that still carry no timeout are deleted. Nothing pending is
// not an error.
func (e *Exec) settle(plugin, containerID, ifName string) error {
	p, ok := e.expiring.take(attachmentKey(containerID, ifName))
	if !ok {
		return nil
	}
	match := func(s string) bool { return s == p.comment }
	deadline := time.Now().Add(settleLimit)
	for {
		conn, err := nftables.New()
		if err != nil {
			return fmt.Errorf("%s: nftables: %w", plugin, err)
		}
		var wait time.Duration
		for _, name := range p.sets {
			got, err := conn.GetSetElements(sets[name])
			if err != nil {
				continue
			}
			for _, el := range got {
				if !match(el.Comment) {
					continue
				}
				if el.Expires == 0 {
					// The timeout did not take: delete them all.
					return deleteElements(plugin, p.sets, match)
				}
				wait = max(wait, el.Expires)
			}
		}
		if wait == 0 {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return deleteElements(plugin, p.sets, match)
		}
		time.Sleep(wait)
	}
}
