package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Listening TCP sockets are read through sock_diag (NETLINK_INET_DIAG) with
// a filter on the LISTEN state. Reading /proc/net/tcp{,6} instead makes the
// kernel walk its whole established-connection hash table, whose size
// scales with the machine's memory: ~6.7 ms here against ~0.1 ms for the
// filtered dump, which sees only the listening hash.

// inetDiagReq is struct inet_diag_req_v2 asking for every socket of one
// family and protocol in the given states, with no address filter.
type inetDiagReq struct {
	family, protocol uint8
	states           uint32
}

const sizeofInetDiagReq = 56 // family, protocol, ext, pad, states, inet_diag_sockid (48)

func (r *inetDiagReq) Len() int { return sizeofInetDiagReq }

func (r *inetDiagReq) Serialize() []byte {
	b := make([]byte, sizeofInetDiagReq)
	b[0] = r.family
	b[1] = r.protocol
	binary.NativeEndian.PutUint32(b[4:], r.states)
	// idiag_cookie: INET_DIAG_NOCOOKIE, "any socket".
	binary.NativeEndian.PutUint32(b[48:], ^uint32(0))
	binary.NativeEndian.PutUint32(b[52:], ^uint32(0))
	return b
}

// Offsets in struct inet_diag_msg: family, state, timer, retrans, then
// inet_diag_sockid: sport and dport in network order, src[16], dst[16].
const (
	diagMsgMin     = 4 + 4 + 32
	diagMsgSport   = 4
	diagMsgSrcAddr = 8
)

// tcpListenState is TCP_LISTEN in the kernel's numbering.
const tcpListenState = 10

// listeningTCP returns the local addresses of the listening TCP sockets of
// the calling process's network namespace, IPv4 and IPv6. An IPv6 dump the
// kernel refuses (IPv6 disabled) has no sockets.
func listeningTCP() ([]socket, error) {
	var out []socket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		s, err := dumpListening(family)
		if err != nil {
			if family == unix.AF_INET6 && errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("list listening TCP sockets (family %d): %w", family, err)
		}
		out = append(out, s...)
	}
	return out, nil
}

// dumpListening runs one filtered dump, again when the kernel reports that
// a concurrent change interrupted it (at most 5 tries).
func dumpListening(family uint8) ([]socket, error) {
	var (
		msgs [][]byte
		err  error
	)
	for range 5 {
		req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
		req.AddData(&inetDiagReq{family: family, protocol: unix.IPPROTO_TCP, states: 1 << tcpListenState})
		msgs, err = req.Execute(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY)
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]socket, 0, len(msgs))
	for _, m := range msgs {
		s, err := parseDiagMsg(m, family)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// parseDiagMsg reads the local address and port of one inet_diag_msg.
func parseDiagMsg(m []byte, family uint8) (socket, error) {
	if len(m) < diagMsgMin {
		return socket{}, fmt.Errorf("sock_diag message of %d bytes, want at least %d", len(m), diagMsgMin)
	}
	if m[0] != family {
		return socket{}, fmt.Errorf("sock_diag message of family %d in a dump of family %d", m[0], family)
	}
	port := binary.BigEndian.Uint16(m[diagMsgSport:])
	var addr netip.Addr
	if family == unix.AF_INET {
		addr = netip.AddrFrom4([4]byte(m[diagMsgSrcAddr : diagMsgSrcAddr+4]))
	} else {
		addr = netip.AddrFrom16([16]byte(m[diagMsgSrcAddr : diagMsgSrcAddr+16])).Unmap()
	}
	return socket{addr: addr, port: port}, nil
}
