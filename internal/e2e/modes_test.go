package e2e

import (
	"strings"
	"testing"

	"github.com/ocinet/ocinet/internal/testenv"
)

// TestModes runs a web server and a client that fetches it by name in each
// of the three ways a container gets its network: the OCI hook (nerdctl),
// a namespace attached before the container starts (containerd's CRI), and
// the created task's namespace attached before it starts.
func TestModes(t *testing.T) {
	e := newEnv(t, "")
	for i, mode := range []string{"hook", "precreate", "task"} {
		t.Run(mode, func(t *testing.T) {
			port := []string{"18091", "18092", "18093"}[i]
			web := "web-" + mode
			e.run(web, append([]string{"--netns-mode", mode, "-p", "127.0.0.1:" + port + ":80"}, e.httpd()...)...)
			if got := get(t, "http://127.0.0.1:"+port+"/"); got != page {
				t.Errorf("published port: got %q", got)
			}
			out := e.mustOcictl("run", "--rm", "--netns-mode", mode, "--name", "client-"+mode, "--rootfs", e.rootfs, "--", "/bin/wget", "-qO-", "http://"+web+"/")
			if out != page {
				t.Errorf("client fetching http://%s/: got %q", web, out)
			}
			e.mustOcictl("rm", "-f", web)
			if ps := e.mustOcictl("ps"); strings.Contains(ps, web) || strings.Contains(ps, "client-") {
				t.Errorf("ps after rm:\n%s", ps)
			}
		})
	}
}

// TestLeanHookBinary: the hook run by a binary of its own (ocinet-hook)
// instead of ocictl itself.
func TestLeanHookBinary(t *testing.T) {
	e := newEnv(t, "")
	bin := testenv.Build(t, "./cmd/ocinet-hook")
	e.mustOcictl(append([]string{"--hook-binary", bin, "run", "-d", "--name", "lean", "-p", "127.0.0.1:18094:80"}, e.httpd()...)...)
	if got := get(t, "http://127.0.0.1:18094/"); got != page {
		t.Errorf("published port: got %q", got)
	}
	e.mustOcictl("--hook-binary", bin, "rm", "-f", "lean")
}
