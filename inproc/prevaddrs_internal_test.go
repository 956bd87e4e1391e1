package inproc

import (
	"slices"
	"testing"
)

// TestPrevAddrs: the DEL's conntrack cleanup takes the addresses of the
// previous result, also once hostEnds has parsed it (ParsePrevResult
// empties the raw result), and none without one.
func TestPrevAddrs(t *testing.T) {
	conf := []byte(`{"cniVersion":"1.0.0","name":"inp-prev","type":"bridge","bridge":"inpprev0",
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.219.0.0/24"}]]},
		"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/proc/1/ns/net"}],
			"ips":[{"address":"10.219.0.5/24","interface":0},{"address":"fd00:219::5/64","interface":0}]}}`)
	n, err := loadBridgeConf(conf, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.219.0.5", "fd00:219::5"}
	got := func() []string {
		var out []string
		for _, ip := range prevAddrs(n) {
			out = append(out, ip.String())
		}
		return out
	}
	if g := got(); !slices.Equal(g, want) {
		t.Errorf("prevAddrs = %v, want %v", g, want)
	}
	if g := got(); !slices.Equal(g, want) {
		t.Errorf("prevAddrs again, the result parsed = %v, want %v", g, want)
	}
	n, err = loadBridgeConf([]byte(`{"cniVersion":"1.0.0","name":"inp-prev","type":"bridge","bridge":"inpprev0",
		"ipam":{"type":"host-local","ranges":[[{"subnet":"10.219.0.0/24"}]]}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if ips := prevAddrs(n); ips != nil {
		t.Errorf("without a previous result: %v, want none (the lease directory is looked up)", ips)
	}
}
