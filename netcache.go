package ocinet

import (
	"maps"
	"slices"

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
