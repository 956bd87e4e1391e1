package hosts

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
)

// The managed block of a hosts file starts with a line that begins with
// beginMarker and ends with the line endMarker. Everything between them is
// rewritten from the records; everything outside belongs to the user.
const (
	beginMarker = "# ocinet: begin of managed entries"
	beginLine   = beginMarker + " (rewritten from the hosts store; add your own lines after the end marker)"
	endMarker   = "# ocinet: end of managed entries"
)

// The fixed head of every managed block.
const localEntries = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// userLines returns the lines of a hosts file that lie outside its managed
// blocks, without their newlines. It is the reader behind every rewrite, so
// it never fails: whatever the bytes, the worst case is that some of them
// are kept as user lines or dropped as managed ones.
//
//   - A line that begins with beginMarker (trailing blanks and a CR ignored)
//     opens a managed block, a line equal to endMarker closes it; both
//     markers and everything between them are dropped.
//   - A block whose end marker is missing (a torn write) runs to the end of
//     the file: it is all dropped.
//   - An end marker outside a block is dropped.
//   - Blank comment lines ('#' and spaces only, the padding of writeInPlace)
//     and empty lines at the end are dropped.
func userLines(b []byte) [][]byte {
	var (
		out    [][]byte
		inside bool
	)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		t := bytes.TrimRight(line, " \t\r")
		switch {
		case bytes.HasPrefix(t, []byte(beginMarker)):
			inside = true
		case string(t) == endMarker:
			inside = false
		case inside:
		case isPadding(line):
		default:
			out = append(out, line)
		}
	}
	for len(out) > 0 && len(bytes.TrimSpace(out[len(out)-1])) == 0 {
		out = out[:len(out)-1]
	}
	return out
}

// isPadding reports whether line is '#' followed by nothing but spaces.
func isPadding(line []byte) bool {
	return len(line) > 0 && line[0] == '#' && len(bytes.Trim(line[1:], " ")) == 0
}

// composeHosts returns the full content of a hosts file: the managed block,
// then the user lines.
func composeHosts(managed []byte, user [][]byte) []byte {
	n := len(managed)
	for _, l := range user {
		n += len(l) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, managed...)
	for _, l := range user {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return out
}

// hostsWriter collects hosts lines, dropping exact repeats and, from the
// lines added after the extra hosts, the names those define.
type hostsWriter struct {
	buf  bytes.Buffer
	seen map[string]bool
	// shadowed are the names (lower case: lookups ignore case) that an
	// extra host defines; later lines leave them out.
	shadowed map[string]bool
}

func (w *hostsWriter) add(ip netip.Addr, names ...string) {
	names = slices.DeleteFunc(names, func(s string) bool { return s == "" || len(w.shadowed) > 0 && w.shadowed[strings.ToLower(s)] })
	names = slices.Compact(names)
	if !ip.IsValid() || len(names) == 0 {
		return
	}
	line := ip.String() + "\t" + strings.Join(names, " ") + "\n"
	if w.seen[line] {
		return
	}
	w.seen[line] = true
	w.buf.WriteString(line)
}

// renderManaged returns the managed block of r's hosts file. It asks v for
// the peers on each of r's networks.
//
// Order: the local entries; the extra hosts in order, host-gateway resolved
// to the gateway of r's first network (left out when there is none, which
// Join refuses but an old record may hold); r's own addresses (network by
// network) with its hostname and name; then, for each of r's networks in
// order, each peer on it (sorted by ID) with its addresses on that network
// only, by hostname and name. The extra hosts come first and win, as with
// docker, podman and nerdctl: a name an extra host defines is left out of
// the own and peer lines after it, so that a resolver that collects every
// line naming it still finds only the extra host's address.
func renderManaged(r *Record, v *view) ([]byte, error) {
	w := hostsWriter{seen: map[string]bool{}, shadowed: map[string]bool{}}
	w.buf.WriteString(beginLine + "\n")
	w.buf.WriteString(localEntries)
	for _, e := range r.ExtraHosts {
		ip := e.IP
		if e.Gateway {
			ip = netip.Addr{}
			if len(r.Networks) > 0 {
				ip = r.Networks[0].Gateway
			}
		}
		w.add(ip, e.Name)
	}
	for _, e := range r.ExtraHosts {
		w.shadowed[strings.ToLower(e.Name)] = true
	}
	for _, n := range r.Networks {
		for _, ip := range n.IPs {
			w.add(ip, r.Hostname, r.Name)
		}
	}
	for _, n := range r.Networks {
		if n.PeersByDNS {
			continue // its peers come from the network's DNS responder
		}
		peers, err := v.members(n.Name)
		if err != nil {
			return nil, err
		}
		for _, p := range peers {
			if p.ID == r.ID {
				continue
			}
			pn := p.network(n.Name)
			for _, ip := range pn.IPs {
				w.add(ip, p.Hostname, p.Name)
			}
		}
	}
	w.buf.WriteString(endMarker + "\n")
	return w.buf.Bytes(), nil
}
