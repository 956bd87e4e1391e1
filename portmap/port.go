package portmap

import (
	"net/netip"
	"strconv"
)

// Port is one concrete host port to container port mapping: the result of
// range expansion and allocation. Its JSON form is exactly an entry of the
// CNI "portMappings" capability:
//
//	{"hostIP":"127.0.0.1","hostPort":8080,"containerPort":80,"protocol":"tcp"}
//
// with "hostIP" left out when HostIP is the zero Addr.
type Port struct {
	// HostIP is the host address; the zero Addr means every address.
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
	// Protocol is "tcp", "udp" or "sctp".
	Protocol string `json:"protocol"`
}

// String returns p in the style of `docker port`:
//
//	80/tcp -> 127.0.0.1:8080
//	53/udp -> [::1]:5353
//	80/tcp -> *:8080        (HostIP is the zero Addr: every address)
func (p Port) String() string {
	return strconv.Itoa(int(p.ContainerPort)) + "/" + p.Protocol + " -> " + p.hostAddr()
}

// hostAddr is "ip:port", "[ip]:port" or "*:port".
func (p Port) hostAddr() string {
	port := strconv.Itoa(int(p.HostPort))
	switch {
	case !p.HostIP.IsValid():
		return "*:" + port
	case p.HostIP.Is4():
		return p.HostIP.String() + ":" + port
	default:
		return "[" + p.HostIP.String() + "]:" + port
	}
}

// hostSide is the host side of p as used in error messages:
// "127.0.0.1:8080/tcp", "[::1]:8080/tcp", or "8080/tcp" for every address.
func (p Port) hostSide() string {
	if !p.HostIP.IsValid() {
		return strconv.Itoa(int(p.HostPort)) + "/" + p.Protocol
	}
	return p.hostAddr() + "/" + p.Protocol
}
