// Package minirt is the network step of a small container runtime that
// embeds ocinet, with the unit test (minirt_test.go) that checks it
// through package ocinettest: plugins fail, the runtime crashes half way,
// two containers want the same port. The test needs no root:
//
//	go test ./examples/runtime-unittest
package minirt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/portmap"
)

// Runtime runs containers; Net gives them their network, and Dir holds
// one file per running container.
type Runtime struct {
	Net *ocinet.Manager
	Dir string
}

// Container is what Start needs to know of a container.
type Container struct {
	ID    string
	NetNS string // its network namespace
	Ports []string
}

// Start attaches the container and records it. If recording fails, the
// attachment is undone, so a failed Start leaves nothing behind.
func (r *Runtime) Start(ctx context.Context, c Container) (netip.Addr, error) {
	req := ocinet.AttachRequest{ID: c.ID, NetNS: c.NetNS}
	for _, s := range c.Ports {
		p, err := portmap.Parse(s)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("start %s: %w", c.ID, err)
		}
		req.Ports = append(req.Ports, p)
	}
	a, err := r.Net.Attach(ctx, req)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("start %s: %w", c.ID, err)
	}
	addr := a.Interfaces[0].IPs[0].Addr()
	if err := os.WriteFile(filepath.Join(r.Dir, c.ID), []byte(addr.String()), 0o600); err != nil {
		return netip.Addr{}, errors.Join(fmt.Errorf("start %s: %w", c.ID, err), r.Net.Detach(ctx, c.ID))
	}
	return addr, nil
}

// Stop detaches the container and forgets it.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	if err := r.Net.Detach(ctx, id); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	if err := os.Remove(filepath.Join(r.Dir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

// Recover runs when the runtime starts: it releases the network of every
// container it has no record of (one whose Start a crash cut off, or that
// stopped while the runtime was down).
func (r *Runtime) Recover(ctx context.Context) error {
	known := func(id string) bool {
		_, err := os.Stat(filepath.Join(r.Dir, id))
		return err == nil
	}
	_, err := r.Net.GC(ctx, known, ocinet.GCOptions{})
	return err
}
