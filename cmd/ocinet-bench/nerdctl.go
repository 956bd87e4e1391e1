package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocinet/ocinet/inproc"
)

// Names of what the nerdctl section makes; every one is removed at the end.
const (
	nerdctlNamespace = "ocibench-nerdctl" // containerd namespace of nerdctl's containers
	ocictlNamespace  = "ocibench-ocictl"  // and of ocictl's
	nerdctlBridge    = "ocibenchn0"       // nerdctl's default network
	ocictlBridge     = "ocibencho0"       // ocictl's
	nerdctlImage     = "docker.io/library/ocibench-httpd:latest"
)

// httpdArgs is the command both CLIs run: busybox httpd on port 80.
var httpdArgs = []string{"/bin/httpd", "-f", "-p", "80", "-h", "/www"}

// nerdctlSection: `ocictl run -d -p` to the first answer through the
// published port, and `ocictl rm -f`, against the same two commands of the
// nerdctl binary that NERDCTL names, interleaved, on the run's private
// containerd, each CLI with nerdctl's default network (the same conflist,
// on a bridge and subnet of its own) and the plugin binaries of the run.
// nerdctl runs an image made from the busybox root file system (imported
// once); ocictl runs the same files from the directory. Without NERDCTL
// the section is skipped with a line saying so.
func (b *bench) nerdctlSection() error {
	nerdctl := os.Getenv("NERDCTL")
	if nerdctl == "" {
		msg := "nerdctl: skipped: NERDCTL does not name a nerdctl binary (NERDCTL=/path/to/nerdctl make bench)"
		fmt.Fprintln(os.Stderr, "ocinet-bench: "+msg)
		b.report.notef("%s", msg)
		return nil
	}
	if !filepath.IsAbs(nerdctl) {
		return fmt.Errorf("NERDCTL=%s: want an absolute path", nerdctl)
	}
	out, err := exec.Command(nerdctl, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", nerdctl, err)
	}
	version := strings.TrimSpace(string(out))
	ocictl, address, rootfs, err := b.containerd()
	if err != nil {
		return err
	}

	// nerdctl's default network and ocictl's: the fixture nerdctl v2.3.5
	// writes, each on a bridge and subnet of its own.
	nerdNet, err := b.defaultNetworkDir("nerdctl-net.d", nerdctlBridge, "10.216.250.")
	if err != nil {
		return err
	}
	ocNet, err := b.defaultNetworkDir("ocictl-net.d", ocictlBridge, "10.216.251.")
	if err != nil {
		return err
	}
	nerdGlobals := []string{"--address", address, "--namespace", nerdctlNamespace,
		"--data-root", filepath.Join(b.work, "nerdctl-data"), "--cni-path", b.pluginDir,
		"--cni-netconfpath", nerdNet, "--cgroup-manager", "cgroupfs", "--snapshotter", "overlayfs"}
	ocState := filepath.Join(b.work, "ocictl-state")
	ocGlobals := []string{"--address", address, "--namespace", ocictlNamespace,
		"--data-root", ocState, "--cni-path", b.pluginDir, "--cni-netconfpath", ocNet, "--netns-dir", b.netnsDir}
	b.clean.add("nerdctl's and ocictl's networks", func() error {
		return errors.Join(b.removeBridge(nerdctlBridge), b.removeOcictlNetwork(ocNet), b.removeBridge(ocictlBridge))
	})
	if err := b.importImage(address, rootfs); err != nil {
		return err
	}

	var nerdStart, nerdRm, ocStart, ocRm series
	round := func(name string, bin string, globals, run []string, start, rm *series) func(int) (time.Duration, error) {
		return func(i int) (time.Duration, error) {
			port, err := freePort()
			if err != nil {
				return 0, err
			}
			id := fmt.Sprintf("%s%s%d", idPrefix, name, i+1)
			args := append(append(append([]string{}, globals...), "run", "-d", "--name", id, "-p", fmt.Sprintf("127.0.0.1:%d:80", port)), run...)
			remove := b.clean.add(name+" container "+id, func() error {
				return cli(bin, append(append([]string{}, globals...), "rm", "-f", id)...)
			})
			t0 := time.Now()
			if err := cli(bin, args...); err != nil {
				return 0, errors.Join(err, remove())
			}
			if err := waitHTTP(b.ctx, &http.Client{}, fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
				return 0, errors.Join(fmt.Errorf("%s %s: %w", name, id, err), remove())
			}
			t1 := time.Now()
			if err := remove(); err != nil {
				return 0, err
			}
			t2 := time.Now()
			if i >= 0 {
				*start, *rm = append(*start, t1.Sub(t0)), append(*rm, t2.Sub(t1))
			}
			return t2.Sub(t0), nil
		}
	}
	oc := round("ocictl", ocictl, ocGlobals, append([]string{"--rootfs", rootfs, "--"}, httpdArgs...), &ocStart, &ocRm)
	nerd := round("nerdctl", nerdctl, nerdGlobals, append([]string{nerdctlImage}, httpdArgs...), &nerdStart, &nerdRm)
	// One untimed round of each first: networks, bridges, the image's
	// snapshot.
	if _, _, err := interleave(1, b.stopped, func(int) (time.Duration, error) { return oc(-1) },
		func(int) (time.Duration, error) { return nerd(-1) }); err != nil {
		return err
	}
	_, _, err = interleave(b.n, b.stopped, oc, nerd)
	if len(ocStart) > 0 && len(nerdStart) > 0 {
		b.report.add(
			newRow("nerdctl", "ocictl run -d -p 127.0.0.1 to first answer", ocStart).
				againstPaired(version+": nerdctl run -d -p", ocStart, nerdStart),
			newRow("nerdctl", "ocictl rm -f", ocRm).againstPaired(version+": nerdctl rm -f", ocRm, nerdRm))
	}
	return err
}

