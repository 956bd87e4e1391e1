// Command pid-path-plugin shows netns.Hold, for CNI plugins that accept
// only /proc/<pid>/ns/net as the container's namespace (the contiv plugin is
// one). containerd's CRI plugin hands plugins a named namespace such as
// /var/run/netns/cni-...; such a plugin fails with "invalid nw name space".
// Hold starts a small process that joins the named namespace and hands out
// its /proc/<pid>/ns/net path instead.
//
// The program makes a named namespace, attaches it through an ocinet
// Manager to a network whose only plugin is such a plugin ("pid-only",
// built from ./plugin): first with the named path, which fails, then with
// the path Hold gives, which works; then it detaches and removes
// everything. Run as root:
//
//	go build -o /tmp/pid-only-plugins/pid-only ./examples/pid-path-plugin/plugin
//	go run ./examples/pid-path-plugin --plugin-dir /tmp/pid-only-plugins
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/netns"
)

const conflist = `{"cniVersion":"1.0.0","name":"pid-only","plugins":[{"type":"pid-only"}]}`

func main() {
	ocinet.RunHelper() // ocinet's helper processes are this program started again
	pluginDir := flag.String("plugin-dir", "", "directory holding the pid-only plugin (required)")
	cniPath := flag.String("cni-path", "/opt/ocinet/cni/bin", "directory of the standard plugins (loopback)")
	flag.Parse()
	if *pluginDir == "" {
		fmt.Fprintln(os.Stderr, "pid-path-plugin: --plugin-dir is required")
		os.Exit(2)
	}
	if err := run(context.Background(), *pluginDir, *cniPath); err != nil {
		fmt.Fprintln(os.Stderr, "pid-path-plugin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, pluginDir, cniPath string) (err error) {
	work, err := os.MkdirTemp("", "pid-path-plugin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	confDir := filepath.Join(work, "net.d")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(confDir, "pid-only.conflist"), []byte(conflist), 0o600); err != nil {
		return err
	}
	m, err := ocinet.New(filepath.Join(work, "state"), ocinet.WithCNIConfDir(confDir), ocinet.WithPluginDirs(pluginDir, cniPath))
	if err != nil {
		return err
	}

	path, err := netns.Create("", "")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, netns.Remove(path)) }()
	fmt.Println("created namespace", path)

	req := ocinet.AttachRequest{ID: "pid-path-demo", NetNS: path, Networks: []string{"pid-only"}}
	if _, err := m.Attach(ctx, req); err == nil {
		return errors.New("the plugin accepted a named namespace path")
	} else {
		fmt.Println("attach with the named path:", err)
	}

	held, release, err := netns.Hold(ctx, path)
	if err != nil {
		return err
	}
	defer release()
	req.NetNS = held
	a, err := m.Attach(ctx, req)
	if err != nil {
		return err
	}
	fmt.Printf("attached through %s: interfaces %d\n", held, len(a.Interfaces))
	if err := m.Detach(ctx, req.ID); err != nil {
		return err
	}
	fmt.Println("detached")
	return nil
}
