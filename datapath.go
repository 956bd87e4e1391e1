package ocinet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/ocinet/ocinet/inproc"
)

// Datapath says who runs a network's plugins: the plugin binaries, or
// package inproc in this process (the native datapath), which does the job
// of the standard bridge, host-local, loopback and tuning plugins without
// starting a process, and leaves every plugin or field it does not know to
// the binary.
type Datapath string

const (
	// DatapathAuto runs in process what package inproc claims and the
	// binaries for the rest. It is the default, except for a Manager with
	// its own executor ([WithExec]), whose default is DatapathPlugins.
	DatapathAuto Datapath = "auto"
	// DatapathNative runs every plugin of a network in process; a network
	// with a plugin or field that package inproc cannot run is refused,
	// with an error naming it (ErrNotSupported).
	DatapathNative Datapath = "native"
	// DatapathPlugins runs the plugin binaries only, as before the native
	// datapath existed.
	DatapathPlugins Datapath = "plugins"
)

// ParseDatapath reads "auto", "native" or "plugins".
func ParseDatapath(s string) (Datapath, error) {
	switch d := Datapath(s); d {
	case DatapathAuto, DatapathNative, DatapathPlugins:
		return d, nil
	}
	return "", fmt.Errorf("datapath %q: want auto, native or plugins: %w", s, ErrInvalid)
}

// WithDatapath sets who runs the plugins of the networks attached from now
// on (default [DatapathAuto]). The journal records, per network, which
// datapath ran ADD; DEL, CHECK and GC of an attachment go the same way,
// whatever the setting is then, so changing it never strands an
// attachment.
func WithDatapath(d Datapath) Option { return func(o *options) { o.datapath = d } }

// datapaths holds the two executors of a Manager.
type datapaths struct {
	choice  Datapath    // the setting for new attachments
	plugins invoke.Exec // the plugin binaries (or WithExec's executor)
	custom  bool        // plugins is WithExec's: no real host behind it
	opts    []inproc.Option

	once   sync.Once
	native *inproc.Exec // made on first use
	err    error

	mu     sync.Mutex
	claims map[string]chainClaims // by conflist
}

// chainClaims is what package inproc claims of a conflist.
type chainClaims struct {
	parseErr   error // the conflist does not parse
	some       bool  // at least one plugin
	forwarding bool  // portmap or firewall among them
	all        error // nil: every plugin
}

// maxClaims bounds the claims kept: a host has a few network configs.
const maxClaims = 64

// claimsOf returns what package inproc claims of conflist, worked out
// once per distinct config: every Attach asks, for each of its networks.
func (d *datapaths) claimsOf(conflist []byte) chainClaims {
	d.mu.Lock()
	c, ok := d.claims[string(conflist)]
	d.mu.Unlock()
	if ok {
		return c
	}
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		c.parseErr = err
	} else {
		for _, p := range list.Plugins {
			if inproc.ClaimsPlugin(p.Bytes) == nil {
				c.some = true
				c.forwarding = c.forwarding || p.Network.Type == "portmap" || p.Network.Type == "firewall"
			}
		}
		c.all = inproc.Claims(conflist)
	}
	d.mu.Lock()
	if d.claims == nil || len(d.claims) >= maxClaims {
		d.claims = map[string]chainClaims{}
	}
	d.claims[string(conflist)] = c
	d.mu.Unlock()
	return c
}

// nativeExec returns the in-process executor, over the plugin executor as
// its fallback.
func (d *datapaths) nativeExec() (*inproc.Exec, error) {
	d.once.Do(func() { d.native, d.err = inproc.New(d.plugins, d.opts...) })
	return d.native, d.err
}

// exec returns the executor of the datapath recorded for a network ("" is
// a record written before the native datapath: the binaries).
func (d *datapaths) exec(dp Datapath) (invoke.Exec, error) {
	if dp != DatapathNative {
		return d.plugins, nil
	}
	return d.nativeExec()
}

// choose decides the datapath of a network for a new attachment, from its
// conflist: native when the setting allows and package inproc claims
// something of the chain (everything, for DatapathNative), plugins
// otherwise. A chain whose portmap or firewall would run in process on a
// host whose firewall would drop what they accept (inproc.Preflight: an
// iptables FORWARD chain with policy DROP, firewalld) runs through the
// binaries in auto, with the reason returned, and is refused in native.
func (d *datapaths) choose(name string, conflist []byte) (dp Datapath, reason string, err error) {
	if d.choice == DatapathPlugins {
		return DatapathPlugins, "", nil
	}
	c := d.claimsOf(conflist)
	if c.parseErr != nil {
		return "", "", fmt.Errorf("network %q: %w", name, c.parseErr)
	}
	if d.choice == DatapathNative && c.all != nil {
		return "", "", fmt.Errorf("network %q cannot run in process (datapath native): %w", name, c.all)
	}
	if !c.some {
		return DatapathPlugins, "", nil
	}
	if c.forwarding && !d.custom {
		if err := inproc.Preflight(); err != nil {
			if d.choice == DatapathNative {
				return "", "", fmt.Errorf("network %q cannot run in process (datapath native): %w", name, err)
			}
			return DatapathPlugins, err.Error(), nil
		}
	}
	return DatapathNative, "", nil
}

// removeNetwork drops what the native datapath keeps per network (its
// masquerade chain) when a network is removed, whichever datapath is set
// now: an attachment made in process earlier may have made it. A Manager
// over its own executor ([WithExec]) set to the binaries has no real host
// behind it and skips this.
func (d *datapaths) removeNetwork(ctx context.Context, conflist []byte) error {
	if d.custom && d.choice == DatapathPlugins {
		return nil
	}
	x, err := d.nativeExec()
	if err != nil {
		return err
	}
	if err := x.RemoveNetwork(ctx, conflist); err != nil && !errors.Is(err, inproc.ErrNotFound) {
		return fmt.Errorf("native datapath: %w", err)
	}
	return nil
}
