package ocinet

import (
	"maps"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// confCache keeps the networks parsed from conflist files, so that the
// conf dir's listing (every Attach looks its networks up among all of
// them) reads and parses only the files that changed: an entry holds while
// the file's device, inode, size and modification time are the same. A
// file modified less than racyFor before it was read is read again each
// time, as file times tick coarsely and a rewrite of the same size within
// one tick would look unchanged.
var confCache = struct {
	sync.Mutex
	m map[string]cachedNetwork
}{m: map[string]cachedNetwork{}}

type cachedNetwork struct {
	key fileKey
	n   *Network
}

type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64
	ns       string
}

const (
	racyFor        = 2 * time.Second
	maxCachedFiles = 1024
)

// readNetworkCached is readNetwork through confCache; the Network it
// returns is the caller's own.
func readNetworkCached(file, ns string) (*Network, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return readNetwork(file, ns)
	}
	key := fileKey{dev: uint64(st.Dev), ino: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano(), ns: ns}
	confCache.Lock()
	e, hit := confCache.m[file]
	confCache.Unlock()
	if hit && e.key == key {
		return e.n.clone(), nil
	}
	n, err := readNetwork(file, ns)
	if err != nil {
		return nil, err
	}
	if time.Since(fi.ModTime()) > racyFor {
		confCache.Lock()
		if len(confCache.m) >= maxCachedFiles {
			clear(confCache.m)
		}
		confCache.m[file] = cachedNetwork{key: key, n: n.clone()}
		confCache.Unlock()
	}
	return n, nil
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
