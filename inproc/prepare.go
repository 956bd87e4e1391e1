package inproc

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/nftables"
)

// The elements of a chain's portmap and firewall are added by its bridge,
// early: their ADDs only put the container's address and ports into the
// table's sets, and the bridge knows the address once the lease is held,
// while the veth pair (about a millisecond) is still being made. So,
// under WithChain, the bridge adds them in one transaction beside the
// veth pair, and the two ADDs then find their elements made: each
// computes its elements from its own config and previous result, as it
// always does, and when they are those made early it has nothing left to
// do. When they are not (a chain the early work read otherwise), the early
// ones are deleted and the ADD does its own work. Nothing depends on the
// early work but speed.
//
// The elements are the container's, made after the gate like the lease,
// and a DEL finds them as it finds the ADDs' (by the previous result, or
// by their comment): an attachment whose bridge ADD failed after them has
// them deleted before its lease goes; a DEL waits for the early work of
// its attachment before it looks.

type chainKey struct{}

// chainCall is what WithChain puts in a context.
type chainCall struct {
	conflist []byte
	capArgs  map[string]any
}

// WithChain returns a context under which the in-process bridge's ADD
// knows the chain it runs in (the conflist as the CNI library parsed it,
// and the runtime's capability arguments), so that it adds the elements
// of the chain's in-process portmap and firewall itself, as soon as the
// container's address is leased; their ADDs then find them made. Only a
// chain of the bridge followed by in-process portmap, firewall and tuning
// is prepared so; for any other the context changes nothing.
func WithChain(ctx context.Context, conflist []byte, capabilityArgs map[string]any) context.Context {
	return context.WithValue(ctx, chainKey{}, &chainCall{conflist: conflist, capArgs: capabilityArgs})
}

// chainPlan is what a conflist's portmap and firewall would be given,
// less the previous result; nil parts are not in the chain.
type chainPlan struct {
	portmap  *attachConf
	firewall *attachConf
}

// chainPlans caches the plans by conflist (nil: not prepared); a
// Manager's networks are few, and the cache keeps maxChainPlans at most.
var chainPlans struct {
	mu sync.Mutex
	m  map[string]*chainPlan
}

const maxChainPlans = 64

// planChain returns what the bridge adds early for the chain under ctx,
// or nil.
func planChain(ctx context.Context) (*chainPlan, *chainCall) {
	cc, _ := ctx.Value(chainKey{}).(*chainCall)
	if cc == nil {
		return nil, nil
	}
	chainPlans.mu.Lock()
	p, ok := chainPlans.m[string(cc.conflist)]
	chainPlans.mu.Unlock()
	if ok {
		return p, cc
	}
	p = readChainPlan(cc.conflist)
	chainPlans.mu.Lock()
	if chainPlans.m == nil {
		chainPlans.m = map[string]*chainPlan{}
	}
	if len(chainPlans.m) < maxChainPlans {
		chainPlans.m[string(cc.conflist)] = p
	}
	chainPlans.mu.Unlock()
	return p, cc
}

