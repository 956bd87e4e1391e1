package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hook/spec"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// labelName marks containers made by ocictl.
const labelName = "ocinet/name"

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func connect(ctx context.Context, g *globals) (*containerd.Client, context.Context, error) {
	client, err := containerd.New(g.address, containerd.WithDefaultNamespace(g.hookConfig.Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to containerd at %s: %w", g.address, err)
	}
	return client, namespaces.WithNamespace(ctx, g.hookConfig.Namespace), nil
}

func cmdRun(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	detach := fs.Bool("d", false, "run in the background and print the container's name")
	name := fs.String("name", "", "container name (required)")
	rootfs := fs.String("rootfs", "", "root file system directory (required)")
	hostname := fs.String("hostname", "", "host name (default: the name)")
	mode := fs.String("netns-mode", modeHook, "how the container gets its network: hook (an OCI hook attaches it, as nerdctl does), precreate (a named namespace is attached before the container starts, as containerd's CRI plugin does) or task (the created task's namespace is attached before it starts)")
	autoRemove := fs.Bool("rm", false, "remove the container when it exits (without -d)")
	ip := fs.String("ip", "", "IPv4 address on the first network")
	ip6 := fs.String("ip6", "", "IPv6 address on the first network")
	mac := fs.String("mac-address", "", "MAC address on the first network")
	var publish, networks, addHosts, dns, dnsSearch, dnsOpts, aliases listFlag
	fs.Var(&publish, "p", "publish a port: [IP:][HOSTPORT:]CONTAINERPORT[/PROTO] (repeatable)")
	fs.Var(&networks, "network", "network to attach (repeatable; default: bridge), or alone: none (loopback only), host (the host's network) or container:NAME (NAME's network)")
	fs.Var(&addHosts, "add-host", "extra /etc/hosts entry NAME:IP, NAME=IP or NAME:host-gateway, listed before the containers' own names and winning over them (repeatable)")
	fs.Var(&dns, "dns", "DNS server (repeatable)")
	fs.Var(&dnsSearch, "dns-search", "DNS search domain (repeatable)")
	fs.Var(&dnsOpts, "dns-option", "DNS option (repeatable)")
	fs.Var(&aliases, "network-alias", "another name of the container on its networks, answered by their DNS responders (repeatable)")
	if err := fs.Parse(args); err != nil {
		return errSilent
	}
	cmdArgs := fs.Args()
	if *name == "" || *rootfs == "" || len(cmdArgs) == 0 {
		return errors.New("usage: ocictl run [-d] --name NAME [-p SPEC]... --rootfs DIR -- CMD...")
	}
	// Everything is validated before anything is created.
	if err := hosts.ValidateName(*name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	// --network container:NAME shares NAME's network and files: nothing
	// of the container's own network can be asked for.
	var join string
	for _, n := range networks {
		t, ok := strings.CutPrefix(n, "container:")
		if !ok {
			continue
		}
		if err := hook.ValidateContainerID(t); err != nil {
			return fmt.Errorf("--network %s: %w", n, err)
		}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"another --network", len(networks) > 1}, {"-p", len(publish) > 0}, {"--hostname", *hostname != ""},
			{"--add-host", len(addHosts) > 0}, {"--dns", len(dns) > 0}, {"--dns-search", len(dnsSearch) > 0},
			{"--dns-option", len(dnsOpts) > 0}, {"--network-alias", len(aliases) > 0},
			{"--ip", *ip != ""}, {"--ip6", *ip6 != ""}, {"--mac-address", *mac != ""},
		} {
			if f.set {
				return fmt.Errorf("--network %s: %s cannot be combined with it: the container shares the network, host name and files of %s: %w", n, f.name, t, ocinet.ErrInvalid)
			}
		}
		join, networks = t, nil
	}
	req := sandbox.Request{Networks: networks, Name: *name, Hostname: *hostname, Aliases: aliases}
	for _, n := range networks {
		if m, ok := sandbox.ParseMode(n); ok {
			if len(networks) > 1 {
				return fmt.Errorf("--network %s: cannot be combined with other networks: %w", n, ocinet.ErrInvalid)
			}
			req.Mode, req.Networks = m, nil
		}
	}
	if req.Hostname == "" {
		req.Hostname = *name
		if req.Mode == sandbox.ModeHost {
			// As docker and nerdctl: the host's own name.
			h, err := os.Hostname()
			if err != nil {
				return err
			}
			req.Hostname = h
		}
	}
	for _, e := range addHosts {
		h, err := hosts.ParseExtraHost(e)
		if err != nil {
			return fmt.Errorf("--add-host: %w", err)
		}
		req.ExtraHosts = append(req.ExtraHosts, h)
	}
	for _, d := range dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return fmt.Errorf("--dns %q: not an IP address: %w", d, ocinet.ErrInvalid)
		}
		req.DNS.Servers = append(req.DNS.Servers, a)
	}
	req.DNS.Search, req.DNS.Options = dnsSearch, dnsOpts
	if *ip != "" || *ip6 != "" || *mac != "" {
		first := ocinet.DefaultNetworkName
		if len(networks) > 0 {
			first = networks[0]
		}
		st := sandbox.Static{Network: first}
		for _, f := range [][2]string{{"--ip", *ip}, {"--ip6", *ip6}} {
			if f[1] == "" {
				continue
			}
			addr, err := netip.ParseAddr(f[1])
			if err != nil {
				return fmt.Errorf("%s %q: not an IP address: %w", f[0], f[1], ocinet.ErrInvalid)
			}
			st.IPs = append(st.IPs, addr)
		}
		if *mac != "" {
			hw, err := net.ParseMAC(*mac)
			if err != nil {
				return fmt.Errorf("--mac-address %q: %w", *mac, ocinet.ErrInvalid)
			}
			st.MAC = hw
		}
		req.Static = []sandbox.Static{st}
	}
	for _, spec := range publish {
		m, err := portmap.Parse(spec)
		if err != nil {
			return fmt.Errorf("-p: %w", err)
		}
		req.Ports = append(req.Ports, m)
	}
	if err := req.Validate(); err != nil {
		return err
	}
	root, err := filepath.Abs(*rootfs)
	if err != nil {
		return err
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return fmt.Errorf("--rootfs %s: not a directory", root)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the hook: %w", err)
	}

	client, ctx, err := connect(ctx, g)
	if err != nil {
		return err
	}
	defer client.Close()
	return runContainer(ctx, client, g, runOptions{
		name: *name, rootfs: root, args: cmdArgs, req: req, mode: *mode,
		detach: *detach, remove: *autoRemove, exe: exe, join: join,
	})
}

