package sandbox_test

import (
	"flag"
	"reflect"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/sandbox"
)

// TestArgsRoundTrip: what Args writes, RegisterFlags reads back, every
// field of the command line included (a hook gets its program's
// configuration whole), and a zero field is left out.
func TestArgsRoundTrip(t *testing.T) {
	for _, c := range []sandbox.Config{
		{},
		{Namespace: "default"},
		{StateDir: "/var/lib/x", NetNSDir: "/run/x/netns", RuntimeDir: "/run/x", CNIConfDir: "/etc/x", PluginDirs: []string{"/opt/a", "/opt/b"},
			Namespace: "ns", Datapath: ocinet.DatapathNative, Timeout: 30 * time.Second, DNSLinger: 5 * time.Second},
		{Namespace: "ns", DNSLinger: -time.Nanosecond},
	} {
		var got sandbox.Config
		fs := flag.NewFlagSet("hook", flag.ContinueOnError)
		got.RegisterFlags(fs)
		if err := fs.Parse(c.Args()); err != nil {
			t.Errorf("parse %q: %v", c.Args(), err)
			continue
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("Args %q read back as %+v, want %+v", c.Args(), got, c)
		}
	}
	if args := (sandbox.Config{}).Args(); len(args) != 0 {
		t.Errorf("the zero Config's Args = %q, want none", args)
	}
}