// readChainPlan reads the plan of a conflist: the bridge first, then
// only portmap, firewall (each once at most, at least one of them) and
// tuning, each in process.
func readChainPlan(conflist []byte) *chainPlan {
	var list struct {
		Name       string            `json:"name"`
		CNIVersion string            `json:"cniVersion"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if json.Unmarshal(conflist, &list) != nil || len(list.Plugins) < 2 {
		return nil
	}
	p := &chainPlan{}
	for i, raw := range list.Plugins {
		var head struct {
			Type         string          `json:"type"`
			Capabilities map[string]bool `json:"capabilities"`
		}
		if json.Unmarshal(raw, &head) != nil || claim(head.Type, raw, "") != nil {
			return nil
		}
		if (i == 0) != (head.Type == "bridge") {
			return nil
		}
		if head.Type != "portmap" && head.Type != "firewall" {
			continue
		}
		n := &attachConf{}
		if json.Unmarshal(raw, n) != nil {
			return nil
		}
		n.Name, n.CNIVersion = list.Name, list.CNIVersion
		if head.Type == "portmap" {
			if p.portmap != nil || !head.Capabilities["portMappings"] {
				return nil
			}
			p.portmap = n
		} else {
			if p.firewall != nil {
				return nil
			}
			p.firewall = n
		}
	}
	if p.portmap == nil && p.firewall == nil {
		return nil
	}
	return p
}

// early is the early work of one attachment.
type early struct {
	done chan struct{}
	// Set before done is closed.
	err      error                            // the transaction failed: nothing of it was made
	portmap  map[string][]nftables.SetElement // nil: not made early
	subnets  []net.IPNet
	firewall map[string][]nftables.SetElement // nil: not made early
	started  time.Time
}

// earlyWork is the early work by attachment key, until the plugins' ADDs
// take it or a DEL drops it.
type earlyWork struct {
	mu sync.Mutex
	m  map[string]*early
}

// earlyFor bounds how long an entry nobody took stays.
const earlyFor = time.Minute

// prepare starts the early work of the attachment c, whose bridge n has
// leased ips, when the chain under ctx is one that is prepared.
func (e *Exec) prepare(ctx context.Context, c call, n *bridgeConf, ips []*types100.IPConfig) {
	plan, cc := planChain(ctx)
	if plan == nil {
		return
	}
	a := &attachment{bridge: n.BrName}
	for _, ipc := range ips {
		a.add(ipc.Address)
	}
	w := &early{done: make(chan struct{}), started: time.Now()}
	key := attachmentKey(c.containerID, c.ifc)
	e.early.mu.Lock()
	if e.early.m == nil {
		e.early.m = map[string]*early{}
	}
	for k, old := range e.early.m {
		if time.Since(old.started) > earlyFor {
			delete(e.early.m, k)
		}
	}
	e.early.m[key] = w
	e.early.mu.Unlock()
	go func() {
		defer close(w.done)
		w.err = e.addEarly(w, plan, cc, a, c)
	}()
}

// addEarly computes the elements the chain's portmap and firewall would
// add and adds them in one transaction, as their ADDs would.
func (e *Exec) addEarly(w *early, plan *chainPlan, cc *chainCall, a *attachment, c call) error {
	all := map[string][]nftables.SetElement{}
	if plan.portmap != nil {
		maps, err := capabilityPortMaps(plan.portmap, cc.capArgs)
		if err != nil {
			return err
		}
		elems, err := portElements(maps, a, AttachmentComment(plan.portmap.Name, c.containerID, c.ifc))
		if err != nil {
			return err
		}
		w.portmap = elems
		if len(elems) > 0 {
			w.subnets = a.nets
		}
		for s, els := range elems {
			all[s] = append(all[s], els...)
		}
	}
	if plan.firewall != nil && (plan.firewall.IngressPolicy != "same-bridge" || a.bridge != "") && Preflight() == nil {
		w.firewall = firewallElements(plan.firewall, a, AttachmentComment(plan.firewall.Name, c.containerID, c.ifc))
		for s, els := range w.firewall {
			all[s] = append(all[s], els...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	if err := e.ensureStatic(); err != nil {
		return err
	}
	if len(w.subnets) > 0 && a.ip4() != nil {
		if err := writeSysctls([]sysctl{{path: "net/ipv4/conf/" + a.bridge + "/route_localnet", value: "1", onlyIfNot: "1", mustSucceed: true}}); err != nil {
			return err
		}
	}
	return addAttachmentElements(w.subnets, a.bridge, all)
}

// capabilityPortMaps returns the port mappings the CNI library would hand
// the portmap config n: the runtime's portMappings when it has any (the
// library then replaces the config's runtimeConfig), else the config's
// own.
func capabilityPortMaps(n *attachConf, capArgs map[string]any) ([]PortMapping, error) {
	v, ok := capArgs["portMappings"]
	if !ok {
		return n.RuntimeConfig.PortMaps, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var maps []PortMapping
	if err := json.Unmarshal(b, &maps); err != nil {
		return nil, fmt.Errorf("portMappings: %w", err)
	}
	return maps, nil
}

// takeEarly waits for the early work of the attachment and returns the
// part of plugin ("portmap" or "firewall"), with the subnets made for
// portmap, when it was made; the part is then the plugin's, and the entry
// goes once both parts are taken.
func (e *Exec) takeEarly(key, plugin string) (part map[string][]nftables.SetElement, subnets []net.IPNet, made bool) {
	e.early.mu.Lock()
	w := e.early.m[key]
	e.early.mu.Unlock()
	if w == nil {
		return nil, nil, false
	}
	<-w.done
	e.early.mu.Lock()
	defer e.early.mu.Unlock()
	if e.early.m[key] != w {
		return nil, nil, false // a DEL dropped it meanwhile
	}
	switch plugin {
	case "portmap":
		part, subnets, w.portmap = w.portmap, w.subnets, nil
	case "firewall":
		part, w.firewall = w.firewall, nil
	}
	if w.err != nil || (w.portmap == nil && w.firewall == nil) {
		delete(e.early.m, key)
	}
	return part, subnets, w.err == nil && part != nil
}

// sameElements reports whether two element maps hold the same elements.
func sameElements(a, b map[string][]nftables.SetElement) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !reflect.DeepEqual(v, b[k]) {
			return false
		}
	}
	return true
}

// undoEarly deletes elements made early that the plugin's ADD did not
// want, in one transaction (the network's subnets stay: they are every
// container's).
func undoEarly(plugin string, elems map[string][]nftables.SetElement) error {
	conn, err := newConn()
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	for _, name := range StaticSets {
		if len(elems[name]) == 0 || name == IsolatedSet || name == SameBridgeSet {
			continue
		}
		keys := make([]nftables.SetElement, 0, len(elems[name]))
		for _, el := range elems[name] {
			keys = append(keys, nftables.SetElement{Key: el.Key})
		}
		if err := conn.SetDeleteElements(sets[name], keys); err != nil {
			return fmt.Errorf("%s: %w", plugin, err)
		}
	}
	if err := conn.Flush(); err != nil && !isNotExist(err) {
		return fmt.Errorf("%s: delete the elements made early: %w", plugin, err)
	}
	return nil
}

// dropEarly waits for the early work of the attachment and forgets it: a
// DEL, which then finds the elements it made as it finds the ADDs'.
func (e *Exec) dropEarly(key string) {
	e.early.mu.Lock()
	w := e.early.m[key]
	e.early.mu.Unlock()
	if w == nil {
		return
	}
	<-w.done
	e.early.mu.Lock()
	if e.early.m[key] == w {
		delete(e.early.m, key)
	}
	e.early.mu.Unlock()
}

// abandonEarly is dropEarly for a bridge ADD that failed after its lease:
// the elements made early are deleted before the lease goes.
func (e *Exec) abandonEarly(key string) error {
	e.early.mu.Lock()
	w := e.early.m[key]
	e.early.mu.Unlock()
	if w == nil {
		return nil
	}
	<-w.done
	e.early.mu.Lock()
	if e.early.m[key] == w {
		delete(e.early.m, key)
	}
	parts := []map[string][]nftables.SetElement{w.portmap, w.firewall}
	e.early.mu.Unlock()
	if w.err != nil {
		return nil
	}
	all := map[string][]nftables.SetElement{}
	for _, part := range parts {
		for s, els := range part {
			all[s] = append(all[s], els...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return undoEarly("bridge", all)
}