// Network modes: the three moments a container can get its network.
const (
	modeHook      = "hook"      // an OCI hook attaches it (nerdctl)
	modePrecreate = "precreate" // a named namespace is attached first (containerd's CRI plugin)
	modeTask      = "task"      // the created task's namespace is attached before start
)

// modeContainer is the label of a container that shares another's network
// (--network container:NAME): nothing is attached for it.
const modeContainer = "container"

// labelNetwork records the --network mode of a container on no network of
// its own (none, host, container:NAME), for inspect.
const labelNetwork = "ocinet/network-mode"

// labelMode records a container's network mode, for rm.
const labelMode = "ocinet/netns-mode"

type runOptions struct {
	name, rootfs, mode, exe string
	// join is the container whose network this one shares (--network
	// container:NAME); "" for a network of its own.
	join           string
	args           []string
	req            sandbox.Request
	detach, remove bool
}

func runContainer(ctx context.Context, client *containerd.Client, g *globals, o runOptions) (err error) {
	cfg := g.hookConfig
	// undo collects what to tear down if a later step fails, last first.
	var undo []func(context.Context)
	defer func() {
		if err == nil {
			return
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](uctx)
		}
	}()
	// attachNS attaches the namespace just made or pinned at path, and
	// arranges for both to be undone if a later step fails.
	attachNS := func(path string, err error) error {
		if err != nil {
			return err
		}
		if path != "" {
			undo = append(undo, func(context.Context) { _ = netns.Remove(path) })
		}
		if _, err := sandbox.Attach(ctx, cfg, o.name, path, o.req); err != nil {
			return err
		}
		undo = append(undo, func(uctx context.Context) { _ = sandbox.Detach(uctx, cfg, o.name) })
		return nil
	}

	specOpts := []oci.SpecOpts{
		oci.WithRootFSPath(o.rootfs),
		oci.WithProcessArgs(o.args...),
		oci.WithHostname(o.req.Hostname),
		spec.WithEtcFiles(cfg),
	}
	onHost := o.req.Mode == sandbox.ModeHost
	mode := o.mode
	if o.join != "" {
		opts, err := joinOpts(ctx, client, cfg, o)
		if err != nil {
			return err
		}
		specOpts, mode = opts, modeContainer
	}
	switch mode {
	case modeContainer:
		if o.join == "" {
			return fmt.Errorf("--netns-mode %q: want hook, precreate or task", o.mode)
		}
	case modeHook:
		hooks := spec.WithHooks(o.exe, append(g.args(), "internal", "oci-hook")...)
		if g.hookBinary != "" {
			hooks = spec.WithHooks(g.hookBinary, cfg.Args()...)
		}
		specOpts = append(specOpts, hooks, spec.WithRequest(o.req))
	case modePrecreate:
		if onHost {
			// No namespace to make: the container is on the host's.
			if err := attachNS("", nil); err != nil {
				return err
			}
			break
		}
		path, err := netns.Create(cfg.NetNSDir, filepath.Base(cfg.PinPath(o.name)))
		if err := attachNS(path, err); err != nil {
			return err
		}
		specOpts = append(specOpts, spec.WithNetNSPath(path))
	case modeTask:
	default:
		return fmt.Errorf("--netns-mode %q: want hook, precreate or task", o.mode)
	}

	if onHost {
		specOpts = append(specOpts, spec.WithNetworkMode(sandbox.ModeHost))
	}
	container, err := client.NewContainer(ctx, o.name,
		containerd.WithRuntime("io.containerd.runc.v2", nil),
		containerd.WithContainerLabels(o.labels(mode)),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		return fmt.Errorf("create container %s: %w", o.name, err)
	}
	undo = append(undo, func(uctx context.Context) {
		_ = container.Delete(uctx)
		removeFiles(g, o.name)
	})
	logPath := filepath.Join(cfg.ContainerDir(o.name), "output.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return err
	}
	var creator cio.Creator = cio.LogFile(logPath)
	if !o.detach {
		creator = cio.NewCreator(cio.WithStdio)
	}
	task, err := container.NewTask(ctx, creator)
	if err != nil {
		return fmt.Errorf("start container %s: %s", o.name, hookMessage(err))
	}
	undo = append(undo, func(uctx context.Context) { _, _ = task.Delete(uctx, containerd.WithProcessKill) })
	if mode == modeTask {
		// The task is created, not started: its process sits in its new
		// namespace (or the host's); pin that namespace and attach it now.
		path, err := "", error(nil)
		if !onHost {
			path, err = netns.Pin(cfg.NetNSDir, filepath.Base(cfg.PinPath(o.name)), int(task.Pid()))
		}
		if err := attachNS(path, err); err != nil {
			return err
		}
	}
	var exitCh <-chan containerd.ExitStatus
	if !o.detach {
		if exitCh, err = task.Wait(ctx); err != nil {
			return err
		}
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start container %s: %w", o.name, err)
	}
	if o.detach {
		fmt.Println(o.name)
		return nil
	}
	st := <-exitCh
	code, _, _ := st.Result()
	// Like a stopped docker container: the task goes, and with it the
	// network; the container stays unless --rm.
	if err := stopContainer(ctx, client, g, o.name, o.remove); err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("container %s exited with status %d", o.name, code)
	}
	return nil
}

