package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/errdefs"

	"github.com/ocinet/ocinet"
)

// inspectView is what `ocictl inspect NAME` prints: the container's
// network as the journal records it.
type inspectView struct {
	Name string `json:"name"`
	// NetworkMode is none, host or container:NAME for a container on no
	// network of its own, which has no attachment; empty otherwise.
	NetworkMode string             `json:"networkMode,omitempty"`
	ID          string             `json:"attachmentID"`
	NetNS       string             `json:"netns"`
	Complete    bool               `json:"complete"`
	Interfaces  []inspectInterface `json:"interfaces"`
	Ports       []string           `json:"ports"`
}

type inspectInterface struct {
	Network  string   `json:"network"`
	Name     string   `json:"name"`
	MAC      string   `json:"mac,omitempty"`
	IPs      []string `json:"ips"`
	Gateways []string `json:"gateways,omitempty"`
	// Datapath is who ran the network's plugins: "native" (in process,
	// the binaries for what it does not claim) or "plugins".
	Datapath ocinet.Datapath `json:"datapath"`
	// DatapathReason says why a network that could run in process ran
	// through the binaries.
	DatapathReason string `json:"datapathReason,omitempty"`
}

func cmdInspect(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: ocictl inspect NAME...")
	}
	mgr, err := g.hookConfig.Manager()
	if err != nil {
		return err
	}
	var out []inspectView
	for _, name := range args {
		a, err := mgr.Get(g.hookConfig.AttachmentID(name))
		if errors.Is(err, ocinet.ErrNotFound) {
			mode, merr := networkMode(ctx, g, name)
			if merr != nil {
				return merr
			}
			if mode == "" {
				return fmt.Errorf("container %s has no network attachment", name)
			}
			out = append(out, inspectView{Name: name, NetworkMode: mode, Interfaces: []inspectInterface{}, Ports: []string{}})
			continue
		}
		if err != nil {
			return err
		}
		v := inspectView{Name: name, ID: a.ID, NetNS: a.NetNS, Complete: a.Complete, Interfaces: []inspectInterface{}, Ports: []string{}}
		for _, i := range a.Interfaces {
			ii := inspectInterface{Network: i.Network, Name: i.Name, MAC: i.MAC, IPs: []string{}, Datapath: i.Datapath, DatapathReason: i.DatapathReason}
			for _, p := range i.IPs {
				ii.IPs = append(ii.IPs, p.String())
			}
			for _, gw := range i.Gateways {
				ii.Gateways = append(ii.Gateways, gw.String())
			}
			v.Interfaces = append(v.Interfaces, ii)
		}
		for _, p := range a.Ports {
			v.Ports = append(v.Ports, portLine(p))
		}
		out = append(out, v)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// networkMode returns the --network mode that container name was made
// with when it is on no network of its own, "" otherwise (or when
// containerd does not know it).
func networkMode(ctx context.Context, g *globals, name string) (string, error) {
	client, ctx, err := connect(ctx, g)
	if err != nil {
		return "", err
	}
	defer client.Close()
	c, err := client.LoadContainer(ctx, name)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return "", err
	}
	return labels[labelNetwork], nil
}