// cli runs a command line of a CLI and returns its error with its output.
func cli(bin string, args ...string) error {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// defaultNetworkDir writes nerdctl v2.3.5's default network, with its
// bridge and its subnet's first three octets replaced, into a new
// directory of the run named dir.
func (b *bench) defaultNetworkDir(dir, bridge, prefix string) (string, error) {
	fixture, err := os.ReadFile(filepath.Join(b.repo, "testdata", "nerdctl-v2.3.5", "net.d", "nerdctl-bridge.conflist"))
	if err != nil {
		return "", err
	}
	conf := strings.ReplaceAll(strings.ReplaceAll(string(fixture), "nerdctl0", bridge), "10.4.0.", prefix)
	path := filepath.Join(b.work, dir)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(path, "nerdctl-bridge.conflist"), []byte(conf), 0o644)
}

// removeOcictlNetwork removes what the in-process datapath keeps for the
// network in dir (its masquerade rules), as the bench's own network's
// clean-up does.
func (b *bench) removeOcictlNetwork(dir string) error {
	conf, err := os.ReadFile(filepath.Join(dir, "nerdctl-bridge.conflist"))
	if err != nil {
		return err
	}
	fallback := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}}
	x, err := inproc.New(fallback, inproc.WithRuntimeDir(filepath.Join(b.work, "run-ocictl")))
	if err != nil {
		return err
	}
	return x.RemoveNetwork(context.Background(), conf)
}

// importImage imports the root file system as the image nerdctlImage into
// nerdctl's containerd namespace: an OCI archive of one uncompressed layer,
// written here.
func (b *bench) importImage(address, rootfs string) error {
	archive, err := ociArchive(rootfs, nerdctlImage)
	if err != nil {
		return fmt.Errorf("image of %s: %w", rootfs, err)
	}
	client, err := containerd.New(address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(b.ctx, nerdctlNamespace)
	if _, err := client.Import(ctx, bytes.NewReader(archive)); err != nil {
		return fmt.Errorf("import %s: %w", nerdctlImage, err)
	}
	return nil
}

// ociArchive returns an OCI image layout, as a tar archive, holding one
// image named name: the files under root as its one layer, and httpdArgs
// as its command.
func ociArchive(root, name string) ([]byte, error) {
	layer, err := tarDir(root)
	if err != nil {
		return nil, err
	}
	blobs := map[digest.Digest][]byte{}
	put := func(mediaType string, b []byte) imgv1.Descriptor {
		d := digest.FromBytes(b)
		blobs[d] = b
		return imgv1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	}
	layerDesc := put(imgv1.MediaTypeImageLayer, layer)
	config, err := json.Marshal(imgv1.Image{
		Platform: imgv1.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   imgv1.ImageConfig{Cmd: httpdArgs},
		RootFS:   imgv1.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	})
	if err != nil {
		return nil, err
	}
	manifest, err := json.Marshal(imgv1.Manifest{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: imgv1.MediaTypeImageManifest,
		Config:    put(imgv1.MediaTypeImageConfig, config),
		Layers:    []imgv1.Descriptor{layerDesc},
	})
	if err != nil {
		return nil, err
	}
	manifestDesc := put(imgv1.MediaTypeImageManifest, manifest)
	manifestDesc.Annotations = map[string]string{"io.containerd.image.name": name, imgv1.AnnotationRefName: "latest"}
	manifestDesc.Platform = &imgv1.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	index, err := json.Marshal(imgv1.Index{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: imgv1.MediaTypeImageIndex,
		Manifests: []imgv1.Descriptor{manifestDesc},
	})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	errs := []error{file(imgv1.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)), file("index.json", index)}
	for d, b := range blobs {
		errs = append(errs, file("blobs/sha256/"+d.Encoded(), b))
	}
	errs = append(errs, tw.Close())
	return buf.Bytes(), errors.Join(errs...)
}

// tarDir returns the files under root as a tar archive (regular files,
// directories and symbolic links, with their modes; owned by root).
func tarDir(root string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil // no devices or sockets in the image
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), 0, 0, "", ""
		if info.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