// labels returns the container's labels; mode is its netns mode.
func (o runOptions) labels(mode string) map[string]string {
	l := map[string]string{labelName: o.name, labelMode: mode}
	switch {
	case o.join != "":
		l[labelNetwork] = "container:" + o.join
	case o.req.Mode != sandbox.ModeNetworks:
		l[labelNetwork] = string(o.req.Mode)
	}
	return l
}

// joinOpts returns the spec options of a container that shares the network
// of o.join, which must be running: its namespace (through its task's
// process), its host name and its hosts and resolv.conf files.
func joinOpts(ctx context.Context, client *containerd.Client, cfg hook.Config, o runOptions) ([]oci.SpecOpts, error) {
	target, err := client.LoadContainer(ctx, o.join)
	if err != nil {
		return nil, fmt.Errorf("--network container:%s: %w", o.join, err)
	}
	task, err := target.Task(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("--network container:%s: the container is not running: %w", o.join, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Status != containerd.Running {
		return nil, fmt.Errorf("--network container:%s: the container is %s, not running", o.join, st.Status)
	}
	ts, err := target.Spec(ctx)
	if err != nil {
		return nil, err
	}
	return []oci.SpecOpts{
		oci.WithRootFSPath(o.rootfs),
		oci.WithProcessArgs(o.args...),
		oci.WithHostname(ts.Hostname),
		spec.WithNetworkOf(cfg, o.join, "/proc/"+strconv.Itoa(int(task.Pid()))+"/ns/net"),
	}, nil
}

// hookMessage shortens the nested error containerd returns when a hook
// fails to the line the hook wrote.
func hookMessage(err error) string {
	s := err.Error()
	i := strings.Index(s, "ocinet hook ")
	if i < 0 {
		return s
	}
	s = s[i:]
	// The hook's line ends at its newline, which the layers above may
	// have escaped.
	for _, end := range []string{"\n", `\n`} {
		if j := strings.Index(s, end); j >= 0 {
			s = s[:j]
		}
	}
	return strings.ReplaceAll(s, `\"`, `"`)
}

func cmdPs(ctx context.Context, g *globals, args []string) error {
	if len(args) != 0 {
		return errors.New("usage: ocictl ps")
	}
	client, ctx, err := connect(ctx, g)
	if err != nil {
		return err
	}
	defer client.Close()
	mgr, err := g.hookConfig.Manager()
	if err != nil {
		return err
	}
	containers, err := client.Containers(ctx, `labels."`+labelName+`"`)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATUS\tIPS\tPORTS")
	for _, c := range containers {
		status := "stopped"
		if t, err := c.Task(ctx, nil); err == nil {
			if s, err := t.Status(ctx); err == nil {
				status = string(s.Status)
			}
		}
		var ips, ports []string
		if a, err := mgr.Get(g.hookConfig.AttachmentID(c.ID())); err == nil {
			for _, i := range a.Interfaces {
				for _, p := range i.IPs {
					ips = append(ips, p.Addr().String())
				}
			}
			for _, p := range a.Ports {
				ports = append(ports, portLine(p))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.ID(), status, strings.Join(ips, ","), strings.Join(ports, ", "))
	}
	return w.Flush()
}

func cmdPort(_ context.Context, g *globals, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: ocictl port NAME")
	}
	mgr, err := g.hookConfig.Manager()
	if err != nil {
		return err
	}
	a, err := mgr.Get(g.hookConfig.AttachmentID(args[0]))
	if errors.Is(err, ocinet.ErrNotFound) {
		return fmt.Errorf("container %s has no network attachment", args[0])
	}
	if err != nil {
		return err
	}
	for _, p := range a.Ports {
		fmt.Println(portLine(p))
	}
	return nil
}

// portLine prints a published port as `docker port` does: a mapping on
// every address shows as 0.0.0.0 (the default network is IPv4 only).
func portLine(p portmap.Port) string {
	if !p.HostIP.IsValid() {
		p.HostIP = netip.IPv4Unspecified()
	}
	return p.String()
}

func cmdRm(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	force := fs.Bool("f", false, "kill a running container first")
	if err := parseInterspersed(fs, args); err != nil {
		return errSilent
	}
	if fs.NArg() == 0 {
		return errors.New("usage: ocictl rm [-f] NAME...")
	}
	client, ctx, err := connect(ctx, g)
	if err != nil {
		return err
	}
	defer client.Close()
	var errs []error
	for _, name := range fs.Args() {
		if err := removeContainer(ctx, client, g, name, *force); err != nil {
			errs = append(errs, fmt.Errorf("rm %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func removeContainer(ctx context.Context, client *containerd.Client, g *globals, name string, force bool) error {
	c, err := client.LoadContainer(ctx, name)
	if errdefs.IsNotFound(err) {
		// containerd no longer knows it (a crash, another client removed
		// it): release what ocinet still holds of it.
		found, rerr := releaseLeftovers(ctx, g, name, true)
		if rerr != nil || found {
			return rerr
		}
	}
	if err != nil {
		return err
	}
	if task, err := c.Task(ctx, nil); err == nil {
		st, err := task.Status(ctx)
		if err != nil {
			return err
		}
		if st.Status == containerd.Running || st.Status == containerd.Paused {
			if !force {
				return errors.New("container is running; use -f to kill it")
			}
			wait, err := task.Wait(ctx)
			if err != nil {
				return err
			}
			if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
			select {
			case <-wait:
			case <-time.After(30 * time.Second):
				return errors.New("container did not stop within 30s of SIGKILL")
			}
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	return stopContainer(ctx, client, g, name, true)
}

// stopContainer deletes the stopped task of a container (in hook mode that
// runs the poststop hook), detaches it in the other modes, and, if remove,
// deletes the container and its files.
func stopContainer(ctx context.Context, client *containerd.Client, g *globals, name string, remove bool) error {
	cfg := g.hookConfig
	c, err := client.LoadContainer(ctx, name)
	if err != nil {
		return err
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return err
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	mgr, err := cfg.Manager()
	if err != nil {
		return err
	}
	if _, err := mgr.Get(cfg.AttachmentID(name)); err == nil {
		if m := labels[labelMode]; m == modeHook || m == "" {
			fmt.Fprintf(os.Stderr, "ocictl: %s: the poststop hook left the attachment; detaching now\n", name)
		}
		if err := sandbox.Detach(ctx, cfg, name); err != nil {
			return err
		}
	}
	if err := netns.Remove(cfg.PinPath(name)); err != nil {
		return err
	}
	if !remove {
		return nil
	}
	if err := c.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	removeFiles(g, name)
	return nil
}

// removeFiles removes a container's hosts record and files and its state
// directory.
func removeFiles(g *globals, name string) {
	if store, err := g.hookConfig.HostsStore(); err == nil {
		_ = store.Remove(name)
	}
	_ = os.RemoveAll(g.hookConfig.ContainerDir(name))
}
