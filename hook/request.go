package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// Annotation is the key of the OCI annotation that carries a container's
// request (a [sandbox.Request], as versioned JSON). The version is part of
// the key and of the value.
const Annotation = "io.ocinet.network.v1"

// RequestVersion is the version of the annotation's format.
const RequestVersion = 1

// maxRequestSize bounds the annotation the hook will read.
const maxRequestSize = 64 << 10

// wireRequest is the annotation's JSON. Its fields and their names are the
// format: specs written by every earlier version carry them, so they only
// ever gain optional fields.
type wireRequest struct {
	Version    int               `json:"version"`
	Mode       string            `json:"mode,omitempty"`
	Networks   []string          `json:"networks,omitempty"`
	Ports      []portmap.Mapping `json:"ports,omitempty"`
	Name       string            `json:"name,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Aliases    []string          `json:"aliases,omitempty"`
	ExtraHosts []string          `json:"extraHosts,omitempty"`
	DNSServers []string          `json:"dnsServers,omitempty"`
	DNSSearch  []string          `json:"dnsSearch,omitempty"`
	DNSOptions []string          `json:"dnsOptions,omitempty"`
	Static     []wireStatic      `json:"static,omitempty"`
}

type wireStatic struct {
	Network string   `json:"network"`
	IPs     []string `json:"ips,omitempty"`
	MAC     string   `json:"mac,omitempty"`
}

// EncodeRequest returns the annotation value that carries r. r is
// validated first; an invalid request is refused with an error wrapping
// ErrInvalid.
func EncodeRequest(r sandbox.Request) (string, error) {
	if err := r.Validate(); err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	w := wireRequest{Version: RequestVersion, Mode: string(r.Mode), Networks: r.Networks, Ports: r.Ports, Name: r.Name, Hostname: r.Hostname, Aliases: r.Aliases}
	for _, e := range r.ExtraHosts {
		w.ExtraHosts = append(w.ExtraHosts, e.String())
	}
	for _, a := range r.DNS.Servers {
		w.DNSServers = append(w.DNSServers, a.String())
	}
	w.DNSSearch, w.DNSOptions = r.DNS.Search, r.DNS.Options
	for _, st := range r.Static {
		ws := wireStatic{Network: st.Network}
		for _, a := range st.IPs {
			ws.IPs = append(ws.IPs, a.String())
		}
		if st.MAC != nil {
			ws.MAC = st.MAC.String()
		}
		w.Static = append(w.Static, ws)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return "", err
	}
	if len(b) > maxRequestSize {
		return "", fmt.Errorf("request: larger than %d bytes as an annotation: %w", maxRequestSize, ErrInvalid)
	}
	return string(b), nil
}

// DecodeRequest decodes and validates a request annotation. Unknown fields,
// trailing data, oversized values and invalid names, ports or addresses are
// refused with an error wrapping ErrInvalid.
func DecodeRequest(s string) (sandbox.Request, error) {
	r, err := decodeRequest(s)
	if err != nil {
		return sandbox.Request{}, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	return r, nil
}

func decodeRequest(s string) (sandbox.Request, error) {
	var r sandbox.Request
	if len(s) > maxRequestSize {
		return r, fmt.Errorf("larger than %d bytes: %w", maxRequestSize, ErrInvalid)
	}
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return r, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, fmt.Errorf("trailing data: %w", ErrInvalid)
	}
	if w.Version != RequestVersion {
		return r, fmt.Errorf("version %d, want %d: %w", w.Version, RequestVersion, ErrInvalid)
	}
	if len(w.ExtraHosts) > 256 || len(w.DNSServers) > 16 || len(w.Static) > 16 {
		return r, fmt.Errorf("too many entries: %w", ErrInvalid)
	}
	r = sandbox.Request{Mode: sandbox.Mode(w.Mode), Networks: w.Networks, Ports: w.Ports, Name: w.Name, Hostname: w.Hostname, Aliases: w.Aliases}
	for _, e := range w.ExtraHosts {
		h, err := hosts.ParseExtraHost(e)
		if err != nil {
			return r, err
		}
		r.ExtraHosts = append(r.ExtraHosts, h)
	}
	for _, s := range w.DNSServers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return r, fmt.Errorf("dns server %q: not an IP address: %w", s, ErrInvalid)
		}
		r.DNS.Servers = append(r.DNS.Servers, a)
	}
	r.DNS.Search, r.DNS.Options = w.DNSSearch, w.DNSOptions
	for _, ws := range w.Static {
		st := sandbox.Static{Network: ws.Network}
		if len(ws.IPs) > 2 {
			return r, fmt.Errorf("static addresses on %q: at most one per family: %w", ws.Network, ErrInvalid)
		}
		for _, s := range ws.IPs {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return r, fmt.Errorf("static address %q: not an IP address: %w", s, ErrInvalid)
			}
			st.IPs = append(st.IPs, a)
		}
		if ws.MAC != "" {
			mac, err := net.ParseMAC(ws.MAC)
			if err != nil || len(mac) != 6 {
				return r, fmt.Errorf("MAC address %q: want six bytes like 02:42:ac:11:00:02: %w", ws.MAC, ErrInvalid)
			}
			st.MAC = mac
		}
		r.Static = append(r.Static, st)
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}
