package inproc_test

import (
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
)

// A Manager whose bridge, host-local, loopback and tuning plugins run in
// process; portmap and firewall still run as binaries from the plugin
// directory.
func ExampleNew() {
	binaries := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}}
	x, err := inproc.New(binaries, inproc.WithRuntimeDir("/run/ocinet"))
	if err != nil {
		panic(err)
	}
	m, err := ocinet.New("/var/lib/ocinet", ocinet.WithExec(x))
	if err != nil {
		panic(err)
	}
	_ = m // m.Attach, m.Detach as usual; x.RemoveNetwork when a network goes
}

// Whether a conflist would run wholly in process, and if not, why.
func ExampleClaims() {
	conf := []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[
		{"type":"bridge","bridge":"br0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.4.0.0/24"}]]}},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	fmt.Println(inproc.Claims(conf))
	// Output: conflist "n": plugin 1: plugin "portmap" runs as a binary: not supported
}
