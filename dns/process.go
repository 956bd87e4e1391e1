package dns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"golang.org/x/sys/unix"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/fsutil"
	"github.com/ocinet/ocinet/internal/reexec"
)

// HelperName is the name a responder process runs under: its argv[0].
const HelperName = "ocinet-dns"

func init() { reexec.Register(HelperName, helperMain) }

// Layout under the state root:
//
//	dns/.lock             flock held while a responder is started or stopped
//	dns/<network>.pid     the running responder (JSON: pid, start time, config)
//	dns/<network>.stopping a responder told to stop that may not have exited
//	                      yet (JSON, as the pid file)
//	dns/<network>.log     its log (its standard error)
//	dns/resolv.conf       optional: the upstream servers of every responder,
//	                      in resolv.conf syntax, instead of the host's
const (
	dirName      = "dns"
	lockName     = ".lock"
	pidSuffix    = ".pid"
	stopSuffix   = ".stopping"
	logSuffix    = ".log"
	upstreamFile = "resolv.conf"
)

// Dir returns the directory of the responders' pid files and logs under
// stateDir.
func Dir(stateDir string) string { return filepath.Join(stateDir, dirName) }

// Process is a running responder, as its pid file records it.
type Process struct {
	PID int `json:"pid"`
	// Start is the start time of the process (/proc/<pid>/stat field 22):
	// a later process with the same pid has another, and is never
	// signalled.
	Start     uint64           `json:"start"`
	Network   string           `json:"network"`
	Listen    []netip.Addr     `json:"listen"`
	Port      int              `json:"port"`
	Subnets   []netip.Prefix   `json:"subnets"`
	Upstreams []netip.AddrPort `json:"upstreams,omitempty"`
	// Linger is the process's Config.Linger: when positive, it stops on
	// its own once its network has had no container for that long (0 in
	// the pid files of responders that predate it, which Release stops).
	Linger time.Duration `json:"linger,omitempty"`
	// Nerdctl is the process's Config.Nerdctl.
	Nerdctl string `json:"nerdctl,omitempty"`
}

