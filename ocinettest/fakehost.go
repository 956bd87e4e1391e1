package ocinettest

import (
	"errors"

	"github.com/ocinet/ocinet/internal/host"
)

// fakeHost is the host of an [Env]: namespaces are the plain files that
// Env.NetNS makes and check accepts, nothing more. DEL gets the recorded
// path while check accepts it and no path once it refuses it (no
// placeholder namespace is made), no prefix is in use on the host, and
// bridges and lease directories are left alone.
type fakeHost struct{ check func(path string) error }

var _ host.Host = fakeHost{}

func (h fakeHost) CheckNS(path string) error { return h.check(path) }

// NamespaceID identifies the namespace file, as the real host does.
func (fakeHost) NamespaceID(path string) string { return host.FileID(path) }

// LinkNames fails: a fake namespace has no links to list, and DEL then
// runs in it as recorded.
func (fakeHost) LinkNames(string) (map[string]bool, error) { return nil, errNoLinks }

func (fakeHost) Prefixes(string) ([]host.Prefix, error)              { return nil, nil }
func (fakeHost) DeleteBridge(string) error                           { return nil }
func (fakeHost) MakePlaceholder(string, []host.Link) (string, error) { return "", nil }
func (fakeHost) RemoveNamespace(string) error                        { return nil }
func (fakeHost) RemoveLeaseDir(string) error                         { return nil }

var errNoLinks = errors.New("a fake namespace has no links")

// LinkExists says every parent exists: a fake host has whatever device a
// macvlan or ipvlan network names.
func (fakeHost) LinkExists(string) (bool, error) { return true, nil }

// RemoveIsolation removes nothing: a fake host has no firewall.
func (fakeHost) RemoveIsolation(string) (int, []string, error) { return 0, nil, nil }
