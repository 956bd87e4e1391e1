package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet/internal/testenv"
)

const pluginsModule = "github.com/containernetworking/plugins"

// standardPlugins returns the version of the CNI plugins module this
// project pins and the names of the plugins it ships for Linux, read from
// the module's own plugins/{main,ipam,meta} tree.
func standardPlugins(t *testing.T) (string, []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", pluginsModule).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", pluginsModule, err)
	}
	version, dir, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || dir == "" {
		t.Fatalf("go list -m %s: no module directory in %q", pluginsModule, out)
	}
	var names []string
	for _, kind := range []string{"main", "ipam", "meta"} {
		ents, err := os.ReadDir(filepath.Join(dir, "plugins", kind))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() && e.Name() != "windows" {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return version, names
}

// TestInstalledPluginsVersion: every standard plugin of the pinned release
// is installed and says that release's version, as the release builds do
// (nerdctl and libcni read it; an unstamped build says "version unknown").
func TestInstalledPluginsVersion(t *testing.T) {
	if _, err := os.Stat(filepath.Join(testenv.PluginDir, "bridge")); err != nil {
		testenv.Skip(t, "needs the CNI plugins in "+testenv.PluginDir+" (run scripts/install.sh)")
	}
	version, names := standardPlugins(t)
	if len(names) < 18 {
		t.Fatalf("only %d plugins found in %s %s: %v", len(names), pluginsModule, version, names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, filepath.Join(testenv.PluginDir, name), "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s --version: %v\n%s", name, err, out)
			}
			first, _, _ := strings.Cut(string(out), "\n")
			if want := "CNI " + name + " plugin " + version; first != want {
				t.Errorf("%s --version: got %q, want %q", name, first, want)
			}
		})
	}
}
