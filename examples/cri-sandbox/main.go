// Command cri-sandbox does what containerd's CRI plugin does for a pod
// (`kubectl run`), with ocinet and containerd's client: it creates a named
// network namespace first (a random cni-... name under /var/run/netns),
// attaches it to the default network, then starts a container that joins
// that namespace, fetches the container's page on its address, and tears
// everything down in the reverse order: container, CNI DEL, namespace.
//
// Run as root against a containerd daemon (scripts/containerd.sh starts a
// private one), with the CNI plugins installed (scripts/install.sh):
//
//	go build -o /tmp/cri-sandbox ./examples/cri-sandbox
//	scripts/rootfs.sh /tmp/rootfs
//	/tmp/cri-sandbox --address /run/containerd/containerd.sock --rootfs /tmp/rootfs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook/spec"
	"github.com/ocinet/ocinet/internal/httpget"
	"github.com/ocinet/ocinet/netns"
)

func main() {
	ocinet.RunHelper() // ocinet's helper processes are this program started again
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd socket")
	ns := flag.String("namespace", "cri-sandbox", "containerd namespace")
	state := flag.String("state", "/var/lib/ocinet-cri-sandbox", "ocinet state root")
	netconf := flag.String("cni-netconfpath", "/etc/cni/net.d", "CNI conflist directory")
	cniPath := flag.String("cni-path", "/opt/ocinet/cni/bin", "CNI plugin directory")
	rootfs := flag.String("rootfs", "", "busybox root file system (scripts/rootfs.sh)")
	name := flag.String("name", "sandbox", "container name")
	flag.Parse()
	if *rootfs == "" {
		fmt.Fprintln(os.Stderr, "cri-sandbox: --rootfs is required")
		os.Exit(2)
	}
	ctx := namespaces.WithNamespace(context.Background(), *ns)
	if err := run(ctx, *address, *state, *netconf, *cniPath, *rootfs, *name); err != nil {
		fmt.Fprintln(os.Stderr, "cri-sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, address, state, netconf, cniPath, rootfs, name string) (err error) {
	m, err := ocinet.New(state, ocinet.WithCNIConfDir(netconf), ocinet.WithPluginDirs(cniPath))
	if err != nil {
		return err
	}
	// 1. The sandbox's namespace, before any container exists.
	path, err := netns.Create("", "")
	if err != nil {
		return err
	}
	fmt.Println("created namespace", path)
	defer func() {
		err = errors.Join(err, netns.Remove(path))
		fmt.Println("removed namespace", path)
	}()

	// 2. Its network.
	att, err := m.Attach(ctx, ocinet.AttachRequest{ID: name, NetNS: path})
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, m.Detach(ctx, name))
		fmt.Println("detached", name)
	}()
	ip := att.Interfaces[0].IPs[0].Addr()
	fmt.Printf("attached %s: %s %s\n", name, att.Interfaces[0].Name, att.Interfaces[0].IPs[0])

	// 3. A container that joins the namespace.
	client, err := containerd.New(address)
	if err != nil {
		return err
	}
	defer client.Close()
	root, err := filepath.Abs(rootfs)
	if err != nil {
		return err
	}
	container, err := client.NewContainer(ctx, name,
		containerd.WithNewSpec(
			oci.WithRootFSPath(root),
			oci.WithProcessArgs("/bin/httpd", "-f", "-p", "80", "-h", "/www"),
			spec.WithNetNSPath(path),
		))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, container.Delete(context.WithoutCancel(ctx))) }()
	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	defer func() {
		_, derr := task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		err = errors.Join(err, derr)
	}()
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Start(ctx); err != nil {
		return err
	}
	defer func() {
		_ = task.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
		}
	}()

	// 4. The container answers on the sandbox's address.
	url := "http://" + ip.String() + "/"
	body, err := httpget.Get(url)
	if err != nil {
		return err
	}
	fmt.Printf("GET %s: %s", url, body)
	return nil
}
