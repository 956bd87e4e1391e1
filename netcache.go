package ocinet

import (
	"maps"
	"slices"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/ocinet/ocinet/internal/fsutil"
)

// confCache keeps the networks parsed from conflist files (by path and
// namespace directory), so that the conf dir's listing (every Attach looks
// its networks up among all of them) parses only the files that changed
// (fsutil.StatCache).
var confCache fsutil.StatCache[*Network]

// readNetworkCached is readNetwork through confCache; the Network it
// returns is the caller's own.
func readNetworkCached(file, ns string) (*Network, error) {
	n, err := confCache.Get(file, func() (*Network, error) { return readNetwork(file, ns) }, (*Network).clone)
	if err == nil && n.Namespace != ns {
		// The same file seen as another namespace's (a path given two
		// ways): read it as asked.
		return readNetwork(file, ns)
	}
	return n, err
}

// clone returns a copy of n that shares nothing mutable with it.
func (n *Network) clone() *Network {
	c := *n
	c.Bytes = slices.Clone(n.Bytes)
	c.Plugins = slices.Clone(n.Plugins)
	c.Subnets = slices.Clone(n.Subnets)
	c.Gateways = slices.Clone(n.Gateways)
	c.Labels = maps.Clone(n.Labels)
	c.caps = maps.Clone(n.caps)
	return &c
}

// parsedLists keeps conflists as the CNI library parsed them, by their
// bytes: every Attach and Detach hands each network's recorded conflist to
// the library's chain runner, and parsing it is much of what the library
// costs. The runner only reads a list (it builds each plugin's config
// anew), so a list is shared: nobody may change one.
var parsedLists struct {
	mu sync.Mutex
	m  map[string]*libcni.NetworkConfigList
}

// maxParsedLists bounds the lists kept: a host has a few network configs.
const maxParsedLists = 64

// parsedConfList returns conflist as libcni.ConfListFromBytes parses it, from
// parsedLists when it was parsed before. The list is shared: read it only.
func parsedConfList(conflist []byte) (*libcni.NetworkConfigList, error) {
	parsedLists.mu.Lock()
	l, ok := parsedLists.m[string(conflist)]
	parsedLists.mu.Unlock()
	if ok {
		return l, nil
	}
	l, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return nil, err
	}
	parsedLists.mu.Lock()
	if parsedLists.m == nil || len(parsedLists.m) >= maxParsedLists {
		parsedLists.m = map[string]*libcni.NetworkConfigList{}
	}
	parsedLists.m[string(conflist)] = l
	parsedLists.mu.Unlock()
	return l, nil
}
