package inproc

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
)

// defaultDataDir is host-local's lease directory when the config names none.
const defaultDataDir = "/var/lib/cni/networks"

// ipamConfig loads the host-local part of a bridge config with the plugin's
// own loader (ranges canonicalised, static addresses from CNI_ARGS IP=,
// args.cni.ips and the "ips" capability).
func ipamConfig(stdin []byte, envArgs string) (*allocator.IPAMConfig, error) {
	conf, _, err := allocator.LoadIPAMConfig(stdin, envArgs)
	if err != nil {
		return nil, fmt.Errorf("host-local: %v: %w", err, ErrInvalid)
	}
	if conf.Name == "" || conf.Name == "." || conf.Name == ".." || strings.ContainsAny(conf.Name, "/\x00") {
		return nil, fmt.Errorf("host-local: network name %q cannot name a lease directory: %w", conf.Name, ErrInvalid)
	}
	if conf.DataDir == "" {
		conf.DataDir = defaultDataDir
	}
	return conf, nil
}

// openStore opens host-local's store of the network, refusing a lease
// directory that is a symbolic link (leases would land wherever it points).
func openStore(conf *allocator.IPAMConfig) (*disk.Store, error) {
	dir := filepath.Join(conf.DataDir, conf.Name)
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("host-local: lease directory %s is a symbolic link: %w", dir, ErrInvalid)
	} else if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("host-local: lease directory %s is not a directory: %w", dir, ErrInvalid)
	}
	s, err := disk.New(conf.Name, conf.DataDir)
	if err != nil {
		return nil, fmt.Errorf("host-local: open lease directory %s: %w", dir, err)
	}
	return s, nil
}

// lease takes one address per range set, as host-local's ADD: the
// requested ones where given, else the next free one. On failure nothing
// stays reserved.
func lease(conf *allocator.IPAMConfig, id, ifName string) ([]*types100.IPConfig, error) {
	c := &leaseCall{kind: leaseAdd, conf: conf, id: id, ifName: ifName}
	leaseDirOf(conf).do(c)
	return c.ips, c.err
}

// leaseIn is lease's work in a batch, on its store.
func leaseIn(store *indexedStore, conf *allocator.IPAMConfig, id, ifName string) ([]*types100.IPConfig, error) {
	requested := map[string]net.IP{}
	for _, ip := range conf.IPArgs {
		requested[ip.String()] = ip
	}
	var ips []*types100.IPConfig
	var allocs []*allocator.IPAllocator
	release := func() {
		for _, a := range allocs {
			_ = a.Release(id, ifName)
		}
	}
	for idx := range conf.Ranges {
		set := &conf.Ranges[idx]
		a := allocator.NewIPAllocator(set, store, idx)
		var want net.IP
		for k, ip := range requested {
			if set.Contains(ip) {
				want = ip
				delete(requested, k)
				break
			}
		}
		ipc, err := a.Get(id, ifName, want)
		if err != nil {
			release()
			return nil, fmt.Errorf("host-local: network %q: allocate in subnet %s (range %s): %w", conf.Name, (*net.IPNet)(&(*set)[0].Subnet), set.String(), allocError(err, set, store, id, ifName, want))
		}
		allocs = append(allocs, a)
		ips = append(ips, ipc)
	}
	if len(requested) > 0 {
		release()
		var left []string
		for k := range requested {
			left = append(left, k)
		}
		return nil, fmt.Errorf("host-local: network %q: requested addresses %s are in none of its ranges: %w", conf.Name, strings.Join(left, " "), ErrInvalid)
	}
	return ips, nil
}

// allocError gives the allocator's error (plain text) the sentinel that
// fits, from the situation rather than the text: a file-system error stays
// as it is; an address the interface holds already, or a requested gateway,
// is invalid; otherwise the range set is full, or the requested address is
// taken.
func allocError(err error, set *allocator.RangeSet, store backend.Store, id, ifName string, want net.IP) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	for _, held := range store.GetByID(id, ifName) {
		if set.Contains(held) {
			return fmt.Errorf("%v (the interface holds %s already): %w", err, held, ErrInvalid)
		}
	}
	if want != nil {
		if r, rerr := set.RangeFor(want); rerr != nil || want.Equal(r.Gateway) {
			return fmt.Errorf("%v: %w", err, ErrInvalid)
		}
		return fmt.Errorf("%v (in use): %w", err, ErrConflict)
	}
	return fmt.Errorf("%v (no free address): %w", err, ErrConflict)
}

// releaseLease drops every address the container's interface holds in the
// network, as host-local's DEL; a missing lease is not an error. A lease
// directory that is a symbolic link holds nothing that ADD leased here
// (ADD refuses it), and is left alone.
func releaseLease(conf *allocator.IPAMConfig, id, ifName string) error {
	if fi, err := os.Lstat(leaseDir(conf)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	c := &leaseCall{kind: leaseRelease, conf: conf, id: id, ifName: ifName}
	leaseDirOf(conf).do(c)
	return c.err
}

// releaseIn is releaseLease's work in a batch, on its store.
func releaseIn(store *indexedStore, conf *allocator.IPAMConfig, id, ifName string) error {
	var errs []error
	for idx := range conf.Ranges {
		if err := allocator.NewIPAllocator(&conf.Ranges[idx], store, idx).Release(id, ifName); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("host-local: network %q: release: %w", conf.Name, errors.Join(errs...))
	}
	return nil
}

// leased returns the addresses the container's interface holds in the
// network (host-local's GetByID), as its CHECK and the conntrack cleanup
// need them.
func leased(conf *allocator.IPAMConfig, id, ifName string) ([]net.IP, error) {
	c := &leaseCall{kind: leaseFind, conf: conf, id: id, ifName: ifName}
	leaseDirOf(conf).do(c)
	return c.held, c.err
}

// leaseHeld reports whether the container's interface holds an address,
// as host-local's CHECK.
func leaseHeld(conf *allocator.IPAMConfig, id, ifName string) (bool, error) {
	ips, err := leased(conf, id, ifName)
	return len(ips) > 0, err
}

// leaseDir is the network's lease directory.
func leaseDir(conf *allocator.IPAMConfig) string {
	return filepath.Join(conf.DataDir, conf.Name)
}