// Alive reports whether the process still runs.
func (p *Process) Alive() bool {
	if !(reexec.Process{PID: p.PID, Start: p.Start}).Alive() {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	return argv0 == HelperName
}

func (p *Process) sameConfig(c *Config) bool {
	return slices.Equal(p.Listen, c.Listen) && p.Port == c.Port &&
		slices.Equal(p.Subnets, c.Subnets) && slices.Equal(p.Upstreams, c.Upstreams) && p.Nerdctl == c.Nerdctl
}

func pidPath(stateDir, network string) string {
	return filepath.Join(Dir(stateDir), network+pidSuffix)
}

func stoppingPath(stateDir, network string) string {
	return filepath.Join(Dir(stateDir), network+stopSuffix)
}

// readPID returns the pid file of network's responder, or nil.
func readPID(stateDir, network string) (*Process, error) {
	return readProcess(pidPath(stateDir, network), network)
}

// readProcess reads a pid or stopping file of network, or returns nil.
func readProcess(path, network string) (*Process, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Process
	if json.Unmarshal(b, &p) != nil || p.Network != network {
		return nil, nil // damaged: treated as no responder; the next start replaces it
	}
	return &p, nil
}

// Processes returns the responders that have a pid file under stateDir,
// running or not, sorted by network.
func Processes(stateDir string) ([]Process, error) {
	ents, err := os.ReadDir(Dir(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list dns responders: %w", err)
	}
	var out []Process
	for _, e := range ents {
		network, ok := strings.CutSuffix(e.Name(), pidSuffix)
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p, err := readPID(stateDir, network)
		if err != nil {
			return nil, fmt.Errorf("list dns responders: %w", err)
		}
		if p != nil {
			out = append(out, *p)
		}
	}
	return out, nil
}

func lock(stateDir string) (*fsutil.Lock, error) {
	if err := os.MkdirAll(Dir(stateDir), 0o700); err != nil {
		return nil, err
	}
	return fsutil.LockFile(filepath.Join(Dir(stateDir), lockName), fsutil.Exclusive)
}

// Start makes sure that a responder with configuration c runs for
// c.Network, as a process of its own: it returns at once when one runs with
// the same configuration, replaces one that runs with another, and starts
// one when none runs (its pid file may name a process that died, even by
// SIGKILL). The process is this program started again through
// internal/reexec, in a session of its own, with its standard input and
// output on /dev/null and its standard error on dns/<network>.log, so that
// it holds nothing of the caller's (runc reads a hook's output to the end).
// Start returns when it answers, or with the reason it could not start,
// such as its port being taken. c.StateDir is required.
func Start(ctx context.Context, c Config) (*Process, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if !reexec.Ready() {
		return nil, fmt.Errorf("start dns responder for %q: this program does not run ocinet's helpers (it must call ocinet.RunHelper first in main): %w", c.Network, ErrNotSupported)
	}
	l, err := lock(c.StateDir)
	if err != nil {
		return nil, fmt.Errorf("start dns responder for %q: %w", c.Network, err)
	}
	defer l.Unlock()
	old, err := readPID(c.StateDir, c.Network)
	if err != nil {
		return nil, fmt.Errorf("start dns responder for %q: %w", c.Network, err)
	}
	if old != nil && old.Alive() && old.sameConfig(&c) {
		return old, nil // a lingering one too: its network has a container again
	}
	if old != nil {
		// Replaced, or dead: it may still be exiting, its port bound.
		if err := stopProcess(old); err != nil {
			return nil, fmt.Errorf("start dns responder for %q: replace the old one: %w", c.Network, err)
		}
	}
	if err := finishStopping(c.StateDir, c.Network); err != nil {
		return nil, fmt.Errorf("start dns responder for %q: %w", c.Network, err)
	}
	p, err := spawn(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("start dns responder: %w", err) // the message names the network
	}
	// The pid file names a process, which a reboot ends: it is written
	// whole for the processes of this boot, with no fsync (a damaged one
	// reads as no responder, and a pid whose start time differs is never
	// signalled).
	b, _ := json.Marshal(p)
	if err := fsutil.ReplaceFileNoSync(pidPath(c.StateDir, c.Network), append(b, '\n'), 0o600); err != nil {
		_ = stopProcess(p)
		return nil, fmt.Errorf("start dns responder for %q: %w", c.Network, err)
	}
	return p, nil
}

// helperArgs are the responder's command line.
func helperArgs(c Config) []string {
	join := func(n int, f func(int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, ",")
	}
	args := []string{
		"-state", c.StateDir, "-network", c.Network, "-port", strconv.Itoa(c.Port),
		"-listen", join(len(c.Listen), func(i int) string { return c.Listen[i].String() }),
		"-subnets", join(len(c.Subnets), func(i int) string { return c.Subnets[i].String() }),
	}
	if len(c.Upstreams) > 0 {
		args = append(args, "-upstreams", join(len(c.Upstreams), func(i int) string { return c.Upstreams[i].String() }))
	}
	if c.Linger > 0 {
		args = append(args, "-linger", c.Linger.String())
	}
	if c.Nerdctl != "" {
		args = append(args, "-nerdctl", c.Nerdctl)
	}
	return args
}

// spawn starts the responder process and waits until it says it answers.
func spawn(ctx context.Context, c Config) (*Process, error) {
	logf, err := os.OpenFile(filepath.Join(Dir(c.StateDir), c.Network+logSuffix), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := reexec.Command(HelperName, helperArgs(c)...)
	cmd.Dir = "/"
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{w} // fd 3: "ok" or "error: ..."
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = r.SetReadDeadline(deadline)
	line, _ := bufio.NewReader(r).ReadString('\n')
	if line != "ok\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		msg := strings.TrimSpace(strings.TrimPrefix(line, "error: "))
		if msg == "" {
			msg = "it exited or did not answer in time; see " + logf.Name()
		}
		return nil, errors.New(msg)
	}
	p := &Process{PID: cmd.Process.Pid, Start: reexec.StartTime(cmd.Process.Pid), Network: c.Network,
		Listen: c.Listen, Port: c.Port, Subnets: c.Subnets, Upstreams: c.Upstreams, Linger: max(c.Linger, 0), Nerdctl: c.Nerdctl}
	_ = cmd.Process.Release()
	return p, nil
}

// Stop stops the responder of network under stateDir, if one runs, and
// removes its pid file. Stopping one that is not running is not an error.
func Stop(stateDir, network string) error {
	if err := validNetwork(network); err != nil {
		return err
	}
	l, err := lock(stateDir)
	if err != nil {
		return fmt.Errorf("stop dns responder for %q: %w", network, err)
	}
	defer l.Unlock()
	return stopLocked(stateDir, network)
}

func stopLocked(stateDir, network string) error {
	p, err := readPID(stateDir, network)
	if err != nil {
		return fmt.Errorf("stop dns responder for %q: %w", network, err)
	}
	if p != nil {
		if err := stopProcess(p); err != nil {
			return fmt.Errorf("stop dns responder for %q: %w", network, err)
		}
	}
	if err := os.Remove(pidPath(stateDir, network)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stop dns responder for %q: %w", network, err)
	}
	if err := finishStopping(stateDir, network); err != nil {
		return fmt.Errorf("stop dns responder for %q: %w", network, err)
	}
	return nil
}

// releaseLocked tells network's responder to stop (SIGTERM) and returns
// without waiting for it to exit, which takes milliseconds to tens of
// them on a busy host: its pid file becomes a stopping file, and the next
// Start or Stop of the network (which need its port free, or it gone)
// finish the stop first.
func releaseLocked(stateDir, network string) error {
	p, err := readPID(stateDir, network)
	if err != nil {
		return fmt.Errorf("stop dns responder for %q: %w", network, err)
	}
	if p != nil && p.Alive() {
		if err := finishStopping(stateDir, network); err != nil {
			return fmt.Errorf("stop dns responder for %q: %w", network, err)
		}
		if err := os.Rename(pidPath(stateDir, network), stoppingPath(stateDir, network)); err != nil {
			return fmt.Errorf("stop dns responder for %q: %w", network, err)
		}
		if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("stop dns responder for %q: signal %d: %w", network, p.PID, err)
		}
		return nil
	}
	if err := os.Remove(pidPath(stateDir, network)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stop dns responder for %q: %w", network, err)
	}
	return nil
}

// leaveIdle is a lingering responder's last check, once its network has
// had no container for its linger: under the responders' lock, it reads
// the hosts stores again, and when no container is on the network it
// turns its pid file into a stopping file (as Release does, so that a
// Start that comes now waits for its exit) and says to stop. A responder
// whose pid file names another process (it was replaced) or none (it was
// stopped) stops too, and so does one whose state root is gone (a test's,
// removed): it must not make its directory again.
func leaveIdle(stateDir, network string) bool {
	if _, err := os.Stat(Dir(stateDir)); errors.Is(err, fs.ErrNotExist) {
		return true
	}
	l, err := lock(stateDir)
	if err != nil {
		return false
	}
	defer l.Unlock()
	if used, err := inUse(stateDir, network); err != nil || used {
		return false
	}
	p, err := readPID(stateDir, network)
	if err != nil {
		return false
	}
	if p != nil && p.PID == os.Getpid() {
		if err := os.Rename(pidPath(stateDir, network), stoppingPath(stateDir, network)); err != nil {
			return false
		}
	}
	return true
}

// forgetStopping removes network's stopping file when it names this
// process: the responder's last act when told to stop. It takes no lock
// (the Start that waits for this exit holds it); no other stopping file can
// be written for the network until this process has exited.
func forgetStopping(stateDir, network string) {
	path := stoppingPath(stateDir, network)
	if p, err := readProcess(path, network); err == nil && p != nil && p.PID == os.Getpid() {
		_ = os.Remove(path)
	}
}

// sweepStoppingLocked removes the stopping files whose process has exited
// (one killed before it could remove its own).
func sweepStoppingLocked(stateDir string) {
	paths, _ := filepath.Glob(filepath.Join(Dir(stateDir), "*"+stopSuffix))
	for _, path := range paths {
		network := strings.TrimSuffix(filepath.Base(path), stopSuffix)
		if p, err := readProcess(path, network); err == nil && (p == nil || !p.Alive()) {
			_ = os.Remove(path)
		}
	}
}

// finishStopping waits until the responder network's stopping file names
// has exited (SIGKILL after two seconds), and removes the file.
func finishStopping(stateDir, network string) error {
	path := stoppingPath(stateDir, network)
	p, err := readProcess(path, network)
	if err != nil {
		return err
	}
	if p != nil {
		if err := stopProcess(p); err != nil {
			return err
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// stopProcess ends p: SIGTERM, then SIGKILL after two seconds. A process
// that is gone, or whose pid another process now has, is left alone. It
// waits for the exit on a pidfd (the kernel says when the process ends),
// or, where the kernel has none, by looking every 10 ms.
func stopProcess(p *Process) error {
	if !p.Alive() {
		// It may still be exiting (its command line goes before its
		// files do): its sockets are free once it is gone.
		return waitGone(p, time.Second)
	}
	// Opened before the signal and checked after it, so that the pidfd is
	// the process p names, not one that took its pid since.
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if err == nil {
		defer unix.Close(pidfd)
		if !p.Alive() {
			return nil
		}
	} else {
		pidfd = -1
	}
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(p.PID, sig); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("signal %d: %w", p.PID, err)
		}
		deadline := time.Now().Add(time.Duration(2-i) * time.Second)
		for {
			reap(p.PID)
			if p.gone() {
				return nil
			}
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			if pidfd >= 0 {
				fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
				_, _ = unix.Poll(fds, int(min(left, 100*time.Millisecond).Milliseconds())+1)
			} else {
				time.Sleep(min(left, 10*time.Millisecond))
			}
		}
	}
	return fmt.Errorf("process %d did not stop", p.PID)
}

// gone reports whether the process p names has exited, all its threads
// with it (then it holds no file, its sockets included), or is no more:
// its pid is free or another process's. A zombie thread group leader
// whose other threads still run is not gone: they still hold the files.
func (p *Process) gone() bool {
	if reexec.StartTime(p.PID) != p.Start {
		return true
	}
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		// No pidfd (an old kernel): the leader's state is all there is.
		return errors.Is(err, unix.ESRCH) || !(reexec.Process{PID: p.PID, Start: p.Start}).Alive()
	}
	defer unix.Close(pidfd)
	if reexec.StartTime(p.PID) != p.Start {
		return true // the pidfd may be another process's
	}
	// A pidfd polls readable once the whole thread group has exited.
	n, _ := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0)
	return n > 0
}

