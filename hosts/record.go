package hosts

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
)

// Network is one network a container is attached to.
type Network struct {
	Name    string       // network name, e.g. "bridge"; [A-Za-z0-9][A-Za-z0-9_.-]{0,127}
	IPs     []netip.Addr // the container's addresses on it, without zones
	Gateway netip.Addr   // the network's gateway; may be zero
	// PeersByDNS says that peers on this network are found through the
	// network's DNS responder alone: they are not written into hosts
	// files, so a join writes one file whatever the number of peers.
	PeersByDNS bool
}

// Record is what the store keeps about one container.
type Record struct {
	// ID is the container ID within the store's scope:
	// [A-Za-z0-9][A-Za-z0-9_.-]{0,75}.
	ID string
	// Name is the container's name, empty for none. See ValidateName.
	Name string
	// Hostname is the container's host name, empty for none. It may be a
	// dotted, FQDN-like name. See ValidateName.
	Hostname string
	// Networks are the container's networks in order; the first one is the
	// one whose gateway host-gateway stands for.
	Networks []Network
	// ExtraHosts are the --add-host entries, written in this order.
	ExtraHosts []ExtraHost
	// Aliases are more names of the container on each of its networks
	// (--network-alias), answered by the networks' DNS responders and not
	// written into hosts files. See ValidateName; at most MaxAliases.
	Aliases []string
}

// validate checks every field of r. Errors wrap ErrInvalid.
func (r *Record) validate() error {
	if err := validateID(r.ID); err != nil {
		return err
	}
	if r.Name != "" {
		if err := ValidateName(r.Name); err != nil {
			return fmt.Errorf("container name: %w", err)
		}
	}
	if r.Hostname != "" {
		if err := ValidateName(r.Hostname); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	seen := make(map[string]bool, len(r.Networks))
	for _, n := range r.Networks {
		if err := validateNetworkName(n.Name); err != nil {
			return err
		}
		if seen[n.Name] {
			return fmt.Errorf("networks: network %q is listed twice: %w", n.Name, ErrInvalid)
		}
		seen[n.Name] = true
		for _, ip := range n.IPs {
			if !ip.IsValid() || ip.IsUnspecified() || ip.Zone() != "" {
				return fmt.Errorf("address %q on network %q: want a specified address without a zone: %w", ip.String(), n.Name, ErrInvalid)
			}
		}
		if n.Gateway.IsValid() && (n.Gateway.IsUnspecified() || n.Gateway.Zone() != "") {
			return fmt.Errorf("gateway %q of network %q: want a specified address without a zone: %w", n.Gateway.String(), n.Name, ErrInvalid)
		}
	}
	if err := validateAliases(r.Aliases); err != nil {
		return err
	}
	for _, e := range r.ExtraHosts {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// checkHostGateway refuses an extra host that stands for the gateway of
// r's first network when there is no such gateway, naming the network, as
// podman and nerdctl do: dropping the entry would leave the name
// unresolved without a word. It is a rule for new records (Join), not for
// reading old ones back, whose unresolvable entries are left out.
func (r *Record) checkHostGateway() error {
	for _, e := range r.ExtraHosts {
		if !e.Gateway {
			continue
		}
		switch {
		case len(r.Networks) == 0:
			return fmt.Errorf("extra host %q: %s needs a network with a gateway, and the container has no network: %w", e.String(), HostGateway, ErrInvalid)
		case !r.Networks[0].Gateway.IsValid():
			return fmt.Errorf("extra host %q: network %q has no gateway for %s to stand for: %w", e.String(), r.Networks[0].Name, HostGateway, ErrInvalid)
		}
	}
	return nil
}

// network returns r's network called name, or nil.
func (r *Record) network(name string) *Network {
	for i := range r.Networks {
		if r.Networks[i].Name == name {
			return &r.Networks[i]
		}
	}
	return nil
}

// networkNames returns the names of r's networks, in order.
func (r *Record) networkNames() []string {
	names := make([]string, len(r.Networks))
	for i, n := range r.Networks {
		names[i] = n.Name
	}
	return names
}

// recordVersion is the version of the on-disk record format.
const recordVersion = 1

// The on-disk form of a Record. It is separate from Record so that the file
// format has its own names and version, whatever happens to the Go type.
type diskRecord struct {
	Version    int             `json:"version"`
	ID         string          `json:"id"`
	Name       string          `json:"name,omitempty"`
	Hostname   string          `json:"hostname,omitempty"`
	Networks   []diskNetwork   `json:"networks,omitempty"`
	ExtraHosts []diskExtraHost `json:"extraHosts,omitempty"`
	Aliases    []string        `json:"aliases,omitempty"`
}

type diskNetwork struct {
	Name       string       `json:"name"`
	IPs        []netip.Addr `json:"ips,omitempty"`
	Gateway    netip.Addr   `json:"gateway,omitzero"`
	PeersByDNS bool         `json:"peersByDNS,omitempty"`
}

type diskExtraHost struct {
	Name    string     `json:"name"`
	IP      netip.Addr `json:"ip,omitzero"`
	Gateway bool       `json:"gateway,omitempty"`
}

func encodeRecord(r *Record) ([]byte, error) {
	d := diskRecord{Version: recordVersion, ID: r.ID, Name: r.Name, Hostname: r.Hostname, Aliases: r.Aliases}
	for _, n := range r.Networks {
		d.Networks = append(d.Networks, diskNetwork{Name: n.Name, IPs: n.IPs, Gateway: n.Gateway, PeersByDNS: n.PeersByDNS})
	}
	for _, e := range r.ExtraHosts {
		d.ExtraHosts = append(d.ExtraHosts, diskExtraHost(e))
	}
	b, err := json.Marshal(&d)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeRecord parses a record file and checks it as strictly as Join
// checks its input, so that a damaged or hand-edited file cannot put
// arbitrary text into a hosts file. A bad file is not ErrInvalid (that is for
// callers' input); it is reported as a damaged store.
func decodeRecord(b []byte, id string) (Record, error) {
	var d diskRecord
	if err := json.Unmarshal(b, &d); err != nil {
		return Record{}, fmt.Errorf("damaged record: %v", err)
	}
	if d.Version != recordVersion {
		return Record{}, fmt.Errorf("record has format version %d, this library reads version %d", d.Version, recordVersion)
	}
	if d.ID != id {
		return Record{}, fmt.Errorf("damaged record: it names container %q", d.ID)
	}
	r := Record{ID: d.ID, Name: d.Name, Hostname: d.Hostname, Aliases: d.Aliases}
	for _, n := range d.Networks {
		r.Networks = append(r.Networks, Network{Name: n.Name, IPs: n.IPs, Gateway: n.Gateway, PeersByDNS: n.PeersByDNS})
	}
	for _, e := range d.ExtraHosts {
		r.ExtraHosts = append(r.ExtraHosts, ExtraHost(e))
	}
	if err := r.validate(); err != nil {
		return Record{}, fmt.Errorf("damaged record: %v", err)
	}
	return r, nil
}

// clone returns a deep copy of r, so that callers cannot change the store's
// cached copy or the store theirs.
func (r Record) clone() Record {
	r.Networks = slices.Clone(r.Networks)
	for i := range r.Networks {
		r.Networks[i].IPs = slices.Clone(r.Networks[i].IPs)
	}
	r.ExtraHosts = slices.Clone(r.ExtraHosts)
	r.Aliases = slices.Clone(r.Aliases)
	return r
}
