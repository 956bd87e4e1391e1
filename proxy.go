package ocinet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/ocinet/ocinet/internal/procstat"
	"github.com/ocinet/ocinet/portmap"
)

// Ports published on IPv6 loopback ([::1]) cannot go through the portmap
// plugin: the kernel never forwards a connection from ::1 to another
// address (IPv6 has no route_localnet), so its DNAT rules would never
// match. For those ports the Manager runs a small TCP proxy process, as
// docker does for the same reason: it listens on [::1]:port and relays
// every connection to the container's address. It is this program itself,
// started again with proxyEnv set; init below turns such a start into the
// proxy before anything else runs. The proxy's pid and start time are in
// the journal, and Detach ends it.

// proxyEnv carries "LISTEN TARGET" to a proxy process.
const proxyEnv = "OCINET_LOOPBACK6_PROXY"

func init() {
	if spec, ok := os.LookupEnv(proxyEnv); ok {
		os.Exit(runProxy(spec))
	}
}

// proxyRecord is one running proxy, as the journal keeps it.
type proxyRecord struct {
	PID int `json:"pid"`
	// Start is the process's start time (/proc/<pid>/stat), so that a
	// reused pid is never signalled.
	Start  uint64 `json:"start"`
	Listen string `json:"listen"`
	Target string `json:"target"`
}

// needsProxy reports whether p is published on IPv6 loopback.
func needsProxy(p portmap.Port) bool {
	return p.HostIP.Is6() && p.HostIP.IsLoopback()
}

// pluginPorts returns the ports the portmap plugin publishes: all but
// those on IPv6 loopback.
func pluginPorts(ports []portmap.Port) []portmap.Port {
	out := []portmap.Port{}
	for _, p := range ports {
		if !needsProxy(p) {
			out = append(out, p)
		}
	}
	return out
}

// startProxies starts a proxy for every port of rec on IPv6 loopback,
// relaying to the container's address on the network that publishes ports
// (its IPv6 address if it has one), and records them in rec.
func (m *Manager) startProxies(rec *record, portsNet int) error {
	var target netip.Addr
	for _, ifc := range rec.attachment().Interfaces {
		if ifc.Network != rec.Networks[portsNet+1].Name {
			continue
		}
		for _, p := range ifc.IPs {
			if !target.IsValid() || (p.Addr().Is6() && !target.Is6()) {
				target = p.Addr()
			}
		}
	}
	for _, p := range rec.Ports {
		if !needsProxy(p) {
			continue
		}
		if p.Protocol != "tcp" {
			return fmt.Errorf("publish %s: on IPv6 loopback only tcp can be published (through a proxy): %w", p, ErrInvalid)
		}
		if !target.IsValid() {
			return fmt.Errorf("publish %s: the container has no address to relay to", p)
		}
		pr, err := startProxy(netip.AddrPortFrom(p.HostIP, p.HostPort), netip.AddrPortFrom(target, p.ContainerPort))
		if err != nil {
			return fmt.Errorf("publish %s: %w", p, err)
		}
		rec.Proxies = append(rec.Proxies, pr)
	}
	return nil
}

// startProxy starts a proxy process and waits until it listens.
func startProxy(listen, target netip.AddrPort) (proxyRecord, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return proxyRecord{}, err
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{proxyEnv + "=" + listen.String() + " " + target.String()}
	cmd.ExtraFiles = []*os.File{w}
	// Its own session: it outlives the (short-lived) hook that starts it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return proxyRecord{}, fmt.Errorf("start the loopback proxy: %w", err)
	}
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(r).ReadString('\n')
	if line != "ok\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return proxyRecord{}, fmt.Errorf("loopback proxy on %s: %s", listen, strings.TrimSpace(strings.TrimPrefix(line, "error: ")))
	}
	pr := proxyRecord{PID: cmd.Process.Pid, Start: procStart(cmd.Process.Pid), Listen: listen.String(), Target: target.String()}
	_ = cmd.Process.Release()
	return pr, nil
}

// stopProxies ends rec's proxies. One that is gone already is fine.
func stopProxies(rec *record) error {
	var errs []error
	for _, p := range rec.Proxies {
		if err := stopProxy(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func stopProxy(p proxyRecord) error {
	if p.PID <= 0 || procStart(p.PID) != p.Start {
		return nil // gone, or the pid now belongs to another process
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("stop the loopback proxy %d on %s: %w", p.PID, p.Listen, err)
	}
	// Reap it if it is this process's child; otherwise its parent or init
	// does.
	done := make(chan struct{})
	go func() {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(p.PID, &ws, 0, nil)
		close(done)
	}()
	for i := 0; i < 100; i++ {
		select {
		case <-done:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
		if procStart(p.PID) != p.Start || procState(p.PID) == "Z" {
			return nil
		}
	}
	return fmt.Errorf("the loopback proxy %d on %s did not stop", p.PID, p.Listen)
}

// procStart and procState are package procstat's.
var (
	procStart = procstat.Start
	procState = procstat.State
)

// runProxy is the proxy process: it listens on the spec's first address,
// says so on file descriptor 3, and relays connections to the second until
// it is signalled.
func runProxy(spec string) int {
	ready := os.NewFile(3, "ready")
	listen, target, ok := strings.Cut(spec, " ")
	if !ok || ready == nil {
		return 2
	}
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