// waitGone waits, at most d, until p is gone (see gone).
func waitGone(p *Process, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		reap(p.PID)
		if p.gone() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d did not exit", p.PID)
		}
		time.Sleep(time.Millisecond)
	}
}

// reap collects pid's exit status when it is this process's child (a
// program that starts responders and runs on); otherwise it does nothing.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// helperMain is the responder process.
func helperMain() int {
	fs := flag.NewFlagSet(HelperName, flag.ContinueOnError)
	var c Config
	var listen, subnets, upstreams string
	fs.StringVar(&c.StateDir, "state", "", "state root")
	fs.StringVar(&c.Network, "network", "", "network name")
	fs.IntVar(&c.Port, "port", DefaultPort, "port")
	fs.StringVar(&listen, "listen", "", "listen addresses")
	fs.StringVar(&subnets, "subnets", "", "subnets")
	fs.StringVar(&upstreams, "upstreams", "", "upstream servers")
	fs.StringVar(&c.Nerdctl, "nerdctl", "", "nerdctl's data root, whose hosts store is read too")
	fs.DurationVar(&c.Linger, "linger", 0, "how long to run on once the network has no container (0: until told to stop)")
	ready := os.NewFile(3, "ready")
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", HelperName, err)
		if ready != nil {
			fmt.Fprintf(ready, "error: %v\n", err)
		}
		return 1
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return fail(err)
	}
	var err error
	if c.Listen, err = parseList(listen, netip.ParseAddr); err != nil {
		return fail(err)
	}
	if c.Subnets, err = parseList(subnets, netip.ParsePrefix); err != nil {
		return fail(err)
	}
	if c.Upstreams, err = parseList(upstreams, netip.ParseAddrPort); err != nil {
		return fail(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("network", c.Network, "pid", os.Getpid())
	opts := []Option{WithLogger(log)}
	if c.Linger > 0 {
		opts = append(opts, withIdle(c.Linger, func() bool { return leaveIdle(c.StateDir, c.Network) }))
	}
	srv, err := NewServer(c, opts...)
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}
	err = srv.Serve(ctx)
	forgetStopping(c.StateDir, c.Network)
	if err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	if s == "" {
		return nil, nil
	}
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(f)
		if err != nil {
			return nil, fmt.Errorf("%w argument: %v", ErrInvalid, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// upstreams returns the servers responders forward to: those of
// dns/resolv.conf under stateDir when it exists, otherwise those that
// package hosts chooses for a resolver on the host (the host's own, a
// loopback stub included), each on port 53.
func upstreams(stateDir string, ipv6 bool) ([]netip.AddrPort, error) {
	o := hosts.ResolvOptions{IPv6: ipv6}
	own := filepath.Join(Dir(stateDir), upstreamFile)
	if _, err := os.Stat(own); err == nil {
		o.HostPath, o.UpstreamPath = own, own
	}
	ips, err := hosts.Upstreams(o)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, len(ips))
	for i, ip := range ips {
		out[i] = netip.AddrPortFrom(ip, DefaultPort)
	}
	return out, nil
}
