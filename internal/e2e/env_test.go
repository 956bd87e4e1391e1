package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/internal/httpget"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/ocinettest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBuilds()
	os.Exit(code)
}

// env is one test's world: a private containerd, state root and conf dir.
type env struct {
	t         *testing.T
	bin       string
	address   string
	state     string
	netconf   string
	pluginDir string
	rootfs    string
	// dnsLinger is ocictl's --dns-linger: short, so that a test's leak
	// check does not wait long for the responders of its networks; ""
	// leaves ocictl's default.
	dnsLinger string
}

// newEnv sets up an env whose plugins come from pluginDir ("" means the
// installed ones). Everything it makes is removed when the test ends, and a
// leak check then compares the host with how it was before.
func newEnv(t *testing.T, pluginDir string) *env {
	t.Helper()
	plugins := testenv.RequirePlugins(t)
	if pluginDir == "" {
		pluginDir = plugins
	}
	e := &env{t: t, state: t.TempDir(), netconf: t.TempDir(), pluginDir: pluginDir, dnsLinger: "100ms"}
	ocinettest.CheckLeaks(t, e.leakConfig())
	noUpstream(t, e.state)
	testenv.RemoveLinkAtEnd(t, ocinet.DefaultBridgeName)
	e.bin = testenv.Build(t, "./examples/ocictl")
	e.rootfs = testenv.Rootfs(t)
	e.address = testenv.SharedContainerd(t)
	return e
}

// leakConfig is what the env's leak check looks at: every test removes its
// containers, so their hosts files and log directories count too.
func (e *env) leakConfig() leakcheck.Config {
	return leakcheck.Config{StateDirs: []string{e.state}, IgnoreBridges: []string{ocinet.DefaultBridgeName}, ContainerFiles: true}
}

func (e *env) globalArgs() []string {
	args := []string{
		"--address=" + e.address,
		"--data-root=" + e.state,
		"--cni-netconfpath=" + e.netconf,
		"--cni-path=" + e.pluginDir,
	}
	if dp := testenv.Datapath(); dp != "" {
		args = append(args, "--datapath="+dp)
	}
	if e.dnsLinger != "" {
		args = append(args, "--dns-linger="+e.dnsLinger)
	}
	return args
}

// ocictl runs the CLI and returns its standard output and error.
func (e *env) ocictl(args ...string) (string, string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append(e.globalArgs(), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustOcictl runs the CLI and fails the test if it fails.
func (e *env) mustOcictl(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.ocictl(args...)
	if err != nil {
		e.t.Fatalf("ocictl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// run starts a detached container and removes it when the test ends.
func (e *env) run(name string, args ...string) {
	e.t.Helper()
	e.mustOcictl(append([]string{"run", "-d", "--name", name}, args...)...)
	e.t.Cleanup(func() {
		if _, errOut, err := e.ocictl("rm", "-f", name); err != nil && !strings.Contains(errOut, "not found") {
			e.t.Errorf("cleanup rm %s: %v: %s", name, err, errOut)
		}
	})
}

// httpd returns the arguments that run busybox's web server on port 80.
func (e *env) httpd() []string {
	return []string{"--rootfs", e.rootfs, "--", "/bin/httpd", "-f", "-p", "80", "-h", "/www"}
}

func (e *env) hookConfig() hook.Config {
	return hook.Config{StateDir: e.state, CNIConfDir: e.netconf, PluginDirs: []string{e.pluginDir}, Namespace: "default"}
}

// attachment returns the recorded attachment of a container of namespace
// default.
func (e *env) attachment(name string) *ocinet.Attachment {
	e.t.Helper()
	return e.attachmentIn("default", name)
}

// get fetches url, retrying while the server starts. Only loopback and
// addresses inside the test's own namespaces are fetched.
func get(t *testing.T, url string) string {
	t.Helper()
	body, err := httpget.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
