// Package testenv gives the project's tests what they need from the host:
// root, tools, the pinned CNI plugins, a private containerd, a busybox root
// file system and the ocictl binary. A test that lacks one skips with the
// reason; under CI=true it fails instead, because CI installs everything.
package testenv

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/nftfw"
)

// Prefix is where scripts/install.sh puts containerd and the CNI plugins.
const Prefix = "/opt/ocinet"

// PluginDir is where scripts/install.sh puts the CNI plugins.
const PluginDir = Prefix + "/cni/bin"

// InCI reports whether the tests run in CI, where a missing prerequisite is
// a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with reason, or fails it under CI=true.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or, in CI, fails) a test that is not running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (network namespaces, iptables, containerd)")
	}
}

// RequireTools skips (or fails) unless every named program is on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Skip(t, fmt.Sprintf("needs %s on PATH (run scripts/install.sh)", tool))
		}
	}
}

// RequirePlugins skips (or fails) unless the pinned CNI plugins are
// installed, and returns their directory.
func RequirePlugins(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "iptables", "ip")
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap", "firewall", "tuning"} {
		if _, err := os.Stat(filepath.Join(PluginDir, p)); err != nil {
			Skip(t, fmt.Sprintf("needs the CNI plugin %s in %s (run scripts/install.sh)", p, PluginDir))
		}
	}
	return PluginDir
}

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Containerd starts a private containerd (scripts/containerd.sh) whose
// config, root, state and socket live in a fresh directory, stops it when
// the test ends, and returns its socket address.
func Containerd(t testing.TB) string {
	t.Helper()
	return CrashableContainerd(t).Address
}

var shared struct {
	sync.Mutex
	dir, addr string
}

// SharedContainerd returns the socket of a private containerd shared by the
// tests of this process, starting it on first use; CleanupBuilds stops it.
// Tests that share it must remove their containers themselves (the leak
// check shows it when they do not).
func SharedContainerd(t testing.TB) string {
	t.Helper()
	requireContainerd(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.addr == "" {
		dir, addr, err := startContainerd()
		if err != nil {
			t.Fatal(err)
		}
		shared.dir, shared.addr = dir, addr
	}
	return shared.addr
}

func requireContainerd(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(Prefix, "bin", bin)); err != nil {
			Skip(t, fmt.Sprintf("needs %s in %s/bin (run scripts/install.sh)", bin, Prefix))
		}
	}
	RequireTools(t, "runc")
}

func startContainerd() (dir, addr string, err error) {
	// Socket paths are limited to 108 bytes: keep the directory short.
	dir, err = os.MkdirTemp("/tmp", "ocinet-ctd-")
	if err != nil {
		return "", "", err
	}
	script := filepath.Join(RepoRoot(), "scripts", "containerd.sh")
	out, err := exec.Command("bash", script, "start", dir).Output()
	if err != nil {
		_ = exec.Command("bash", script, "stop", dir).Run()
		return "", "", fmt.Errorf("start containerd: %v", exitErr(err))
	}
	return dir, strings.TrimSpace(string(out)), nil
}

func stopContainerd(dir string) error {
	script := filepath.Join(RepoRoot(), "scripts", "containerd.sh")
	if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("stop containerd: %v: %s", err, out)
	}
	return nil
}

// Rootfs makes a busybox root file system (scripts/rootfs.sh) in the test's
// temporary directory and returns its path.
func Rootfs(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		Skip(t, "needs busybox-static (run scripts/install.sh)")
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	script := filepath.Join(RepoRoot(), "scripts", "rootfs.sh")
	if out, err := exec.Command("bash", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("make rootfs: %v: %s", err, out)
	}
	return dir
}

var (
	buildMu   sync.Mutex
	buildDirs = map[string]string{}
)

// Build compiles the package at pkg (relative to the repository, like
// "./examples/ocictl") once per test process and returns the binary's path.
// Binaries are static (CGO_ENABLED=0), so they also run inside a busybox
// root file system.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildDirs[pkg]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "ocinet-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	buildDirs[pkg] = bin
	return bin
}

// CleanupBuilds removes the binaries Build made and stops the shared
// containerd; call it from TestMain.
func CleanupBuilds() {
	buildMu.Lock()
	for _, bin := range buildDirs {
		os.RemoveAll(filepath.Dir(bin))
	}
	buildMu.Unlock()
	shared.Lock()
	defer shared.Unlock()
	if shared.dir != "" {
		if err := stopContainerd(shared.dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		shared.dir, shared.addr = "", ""
	}
}

func exitErr(err error) error {
	if ee, ok := err.(*exec.ExitError); ok {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// RemoveLinkAtEnd deletes the link called name when the test ends, if it did
// not exist when this was called: a bridge made by the test's network lives
// as long as that network, and the test owns it. The firewall plugin's
// isolation rules that name it go with it, as with RemoveNetwork.
func RemoveLinkAtEnd(t testing.TB, name string) {
	t.Helper()
	if exec.Command("ip", "link", "show", name).Run() == nil {
		return
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", name).Run()
		if _, err := nftfw.RemoveBridge(name); err != nil {
			t.Errorf("remove isolation rules of %s: %v", name, err)
		}
		if err := inproc.RemoveBridge(name); err != nil {
			t.Errorf("remove the native datapath's state of %s: %v", name, err)
		}
	})
}

// CopyTree copies the directory src (files and directories only) into dst.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// DatapathEnv names the environment variable that picks the datapath the
// integration suites run under ("auto", "native" or "plugins"; empty: the
// library's default). scripts/test.sh runs them under each.
const DatapathEnv = "OCINET_TEST_DATAPATH"

// Datapath returns the datapath the suites run under, "" for the default.
func Datapath() string { return os.Getenv(DatapathEnv) }
