package ocinet

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hostPrefix is a prefix in use on the host, and the device it is on.
type hostPrefix struct {
	prefix netip.Prefix
	dev    string
}

// hostPrefixes returns the prefixes of the host's interface addresses (IPv4
// and global IPv6) and of its IPv4 routes, except default routes and those
// on the device skip (the network's own bridge, left from an earlier
// network of the same name, whose subnet can be taken again).
func hostPrefixes(skip string) []hostPrefix {
	var out []hostPrefix
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Name == skip {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			p, err := netip.ParsePrefix(ipn.String())
			if err != nil || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
				continue
			}
			out = append(out, hostPrefix{prefix: p.Masked(), dev: ifc.Name})
		}
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] == skip {
			continue
		}
		dst, err1 := strconv.ParseUint(fields[1], 16, 32)
		mask, err2 := strconv.ParseUint(fields[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		// /proc/net/route prints addresses in host (little-endian) order.
		d := uint32(dst)
		addr := netip.AddrFrom4([4]byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)})
		ones := 0
		for mk := uint32(mask); mk != 0; mk >>= 1 {
			ones += int(mk & 1)
		}
		out = append(out, hostPrefix{prefix: netip.PrefixFrom(addr, ones).Masked(), dev: fields[0]})
	}
	return out
}

// linkNames returns the names of the network interfaces inside the
// namespace at path. The work runs on a goroutine of its own, locked to its
// thread, which is switched back before it is unlocked; if switching back
// fails, the goroutine ends locked and the runtime discards the thread.
func linkNames(path string) (map[string]bool, error) {
	target, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type answer struct {
		names map[string]bool
		err   error
	}
	c := make(chan answer, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			c <- answer{err: err}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			c <- answer{err: fmt.Errorf("enter namespace %s: %w", path, err)}
			return
		}
		ifaces, err := net.Interfaces()
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			c <- answer{err: fmt.Errorf("leave namespace %s: %w", path, rerr)}
			return // still locked: the thread is discarded
		}
		runtime.UnlockOSThread()
		if err != nil {
			c <- answer{err: err}
			return
		}
		names := map[string]bool{}
		for _, i := range ifaces {
			names[i.Name] = true
		}
		c <- answer{names: names}
	}()
	a := <-c
	return a.names, a.err
}
