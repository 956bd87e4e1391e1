package portmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ocinet/ocinet/internal/reexec"
)

// Ports published on IPv6 loopback ([::1]) cannot go through the portmap
// plugin: the kernel never forwards a connection from ::1 to another
// address (IPv6 has no route_localnet), so DNAT rules would never match.
// For those ports a small TCP proxy process relays, as docker does for the
// same reason: it listens on [::1]:port and relays every connection to the
// container's address. It is the program itself, started again through
// package internal/reexec (the program opts in by calling
// ocinet.RunHelper first in main).

// proxyHelper is the proxy's helper name.
const proxyHelper = "ocinet-loopback6-proxy"

func init() { reexec.Register(proxyHelper, runProxy) }

// Proxy is a running loopback proxy, as a journal keeps it.
type Proxy struct {
	reexec.Process
	Listen string `json:"listen"`
	Target string `json:"target"`
}

// NeedsProxy reports whether p is published on IPv6 loopback, where a
// proxy relays instead of the plugins' rules.
func NeedsProxy(p Port) bool { return p.HostIP.Is6() && p.HostIP.IsLoopback() }

// PluginPorts returns the ports that rules publish: all but those on IPv6
// loopback.
func PluginPorts(ports []Port) []Port {
	out := []Port{}
	for _, p := range ports {
		if !NeedsProxy(p) {
			out = append(out, p)
		}
	}
	return out
}

// StartProxy starts a proxy process listening on listen and relaying to
// target, and waits until it listens. The proxy has its own session: it
// outlives the (short-lived) hook that starts it, until [Proxy.Stop].
func StartProxy(listen, target netip.AddrPort) (Proxy, error) {
	if !reexec.Ready() {
		return Proxy{}, fmt.Errorf("loopback proxy on %s: this program does not run ocinet's helpers (it must call ocinet.RunHelper first in main): %w", listen, ErrNotSupported)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return Proxy{}, err
	}
	defer r.Close()
	cmd := reexec.Command(proxyHelper, listen.String(), target.String())
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return Proxy{}, fmt.Errorf("start the loopback proxy: %w", err)
	}
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(r).ReadString('\n')
	if line != "ok\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return Proxy{}, fmt.Errorf("loopback proxy on %s: %s", listen, strings.TrimSpace(strings.TrimPrefix(line, "error: ")))
	}
	p := Proxy{Process: reexec.Find(cmd.Process.Pid), Listen: listen.String(), Target: target.String()}
	_ = cmd.Process.Release()
	return p, nil
}

// Stop ends the proxy. One that is gone already (or whose pid now belongs
// to another process) is fine.
func (p Proxy) Stop() error {
	if err := p.Process.Stop(); err != nil {
		return fmt.Errorf("the loopback proxy on %s: %w", p.Listen, err)
	}
	return nil
}

// runProxy is the proxy process: it listens on its first argument, says so
// on file descriptor 3, and relays connections to the second until it is
// signalled.
func runProxy() int {
	ready := os.NewFile(3, "ready")
	if len(os.Args) != 3 || ready == nil {
		return 2
	}
	listen, target := os.Args[1], os.Args[2]
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(ready, "error: %v\n", err)
		return 1
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return 0
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go relay(c, target)
	}
}

func relay(c net.Conn, target string) {
	defer c.Close()
	t, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer t.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(t, c)
	go cp(c, t)
	<-done
	<-done
}
