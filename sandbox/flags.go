package sandbox

import (
	"flag"
	"strings"

	"github.com/ocinet/ocinet"
)

// RegisterFlags adds the configuration's command-line flags to fs, with the
// names nerdctl uses for the same settings: --data-root, --namespace,
// --cni-path (directories separated by ':'), --cni-netconfpath, and
// --netns-dir, --ocinet-runtime-dir, --datapath, --hook-timeout and
// --dns-linger. A program that is its own hook registers them among its
// global flags; [Config.Args] writes them back for the spec.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.StateDir, "data-root", c.StateDir, "ocinet state root (default /var/lib/ocinet)")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "containerd namespace")
	fs.Var((*pathList)(&c.PluginDirs), "cni-path", "CNI plugin directories, separated by ':' (default /opt/cni/bin)")
	fs.StringVar(&c.CNIConfDir, "cni-netconfpath", c.CNIConfDir, "CNI conflist directory (default /etc/cni/net.d)")
	fs.StringVar(&c.NetNSDir, "netns-dir", c.NetNSDir, "where network namespaces are pinned (default /var/run/netns)")
	fs.StringVar(&c.RuntimeDir, "ocinet-runtime-dir", c.RuntimeDir, "ocinet state that a reboot must clear (default /run/ocinet)")
	fs.Func("datapath", "who runs the networks' plugins: auto (in process what ocinet can, binaries for the rest), native or plugins (default auto)", func(s string) error {
		d, err := ocinet.ParseDatapath(s)
		c.Datapath = d
		return err
	})
	fs.DurationVar(&c.Timeout, "hook-timeout", c.Timeout, "the hook's own deadline (default 60s)")
	fs.DurationVar(&c.DNSLinger, "dns-linger", c.DNSLinger, "how long a network's DNS responder runs on after its last container left (default 2s; negative: it stops at once)")
}

// Args returns the configuration as the flags RegisterFlags parses, leaving
// out fields that are zero.
func (c Config) Args() []string {
	var args []string
	add := func(name, v string) {
		if v != "" {
			args = append(args, "--"+name+"="+v)
		}
	}
	add("data-root", c.StateDir)
	add("namespace", c.Namespace)
	add("cni-path", strings.Join(c.PluginDirs, ":"))
	add("cni-netconfpath", c.CNIConfDir)
	add("netns-dir", c.NetNSDir)
	add("ocinet-runtime-dir", c.RuntimeDir)
	add("datapath", string(c.Datapath))
	if c.Timeout != 0 {
		add("hook-timeout", c.Timeout.String())
	}
	if c.DNSLinger != 0 {
		add("dns-linger", c.DNSLinger.String())
	}
	return args
}

// pathList is a flag.Value of directories separated by ':'.
type pathList []string

func (p *pathList) String() string { return strings.Join(*p, ":") }

func (p *pathList) Set(s string) error {
	*p = nil
	for _, d := range strings.Split(s, ":") {
		if d != "" {
			*p = append(*p, d)
		}
	}
	return nil
}
