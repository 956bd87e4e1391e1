package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
)

// TestInspect: `ocictl inspect NAME` prints the container's networks as
// JSON: interfaces, addresses, MACs, ports and the datapath of each
// network, as the journal records them; the datapath follows --datapath.
func TestInspect(t *testing.T) {
	e := newEnv(t, "")
	e.run("web", append([]string{"-p", "127.0.0.1:28160:80"}, e.httpd()...)...)
	var out []struct {
		Name       string `json:"name"`
		Complete   bool   `json:"complete"`
		Interfaces []struct {
			Network  string          `json:"network"`
			Name     string          `json:"name"`
			MAC      string          `json:"mac"`
			IPs      []string        `json:"ips"`
			Datapath ocinet.Datapath `json:"datapath"`
		} `json:"interfaces"`
		Ports []string `json:"ports"`
	}
	if err := json.Unmarshal([]byte(e.mustOcictl("inspect", "web")), &out); err != nil {
		t.Fatal(err)
	}
	want := ocinet.DatapathNative // auto: the bridge runs in process
	if testenv.Datapath() == string(ocinet.DatapathPlugins) {
		want = ocinet.DatapathPlugins
	}
	a := e.attachment("web")
	if len(out) != 1 || out[0].Name != "web" || !out[0].Complete || len(out[0].Interfaces) != 1 {
		t.Fatalf("inspect: %+v", out)
	}
	i := out[0].Interfaces[0]
	if i.Network != ocinet.DefaultNetworkName || i.Name != "eth0" || i.MAC != a.Interfaces[0].MAC || len(i.IPs) != 1 || i.IPs[0] != a.Interfaces[0].IPs[0].String() {
		t.Errorf("interface %+v, want the journal's %+v", i, a.Interfaces[0])
	}
	if i.Datapath != want {
		t.Errorf("datapath %q, want %q", i.Datapath, want)
	}
	if len(out[0].Ports) != 1 || out[0].Ports[0] != "80/tcp -> 127.0.0.1:28160" {
		t.Errorf("ports %q", out[0].Ports)
	}
	if _, errOut, err := e.ocictl("inspect", "nosuch"); err == nil || !strings.Contains(errOut, "no network attachment") {
		t.Errorf("inspect of a container without a network: %v %s", err, errOut)
	}
}
