package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hook/spec"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// containerSection: from creating a container to the first request it
// answers, through a published port on 127.0.0.1 with ocinet's hook doing
// the network (as `ocictl run -p` does), against the same container with no
// network, asked from inside its own namespace. Both run busybox httpd
// under a private containerd. Removal is timed too: the hook's poststop
// detaches.
func (b *bench) containerSection() error {
	m, _, err := b.manager() // the default network, on the run's bridge
	if err != nil {
		return err
	}
	ocictl, address, rootfs, err := b.containerd()
	if err != nil {
		return err
	}
	client, err := containerd.New(address, containerd.WithDefaultNamespace(ctdNamespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(b.ctx, ctdNamespace)

	// The hook's runtime dir is the run's own, so that its notes of the
	// networks set up since boot go with the run.
	cfg := hook.Config{StateDir: b.stateDir, NetNSDir: b.netnsDir, RuntimeDir: filepath.Join(b.work, "run"), CNIConfDir: b.confDir, PluginDirs: []string{b.pluginDir}, Namespace: ctdNamespace}
	store, err := cfg.HostsStore()
	if err != nil {
		return err
	}
	// The hook is ocictl's own, as `ocictl run` puts it into the spec.
	hookArgs := append(append([]string{"--address=" + address}, cfg.Args()...), "internal", "oci-hook")
	mapping, ports, err := localMapping()
	if err != nil {
		return err
	}
	hostPort := ports[0].HostPort
	httpd := oci.WithProcessArgs("/bin/httpd", "-f", "-p", "80", "-h", "/www")

	var startHook, startBare, rmHook, rmBare, startLean, rmLean, startCold, rmCold series
	// run starts a container, waits for its first answer, and removes it.
	run := func(id string, opts []oci.SpecOpts, get func(pid uint32) error, into, rmInto *series) error {
		t0 := time.Now()
		c, err := client.NewContainer(ctx, id, containerd.WithRuntime("io.containerd.runc.v2", nil),
			containerd.WithNewSpec(append([]oci.SpecOpts{oci.WithRootFSPath(rootfs), httpd}, opts...)...))
		if err != nil {
			return fmt.Errorf("create container %s: %w", id, err)
		}
		remove := b.clean.add("container "+id, func() error { return removeContainer(c, store, cfg, id) })
		task, err := c.NewTask(ctx, cio.NullIO)
		if err != nil {
			return errors.Join(fmt.Errorf("create task %s: %w", id, err), remove())
		}
		if err := task.Start(ctx); err != nil {
			return errors.Join(fmt.Errorf("start task %s: %w", id, err), remove())
		}
		if err := get(task.Pid()); err != nil {
			return errors.Join(fmt.Errorf("container %s: %w", id, err), remove())
		}
		started := time.Since(t0)
		t1 := time.Now()
		if err := remove(); err != nil {
			return err
		}
		if into != nil {
			*into, *rmInto = append(*into, started), append(*rmInto, time.Since(t1))
		}
		return nil
	}
	lean, err := b.build("./cmd/ocinet-hook", "")
	if err != nil {
		return err
	}
	// hooked is a round of a container whose hooks run bin with args.
	hooked := func(tag, bin string, args []string, start, rm *series) func(int) (time.Duration, error) {
		return func(i int) (time.Duration, error) {
			id := fmt.Sprintf("%s%d", tag, i+1)
			opts := []oci.SpecOpts{
				spec.WithHooks(bin, args...),
				spec.WithRequest(sandbox.Request{Name: id, Ports: []portmap.Mapping{mapping}}),
				spec.WithEtcFiles(cfg),
			}
			get := func(uint32) error {
				return waitHTTP(b.ctx, &http.Client{}, fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
			}
			var into, rmInto *series
			if i >= 0 {
				into, rmInto = start, rm
			}
			return 0, run(id, opts, get, into, rmInto)
		}
	}
	// bareRound is a round of the container without a network, asked from
	// inside its namespace.
	bareRound := func(tag string, start, rm *series) func(int) (time.Duration, error) {
		return func(i int) (time.Duration, error) {
			id := fmt.Sprintf("%s%d", tag, i+1)
			get := func(pid uint32) error {
				nsPath := "/proc/" + strconv.Itoa(int(pid)) + "/ns/net"
				dial := func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
					err = inNetNS(nsPath, func() error {
						conn, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
						return err
					})
					return conn, err
				}
				return waitHTTP(b.ctx, &http.Client{Transport: &http.Transport{DialContext: dial}}, "http://127.0.0.1:80/")
			}
			var into, rmInto *series
			if i >= 0 {
				into, rmInto = start, rm
			}
			return 0, run(id, nil, get, into, rmInto)
		}
	}
	withHook := hooked("hook", ocictl, hookArgs, &startHook, &rmHook)
	withLean := hooked("lean", lean, cfg.Args(), &startLean, &rmLean)
	// The same, with the network's DNS responder stopped before each
	// round: the first container of a network, or one that comes after
	// the responder's linger (2 s), starts it too.
	leanCold := hooked("cold", lean, cfg.Args(), &startCold, &rmCold)
	withLeanCold := func(i int) (time.Duration, error) {
		if err := dns.Stop(b.stateDir, ocinet.DefaultNetworkName); err != nil {
			return 0, err
		}
		return leanCold(i)
	}
	bare := bareRound("bare", &startBare, &rmBare)
	var startBare2, rmBare2, startBare3, rmBare3 series
	// One untimed round of each first.
	if _, _, err := interleave(1, b.stopped, func(int) (time.Duration, error) { return withHook(-1) },
		func(int) (time.Duration, error) { return bare(-1) }); err != nil {
		return err
	}
	_, _, err = interleave(b.n, b.stopped, withHook, bare)
	if err == nil {
		_, _, err = interleave(b.n, b.stopped, withLean, bareRound("bare-lean", &startBare2, &rmBare2))
	}
	if err == nil {
		_, _, err = interleave(b.n, b.stopped, withLeanCold, bareRound("bare-cold", &startBare3, &rmBare3))
	}
	if len(startHook) > 0 && len(startBare) > 0 {
		// The poststop hook must have detached every container.
		left := 0
		if list, lerr := m.List(); lerr == nil {
			for _, a := range list {
				if strings.HasPrefix(a.ID, ctdNamespace+"-hook") {
					left++
				}
			}
		}
		b.report.add(
			newRow("container", "start to first answer, hook mode, -p 127.0.0.1", startHook).
				againstPaired("same container, no network", startHook, startBare).goal(1.3),
			newRow("container", "remove (kill, delete task and container)", rmHook).
				againstPaired("same container, no network", rmHook, rmBare).goal(1.5).
				note("attachments left after poststop: %d", left).field("attachments_left", left))
		if len(startLean) > 0 && len(startBare2) > 0 {
			b.report.add(
				newRow("container", "start to first answer, hook mode through ocinet-hook", startLean).
					againstPaired("same container, no network", startLean, startBare2).goal(1.3),
				newRow("container", "remove, hook mode through ocinet-hook", rmLean).
					againstPaired("same container, no network", rmLean, rmBare2).goal(1.5))
		}
		if len(startCold) > 0 && len(startBare3) > 0 {
			b.report.add(
				newRow("container", "start to first answer, ocinet-hook, DNS responder not running", startCold).
					againstPaired("same container, no network", startCold, startBare3).
					note("the hook starts the network's responder; above, it is still running from the container before (its linger)"))
		}
	}
	return err
}

// containerd builds ocictl, starts the run's private containerd (once) and
// makes the busybox root file system its containers run from (once); it
// returns ocictl's path, the daemon's address and the root file system's
// directory.
func (b *bench) containerd() (ocictl, address, rootfs string, err error) {
	if ocictl, err = b.build("./examples/ocictl", ""); err != nil {
		return "", "", "", err
	}
	b.ctdOnce.Do(func() {
		for _, bin := range []string{"containerd", "containerd-shim-runc-v2"} {
			if _, err := os.Stat(filepath.Join("/opt/ocinet/bin", bin)); err != nil {
				b.ctdErr = fmt.Errorf("needs %s in /opt/ocinet/bin (scripts/install.sh): %w", bin, err)
				return
			}
		}
		b.rootfs = filepath.Join(b.work, "rootfs")
		if out, err := exec.Command("bash", filepath.Join(b.repo, "scripts", "rootfs.sh"), b.rootfs).CombinedOutput(); err != nil {
			b.ctdErr = fmt.Errorf("rootfs: %v: %s", err, out)
			return
		}
		ctdDir := filepath.Join(b.work, "ctd")
		script := filepath.Join(b.repo, "scripts", "containerd.sh")
		b.clean.add("private containerd", func() error {
			if out, err := exec.Command("bash", script, "stop", ctdDir).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		out, err := exec.Command("bash", script, "start", ctdDir).Output()
		if err != nil {
			b.ctdErr = fmt.Errorf("start containerd: %v", err)
			return
		}
		b.ctdAddress = strings.TrimSpace(string(out))
	})
	return ocictl, b.ctdAddress, b.rootfs, b.ctdErr
}

// waitHTTP asks url until it answers 200, every 2 ms, for at most 30 s.
func waitHTTP(ctx context.Context, client *http.Client, url string) error {
	client.Timeout = time.Second
	if t, ok := client.Transport.(*http.Transport); ok {
		t.DisableKeepAlives = true
	} else {
		client.Transport = &http.Transport{DisableKeepAlives: true}
	}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("GET %s: no answer within 30 s: %v", url, last)
}

// removeContainer kills and deletes the task (runc then runs the poststop
// hook, which detaches), deletes the container, and removes its files as
// ocictl rm does.
func removeContainer(c containerd.Container, store interface{ Remove(string) error }, cfg hook.Config, id string) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ctdNamespace), 60*time.Second)
	defer cancel()
	var errs []error
	if task, err := c.Task(ctx, nil); err == nil {
		if wait, err := task.Wait(ctx); err == nil {
			if err := task.Kill(ctx, syscall.SIGKILL); err == nil {
				select {
				case <-wait:
				case <-ctx.Done():
				}
			}
		}
		if _, err := task.Delete(ctx); err != nil {
			errs = append(errs, fmt.Errorf("delete task %s: %w", id, err))
		}
	}
	if err := c.Delete(ctx); err != nil {
		errs = append(errs, fmt.Errorf("delete container %s: %w", id, err))
	}
	if err := store.Remove(id); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(cfg.ContainerDir(id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
