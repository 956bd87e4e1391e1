package inproc

import (
	"encoding/json"
	"net"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// encodeResult prints the same JSON object as the CNI library's own
// encoding of a result, with and without DNS, in the result's version and
// converted to an older one.
func TestEncodeResultAsTheLibrary(t *testing.T) {
	_, addr, _ := net.ParseCIDR("10.4.0.5/24")
	addr.IP = net.ParseIP("10.4.0.5").To4()
	_, addr6, _ := net.ParseCIDR("fd00::5/64")
	addr6.IP = net.ParseIP("fd00::5")
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	prio := 0
	base := func() *types100.Result {
		return &types100.Result{
			CNIVersion: "1.0.0",
			Interfaces: []*types100.Interface{
				{Name: "nerdctl0", Mac: "aa:bb:cc:dd:ee:01"},
				{Name: "veth0123abcd", Mac: "aa:bb:cc:dd:ee:02"},
				{Name: "eth0", Mac: "aa:bb:cc:dd:ee:03", Sandbox: "/var/run/netns/x"},
			},
			IPs: []*types100.IPConfig{
				{Interface: types100.Int(2), Address: *addr, Gateway: net.ParseIP("10.4.0.1").To4()},
				{Interface: types100.Int(2), Address: *addr6, Gateway: net.ParseIP("fd00::1")},
			},
			Routes: []*types.Route{{Dst: *def, GW: net.ParseIP("10.4.0.1").To4(), Priority: prio}},
		}
	}
	withDNS := base()
	withDNS.DNS = types.DNS{Nameservers: []string{"10.4.0.1"}, Search: []string{"example.test"}, Options: []string{"ndots:1"}}
	empty := &types100.Result{CNIVersion: "1.0.0"}
	for name, res := range map[string]*types100.Result{"no DNS": base(), "DNS": withDNS, "empty": empty} {
		for _, ver := range []string{"1.0.0", "1.1.0", "0.4.0"} {
			lib, err := res.GetAsVersion(ver)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(lib)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeResult(res, ver)
			if err != nil {
				t.Fatalf("%s as %s: %v", name, ver, err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("%s as %s: %s: %v", name, ver, got, err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s as %s:\n got %s\nwant %s", name, ver, got, want)
			}
		}
	}
}
