// Command runc-bundle shows ocinet in a hand-made runtime's path, with no
// containerd at all: it writes an OCI bundle (a busybox root file system and
// a config.json carrying ocinet's hooks), runs it with plain `runc run`,
// fetches the container's web page through a published port, and deletes
// it, which makes runc run the poststop hook.
//
// The hooks run this same binary: `runc-bundle [flags] hook EVENT`.
//
// Run as root, with runc and the CNI plugins installed (scripts/install.sh):
//
//	go build -o /tmp/runc-bundle ./examples/runc-bundle
//	scripts/rootfs.sh /tmp/rootfs
//	/tmp/runc-bundle --rootfs /tmp/rootfs --publish 127.0.0.1:18120:80
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ocinet/ocinet"

	"github.com/containerd/containerd/v2/core/containers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ocinet/ocinet/hook"
	hookspec "github.com/ocinet/ocinet/hook/spec"
	"github.com/ocinet/ocinet/internal/httpget"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

type config struct {
	state, netconf, cniPath, rootfs, publish, id string
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.state, "state", "/var/lib/ocinet-runc-bundle", "ocinet state root")
	fs.StringVar(&c.netconf, "cni-netconfpath", "/etc/cni/net.d", "CNI conflist directory")
	fs.StringVar(&c.cniPath, "cni-path", "/opt/ocinet/cni/bin", "CNI plugin directory")
	fs.StringVar(&c.rootfs, "rootfs", "", "busybox root file system (scripts/rootfs.sh)")
	fs.StringVar(&c.publish, "publish", "127.0.0.1:18120:80", "port to publish, in the -p grammar")
	fs.StringVar(&c.id, "id", "bundle-web", "container ID")
}

func (c *config) hookConfig() hook.Config {
	// The "namespace" is only a label here: there is no containerd.
	return hook.Config{StateDir: c.state, CNIConfDir: c.netconf, PluginDirs: []string{c.cniPath}, Namespace: "runc"}
}

func main() {
	ocinet.RunHelper() // ocinet's helper processes are this program started again
	var c config
	fs := flag.NewFlagSet("runc-bundle", flag.ExitOnError)
	c.flags(fs)
	_ = fs.Parse(os.Args[1:])
	if args := fs.Args(); len(args) == 2 && args[0] == "hook" {
		if err := hook.Run(context.Background(), args[1], os.Stdin, os.Stderr, c.hookConfig()); err != nil {
			os.Exit(1)
		}
		return
	}
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "runc-bundle:", err)
		os.Exit(1)
	}
}

func run(c *config) (err error) {
	if c.rootfs == "" {
		return errors.New("--rootfs is required")
	}
	mapping, err := portmap.Parse(c.publish)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "runc-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bundle, runcRoot := filepath.Join(work, "bundle"), filepath.Join(work, "runc")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return err
	}
	runc := func(args ...string) error {
		out, err := exec.Command("runc", append([]string{"--root", runcRoot}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("runc %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}

	// runc's own default spec, then the container's process and ocinet.
	if err := runc("spec", "--bundle", bundle); err != nil {
		return err
	}
	spec, err := readSpec(bundle)
	if err != nil {
		return err
	}
	root, err := filepath.Abs(c.rootfs)
	if err != nil {
		return err
	}
	spec.Root = &specs.Root{Path: root}
	spec.Hostname = c.id
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/bin/httpd", "-f", "-p", "80", "-h", "/www"}
	hookArgs := []string{"--state=" + c.state, "--cni-netconfpath=" + c.netconf, "--cni-path=" + c.cniPath, "hook"}
	cfg := c.hookConfig()
	for _, opt := range []func() error{
		func() error {
			return hookspec.WithHooks(exe, hookArgs...)(context.Background(), nil, &containers.Container{ID: c.id}, spec)
		},
		func() error {
			return hookspec.WithRequest(sandbox.Request{Name: c.id, Ports: []portmap.Mapping{mapping}})(context.Background(), nil, &containers.Container{ID: c.id}, spec)
		},
		func() error {
			return hookspec.WithEtcFiles(cfg)(context.Background(), nil, &containers.Container{ID: c.id}, spec)
		},
	} {
		if err := opt(); err != nil {
			return err
		}
	}
	if err := writeSpec(bundle, spec); err != nil {
		return err
	}
	defer removeEtcFiles(cfg, c.id)

	fmt.Printf("runc run -d %s (createRuntime hook: %s ... hook createRuntime)\n", c.id, exe)
	// The container inherits runc's standard streams: give it a file, not
	// a pipe that would stay open as long as the container runs.
	logPath := filepath.Join(work, "run.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command("runc", "--root", runcRoot, "run", "-d", "--bundle", bundle, c.id)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Run()
	logf.Close()
	if err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("runc run: %v: %s", err, out)
	}
	defer func() {
		_ = runc("kill", c.id, "KILL")
		for i := 0; i < 100; i++ {
			if out, _ := exec.Command("runc", "--root", runcRoot, "state", c.id).Output(); !strings.Contains(string(out), `"running"`) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Printf("runc delete %s (poststop hook)\n", c.id)
		if derr := runc("delete", "--force", c.id); derr != nil && err == nil {
			err = derr
		}
	}()

	host := strings.TrimSuffix(c.publish, ":80")
	url := "http://" + host + "/"
	body, err := httpget.Get(url)
	if err != nil {
		return err
	}
	fmt.Printf("GET %s: %s", url, body)
	return nil
}

func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	return &s, json.Unmarshal(b, &s)
}

func writeSpec(bundle string, s *specs.Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
}

func removeEtcFiles(cfg hook.Config, id string) {
	if store, err := cfg.HostsStore(); err == nil {
		_ = store.Remove(id)
	}
	_ = os.RemoveAll(cfg.ContainerDir(id))
}
