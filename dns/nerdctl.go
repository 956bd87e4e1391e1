package dns

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/hosts"
)

// DefaultNerdctlRoot is nerdctl's default data root. Its hosts store is
// <root>/<address hash>/etchosts/<namespace>/<container ID>/meta.json, one
// data store per containerd address.
const DefaultNerdctlRoot = "/var/lib/nerdctl"

// nerdctlKey prefixes the entries of nerdctl's containers, which no key of
// ocinet's stores ("<namespace>/<ID>") can start with.
const nerdctlKey = "nerdctl:"

// Bounds on what is read of nerdctl's store, which the responder only
// reads: the containers (meta.json files) at most, and the size of one.
const (
	maxNerdctlContainers = 4096
	maxNerdctlMeta       = 1 << 20
)

// nerdctlMeta is the part of nerdctl's meta.json the responder reads: the
// container's ID, name and host name, and its addresses by network (CNI
// results).
type nerdctlMeta struct {
	ID       string
	Name     string
	Hostname string
	Networks map[string]*struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
}

// nerdctlRecord returns the hosts record of a nerdctl container on network,
// from its meta.json b: its addresses on the network that lie in subnets
// (a network of the same name under another CNI configuration directory,
// another bridge, gives none), its name and host name when valid. ok is
// false when it has no such address.
func nerdctlRecord(b []byte, network string, subnets []netip.Prefix) (r hosts.Record, ok bool) {
	var m nerdctlMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return r, false
	}
	res := m.Networks[network]
	if res == nil {
		return r, false
	}
	n := hosts.Network{Name: network}
	for _, ip := range res.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			continue
		}
		a := p.Addr().Unmap()
		for _, s := range subnets {
			if s.Contains(a) {
				n.IPs = append(n.IPs, a)
				break
			}
		}
	}
	if len(n.IPs) == 0 {
		return r, false
	}
	r = hosts.Record{ID: m.ID, Networks: []hosts.Network{n}}
	if hosts.ValidateName(m.Name) == nil {
		r.Name = m.Name
	}
	if hosts.ValidateName(m.Hostname) == nil {
		r.Hostname = m.Hostname
	}
	return r, true
}

// scanNerdctl reads nerdctl's hosts store again: every directory of it is
// watched (adding a watch twice is harmless) and the entries of nerdctl's
// containers on the network replace the earlier ones. A missing root reads
// as empty, and its parent is watched for it. Under mu.
func (fl *follower) scanNerdctl() {
	for k := range fl.entries {
		if strings.HasPrefix(k, nerdctlKey) {
			delete(fl.entries, k)
		}
	}
	if fl.nerdctl == "" {
		return
	}
	follow := func(dir string) bool {
		return fl.add(dir, watch{kind: watchNerdctl}) == nil
	}
	if !follow(fl.nerdctl) {
		// Not there (yet): its parent is watched for it, which tells
		// only of entries made or moved directly in it.
		if !fl.parentWatched {
			fl.parentWatched = fl.add(filepath.Dir(fl.nerdctl), watch{kind: watchNerdctl, parent: true}) == nil
		}
		return
	}
	seen := 0
	for _, store := range subdirs(fl.nerdctl) {
		if !follow(store) {
			continue
		}
		etc := filepath.Join(store, "etchosts")
		if !follow(etc) {
			continue
		}
		for _, ns := range subdirs(etc) {
			if !follow(ns) {
				continue
			}
			for _, c := range subdirs(ns) {
				if seen++; seen > maxNerdctlContainers {
					fl.log.Warn("nerdctl's hosts store holds too many containers; the rest are not answered", "at most", maxNerdctlContainers)
					return
				}
				if !follow(c) {
					continue
				}
				b, err := readBounded(filepath.Join(c, "meta.json"), maxNerdctlMeta)
				if err != nil {
					continue
				}
				r, ok := nerdctlRecord(b, fl.network, fl.subnets)
				if !ok {
					continue
				}
				if e := entryOf(&r); len(e.nets) > 0 {
					e.foreign = true
					fl.entries[nerdctlKey+c] = e
				}
			}
		}
	}
}

// subdirs lists the directories in dir (not following symbolic links).
func subdirs(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// readBounded reads the regular file at path, at most max bytes of it.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fs.ErrInvalid
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errors.New("too large")
	}
	return b, nil
}
