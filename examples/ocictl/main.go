// Command ocictl is a small nerdctl-like CLI over ocinet and containerd: the
// program the demo and the end-to-end tests drive.
//
// It runs containers from a root file system directory (no images) with
// containerd's runc shim; their network comes from ocinet's OCI hook, which
// ocictl puts into every spec as nerdctl does: runc runs
// "ocictl [global flags] internal oci-hook createRuntime|poststop".
//
// Usage:
//
//	ocictl [global flags] run -d --name NAME [-p SPEC]... [--network NET]... --rootfs DIR -- CMD...
//	ocictl [global flags] ps
//	ocictl [global flags] port NAME
//	ocictl [global flags] rm [-f] NAME...
//	ocictl [global flags] gc
//
// Global flags: --address, --namespace, --data-root, --cni-path,
// --cni-netconfpath, --netns-dir, --hook-timeout, --dns-linger, --hook-binary,
// --datapath. Run as root
// against a containerd daemon; `make demo` starts a private one and shows
// every command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/netns"
)

// globals are the flags that come before the command. They are passed on to
// the hook, so that it works on the same state as the CLI.
type globals struct {
	address    string
	hookBinary string
	hookConfig hook.Config
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.address, "address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&g.hookBinary, "hook-binary", "", "run this hook binary (such as ocinet-hook) instead of ocictl itself")
	g.hookConfig = hook.Config{
		StateDir:   ocinet.DefaultStateDir,
		Namespace:  "default",
		PluginDirs: []string{"/opt/ocinet/cni/bin", ocinet.DefaultPluginDir},
		CNIConfDir: ocinet.DefaultCNIConfDir,
		NetNSDir:   netns.DefaultDir,
	}
	g.hookConfig.RegisterFlags(fs)
}

// args returns the global flags as arguments for the hook.
func (g *globals) args() []string {
	return append([]string{"--address=" + g.address}, g.hookConfig.Args()...)
}

func (g *globals) finish() error {
	c := g.hookConfig
	for _, p := range append([]string{c.StateDir, c.CNIConfDir, c.NetNSDir, g.hookBinary}, c.PluginDirs...) {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("%q: must be an absolute path", p)
		}
	}
	return nil
}

func main() {
	ocinet.RunHelper() // ocinet's helper processes are this program started again
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "ocictl:", err)
		}
		os.Exit(1)
	}
}

// errSilent is returned when the message was already printed.
var errSilent = errors.New("failed")

// parseInterspersed parses fs's flags wherever they stand among the
// arguments, as nerdctl's and docker's commands do (`network create NAME
// --subnet CIDR`, `rm NAME -f`); everything after a "--" is an argument.
// The arguments are left in fs.Args(), in order. `run` does not use it:
// there, what follows the first argument is the container's command.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	// Parse once more with no flags, so that fs.Args() holds them all.
	return fs.Parse(append([]string{"--"}, append(pos, tail...)...))
}

func usage() string {
	return `usage: ocictl [global flags] COMMAND [flags] [args]

commands:
  run -d --name NAME [-p SPEC]... [--network NET]... --rootfs DIR -- CMD...
  ps
  port NAME
  inspect NAME...       the network of containers as JSON: interfaces, addresses, MACs, ports, datapath
  rm [-f] NAME...
  gc
  network create|ls|inspect|rm ...

global flags: --address --namespace --data-root --cni-path --cni-netconfpath --netns-dir
              --hook-timeout --dns-linger --hook-binary --datapath auto|native|plugins`
}

func run(ctx context.Context, args []string) error {
	var g globals
	fs := flag.NewFlagSet("ocictl", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage()) }
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		return errSilent
	}
	if err := g.finish(); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return errors.New(usage())
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, &g, rest)
	case "ps":
		return cmdPs(ctx, &g, rest)
	case "port":
		return cmdPort(ctx, &g, rest)
	case "inspect":
		return cmdInspect(ctx, &g, rest)
	case "rm":
		return cmdRm(ctx, &g, rest)
	case "gc":
		return cmdGC(ctx, &g, rest)
	case "network":
		return cmdNetwork(ctx, &g, rest)
	case "internal":
		if len(rest) == 2 && rest[0] == "oci-hook" {
			if err := hook.Run(ctx, rest[1], os.Stdin, os.Stderr, g.hookConfig); err != nil {
				return errSilent
			}
			return nil
		}
		return errors.New("usage: ocictl internal oci-hook EVENT")
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage())
	}
}
