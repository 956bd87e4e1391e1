package portmap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
)

// Kernel files the Allocator reads. They describe the network namespace of
// the calling process.
const (
	procPortRange     = "/proc/sys/net/ipv4/ip_local_port_range"
	procReservedPorts = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

// procTable is one /proc/net socket table.
type procTable struct {
	path   string
	format tableFormat
}

type tableFormat int

const (
	formatTCP  tableFormat = iota // /proc/net/tcp{,6}: only LISTEN sockets count
	formatUDP                     // /proc/net/udp{,6}: every bound socket counts
	formatSCTP                    // /proc/net/sctp/eps: every endpoint counts
)

// procTables lists the socket tables read for each protocol.
var procTables = map[string][]procTable{
	"tcp":  {{"/proc/net/tcp", formatTCP}, {"/proc/net/tcp6", formatTCP}},
	"udp":  {{"/proc/net/udp", formatUDP}, {"/proc/net/udp6", formatUDP}},
	"sctp": {{"/proc/net/sctp/eps", formatSCTP}},
}

// socket is a local address a host socket holds. addr is never zero: an
// IPv4-mapped IPv6 address is unmapped, a wildcard is 0.0.0.0 or ::.
type socket struct {
	addr netip.Addr
	port uint16
}

// tcpListen is the TCP_LISTEN state as /proc/net/tcp prints it.
const tcpListen = "0A"

// parseSocketTable parses the content of a /proc/net socket table.
func parseSocketTable(data []byte, format tableFormat) ([]socket, error) {
	var out []socket
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if line == 1 || len(fields) == 0 {
			continue // header
		}
		var (
			s   []socket
			err error
		)
		if format == formatSCTP {
			s, err = parseSCTPLine(fields)
		} else {
			s, err = parseInetLine(fields, format)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, s...)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseInetLine parses one row of /proc/net/{tcp,udp}{,6}:
//
//	sl local_address rem_address st ...
//	0: 0100007F:1F90 00000000:0000 0A ...
func parseInetLine(fields []string, format tableFormat) ([]socket, error) {
	if len(fields) < 4 {
		return nil, fmt.Errorf("want at least 4 fields, have %d", len(fields))
	}
	if format == formatTCP && fields[3] != tcpListen {
		return nil, nil
	}
	hexAddr, hexPort, ok := strings.Cut(fields[1], ":")
	if !ok {
		return nil, fmt.Errorf("local address %q has no port", fields[1])
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return nil, fmt.Errorf("local port %q: %w", hexPort, err)
	}
	addr, err := parseHexAddr(hexAddr)
	if err != nil {
		return nil, err
	}
	return []socket{{addr: addr, port: uint16(port)}}, nil
}

// parseHexAddr decodes the kernel's hex address: the address bytes read as
// 32-bit words in the machine's byte order and printed as %08X each.
func parseHexAddr(s string) (netip.Addr, error) {
	if len(s) != 8 && len(s) != 32 {
		return netip.Addr{}, fmt.Errorf("local address %q: want 8 or 32 hex digits", s)
	}
	b := make([]byte, len(s)/2)
	for i := 0; i < len(s); i += 8 {
		w, err := strconv.ParseUint(s[i:i+8], 16, 32)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("local address %q: %w", s, err)
		}
		binary.NativeEndian.PutUint32(b[i/2:], uint32(w))
	}
	addr, _ := netip.AddrFromSlice(b)
	return addr.Unmap(), nil
}

// parseSCTPLine parses one row of /proc/net/sctp/eps:
//
//	ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS...
//
// LPORT is decimal; LADDRS is a list of addresses. An endpoint whose
// addresses cannot be read is treated as bound to every address.
func parseSCTPLine(fields []string) ([]socket, error) {
	if len(fields) < 6 {
		return nil, fmt.Errorf("want at least 6 fields, have %d", len(fields))
	}
	port, err := strconv.ParseUint(fields[5], 10, 16)
	if err != nil {
		return nil, fmt.Errorf("local port %q: %w", fields[5], err)
	}
	var out []socket
	if len(fields) > 8 {
		for _, f := range fields[8:] {
			addr, err := netip.ParseAddr(f)
			if err != nil {
				out = nil
				break
			}
			out = append(out, socket{addr: addr.WithZone("").Unmap(), port: uint16(port)})
		}
	}
	if out == nil {
		out = []socket{
			{addr: netip.IPv4Unspecified(), port: uint16(port)},
			{addr: netip.IPv6Unspecified(), port: uint16(port)},
		}
	}
	return out, nil
}

// parsePortRange parses ip_local_port_range: "32768\t60999".
func parsePortRange(data []byte) (PortRange, error) {
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("want two numbers, have %q", strings.TrimSpace(string(data)))
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err := errors.Join(err1, err2); err != nil {
		return PortRange{}, err
	}
	if lo == 0 || lo > hi {
		return PortRange{}, fmt.Errorf("unusable range %d-%d", lo, hi)
	}
	return PortRange{Start: uint16(lo), End: uint16(hi)}, nil
}

// parseReservedPorts parses ip_local_reserved_ports: a comma-separated list
// of ports and ranges, such as "8080,9000-9010", or an empty line.
func parseReservedPorts(data []byte) ([]PortRange, error) {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil, nil
	}
	var out []PortRange
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("item %q: %w", item, err)
		}
		if a > b {
			return nil, fmt.Errorf("item %q is reversed", item)
		}
		out = append(out, PortRange{Start: uint16(a), End: uint16(b)})
	}
	return out, nil
}

// localPorts is the range automatic ports come from.
type localPorts struct {
	r        PortRange
	reserved []PortRange
}

func (l localPorts) isReserved(p uint16) bool {
	for _, r := range l.reserved {
		if p >= r.Start && p <= r.End {
			return true
		}
	}
	return false
}

// readLocalPorts reads the kernel's local port range and its reserved ports.
// A missing reserved-ports file means none are reserved.
func (a *Allocator) readLocalPorts() (localPorts, error) {
	data, err := a.readFile(procPortRange)
	if err != nil {
		return localPorts{}, fmt.Errorf("read local port range: %w", err)
	}
	r, err := parsePortRange(data)
	if err != nil {
		return localPorts{}, fmt.Errorf("parse %s: %w", procPortRange, err)
	}
	l := localPorts{r: r}
	data, err = a.readFile(procReservedPorts)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return localPorts{}, fmt.Errorf("read reserved local ports: %w", err)
	}
	if l.reserved, err = parseReservedPorts(data); err != nil {
		return localPorts{}, fmt.Errorf("parse %s: %w", procReservedPorts, err)
	}
	return l, nil
}

// readSockets reads the host sockets of protocol proto. A missing table
// (IPv6 disabled, sctp module not loaded) has no sockets. Listening TCP
// sockets come from sock_diag when it answers, and from /proc otherwise.
func (a *Allocator) readSockets(proto string) ([]socket, error) {
	var diagErr error
	if proto == "tcp" && a.listeners != nil {
		s, err := a.listeners()
		if err == nil {
			return s, nil
		}
		diagErr = err
	}
	out, err := a.readProcSockets(proto)
	if err != nil {
		return nil, errors.Join(err, diagErr)
	}
	return out, nil
}

// readProcSockets reads the host sockets of protocol proto from /proc.
func (a *Allocator) readProcSockets(proto string) ([]socket, error) {
	var out []socket
	for _, t := range procTables[proto] {
		data, err := a.readFile(t.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read host %s sockets: %w", proto, err)
		}
		s, err := parseSocketTable(data, t.format)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", t.path, err)
		}
		out = append(out, s...)
	}
	return out, nil
}
