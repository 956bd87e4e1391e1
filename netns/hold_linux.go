package netns

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ocinet/ocinet/internal/reexec"
	"golang.org/x/sys/unix"
)

// The holder is this same program, started again through package
// internal/reexec as the helper holderHelper, with the parent's pid as its
// argument. The program opts in by calling ocinet.RunHelper (reexec.Run)
// first in main.
const holderHelper = "ocinet-netns-holder"

// The holder's file descriptors.
const (
	holderReleaseFD = 3 // read end of the release pipe: EOF means exit
	holderStatusFD  = 4 // write end of the status pipe: "ok" or an error
	holderNSFD      = 5 // the namespace to join
)

// Bounds on the holder's life.
const (
	holdStartWait = 10 * time.Second // for the holder to report, when ctx has no earlier deadline
	holdStopWait  = 5 * time.Second  // for the holder to exit after release, before it is killed
)

func init() {
	reexec.Register(holderHelper, runHolder)
	// The holder's setns must move the main thread, the one
	// /proc/<pid>/ns/net shows: locking it here, in init, keeps main (and
	// so reexec.Run) on it. Programs that are not a holder are not touched.
	if reexec.Name() == holderHelper {
		runtime.LockOSThread()
	}
}

// runHolder is the holder process. It runs from reexec.Run on the main
// thread, which init locked, so its setns moves the main thread, the one
// /proc/<pid>/ns/net shows. It then blocks until the release pipe reports
// end of file (a release, or the parent's death, which closes the parent's
// end), and exits.
func runHolder() int {
	parent := ""
	if len(os.Args) > 1 {
		parent = os.Args[1]
	}
	fail := func(msg string) {
		_, _ = unix.Write(holderStatusFD, []byte(msg))
		unix.Exit(1)
	}
	if strconv.Itoa(unix.Getppid()) != parent {
		fail("the process that asked for the holder is gone")
	}
	if err := unix.Setns(holderNSFD, unix.CLONE_NEWNET); err != nil {
		fail("setns: " + err.Error())
	}
	unix.Close(holderNSFD)
	if _, err := unix.Write(holderStatusFD, []byte("ok")); err != nil {
		unix.Exit(1)
	}
	unix.Close(holderStatusFD)
	var b [1]byte
	for {
		if _, err := unix.Read(holderReleaseFD, b[:]); err != unix.EINTR {
			break
		}
	}
	return 0
}

// Hold starts a small process that joins the network namespace at path and
// waits, and returns that process's /proc/<pid>/ns/net with the function
// that releases it. It is for CNI plugins that accept only
// /proc/<pid>/ns/net as CNI_NETNS and reject a named namespace such as
// /var/run/netns/cni-... ("invalid nw name space"): pass them the returned
// path instead, and release when the plugin is done.
//
// The holder is this program itself, started again from /proc/self/exe
// through package internal/reexec: the program must call ocinet.RunHelper
// first in main (tests: from TestMain), or the holder never reports and
// Hold fails when ctx ends. The holder dies with this process: it exits when the pipe that
// this process holds closes, and is killed by PR_SET_PDEATHSIG as well.
// release closes the pipe, waits for the holder to exit (killing it after
// a few seconds) and reaps it; calling it again does nothing. Until
// release, the holder is not reaped even if something kills it, so its PID
// cannot be reused and the path can never name another process's
// namespace.
//
// ctx bounds the start only (at most 10 seconds when it has no earlier
// deadline). The host's own namespace is refused (ErrHostNamespace), as
// are paths that are not network namespaces (ErrNotFound, ErrNotNetNS).
func Hold(ctx context.Context, path string) (string, func(), error) {
	if !reexec.Ready() {
		return "", nil, fmt.Errorf("hold namespace %s: this program does not run ocinet's helpers (it must call ocinet.RunHelper first in main): %w", path, ErrNotSupported)
	}
	ns, err := Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("hold namespace: %w", err)
	}
	defer ns.Close()
	h, err := startHolder(ns)
	if err != nil {
		return "", nil, fmt.Errorf("hold namespace %s: %w", path, err)
	}
	if err := h.wait(ctx, ns.id); err != nil {
		h.release()
		return "", nil, fmt.Errorf("hold namespace %s: %w", path, err)
	}
	return h.path, h.release, nil
}

// holder is the parent's side of one holder process.
type holder struct {
	path    string   // /proc/<pid>/ns/net
	status  *os.File // read end of the status pipe
	release func()
}

// startHolder starts the holder process for ns. The process is started,
// waited for and reaped by one goroutine locked to its thread for the
// holder's whole life: PR_SET_PDEATHSIG fires when the thread that forked
// the child ends, not the process, and a Go thread can end while the
// process goes on.
func startHolder(ns *NetNS) (*holder, error) {
	releaseR, releaseW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		releaseR.Close()
		releaseW.Close()
		return nil, err
	}
	cmd := reexec.Command(holderHelper, strconv.Itoa(os.Getpid()), ns.path)
	cmd.ExtraFiles = []*os.File{releaseR, statusW, ns.f} // fds 3, 4, 5
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	stop := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		<-stop
		releaseW.Close()
		kill := time.AfterFunc(holdStopWait, func() { _ = cmd.Process.Kill() })
		_ = cmd.Wait()
		kill.Stop()
		close(reaped)
	}()
	err = <-started
	releaseR.Close()
	statusW.Close()
	if err != nil {
		releaseW.Close()
		statusR.Close()
		return nil, fmt.Errorf("start holder: %w", err)
	}
	h := &holder{
		path:   "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net",
		status: statusR,
	}
	h.release = sync.OnceFunc(func() {
		close(stop)
		<-reaped
	})
	return h, nil
}

// wait reads the holder's report, then checks that /proc/<pid>/ns/net is
// the namespace id.
func (h *holder) wait(ctx context.Context, id nsID) error {
	defer h.status.Close()
	deadline := time.Now().Add(holdStartWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := h.status.SetReadDeadline(deadline); err != nil {
		return err
	}
	cancel := context.AfterFunc(ctx, func() { _ = h.status.SetReadDeadline(time.Now()) })
	defer cancel()
	msg, err := io.ReadAll(io.LimitReader(h.status, 4096))
	if ctx.Err() != nil {
		return fmt.Errorf("holder did not start: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("holder did not start: %w", err)
	}
	switch string(msg) {
	case "ok":
	case "":
		return fmt.Errorf("holder exited before it joined the namespace")
	default:
		return fmt.Errorf("holder: %s", msg)
	}
	got, err := identify(h.path)
	if err != nil {
		return fmt.Errorf("holder: %w", err)
	}
	if got != id {
		return fmt.Errorf("holder %s is not in the namespace", h.path)
	}
	return nil
}
