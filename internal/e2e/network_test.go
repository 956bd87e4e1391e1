package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/internal/testenv"
)

// TestNetworkCommands: `ocictl network create|ls|inspect|rm` over a user
// network with two containers on it: the containers get addresses in the
// network's subnet and serve on them, inspect lists them, rm refuses while
// they run and then removes the conflist and the bridge.
func TestNetworkCommands(t *testing.T) {
	e := newEnv(t, "")
	const name = "ocit-e2e"
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	bridge := "br-" + id[:12]
	testenv.RemoveLinkAtEnd(t, bridge)
	subnet := netip.MustParsePrefix("10.213.30.0/24")

	if out := strings.TrimSpace(e.mustOcictl("network", "create", "--subnet", subnet.String(), "--label", "purpose=e2e", name)); out != id {
		t.Errorf("network create printed %q, want the ID %s", out, id)
	}
	t.Cleanup(func() { _, _, _ = e.ocictl("network", "rm", name) })
	if _, errOut, err := e.ocictl("network", "create", name); err == nil || !strings.Contains(errOut, "exists") {
		t.Errorf("creating %s twice: err %v, stderr %q; want a refusal saying it exists", name, err, errOut)
	}
	if _, errOut, err := e.ocictl("network", "create", "--subnet", "10.213.30.128/25", "ocit-e2e-overlap"); err == nil || !strings.Contains(errOut, name) {
		t.Errorf("overlapping subnet: err %v, stderr %q; want a refusal naming %s", err, errOut, name)
	}
	if out := e.mustOcictl("network", "ls"); !strings.Contains(out, id[:12]) || !strings.Contains(out, name) || !strings.Contains(out, subnet.String()) {
		t.Errorf("network ls does not show %s:\n%s", name, out)
	}

	e.run("neta", append([]string{"--network", name}, e.httpd()...)...)
	e.run("netb", append([]string{"--network", name}, e.httpd()...)...)

	var info []struct {
		Name       string
		ID         string
		Bridge     string
		Labels     map[string]string
		Subnets    []netip.Prefix
		Containers []struct {
			Name      string
			Interface string
			IPs       []netip.Prefix
		}
	}
	if err := json.Unmarshal([]byte(e.mustOcictl("network", "inspect", name)), &info); err != nil {
		t.Fatal(err)
	}
	if len(info) != 1 || info[0].ID != id || info[0].Bridge != bridge || info[0].Labels["purpose"] != "e2e" || len(info[0].Containers) != 2 {
		t.Fatalf("network inspect: %+v", info)
	}
	for _, c := range info[0].Containers {
		if c.Interface != "eth0" || len(c.IPs) != 1 || !subnet.Contains(c.IPs[0].Addr()) {
			t.Errorf("container %s on %s: %+v", c.Name, name, c)
			continue
		}
		if body := get(t, "http://"+c.IPs[0].Addr().String()+"/"); !strings.Contains(body, "ocinet") {
			t.Errorf("container %s at %s served %q", c.Name, c.IPs[0].Addr(), body)
		}
	}

	_, errOut, err := e.ocictl("network", "rm", name)
	if err == nil || !strings.Contains(errOut, "neta") || !strings.Contains(errOut, "netb") {
		t.Errorf("network rm while in use: err %v, stderr %q; want a refusal naming neta and netb", err, errOut)
	}
	e.mustOcictl("rm", "-f", "neta", "netb")
	if out := strings.TrimSpace(e.mustOcictl("network", "rm", name)); out != name {
		t.Errorf("network rm printed %q", out)
	}
	if out := e.mustOcictl("network", "ls", "-q"); strings.Contains(out, name) {
		t.Errorf("network ls still lists %s:\n%s", name, out)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s still there after network rm", bridge)
	}
}
