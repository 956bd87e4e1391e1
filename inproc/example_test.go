package inproc_test

import (
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
)

// A Manager whose bridge, host-local, loopback, tuning, portmap and
// firewall plugins run in process; other plugins, and configs with fields
// not implemented here, run as binaries from the plugin directory.
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
		{"type":"portmap","capabilities":{"portMappings":true},"snat":false}]}`)
	fmt.Println(inproc.Claims(conf))
	// Output: conflist "n": plugin 1: plugin portmap: field "snat": not supported
}
