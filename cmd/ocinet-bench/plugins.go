package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/portmap"
)

// chain is one CNI network config run through libcni directly, with a
// plugin environment of its own.
type chain struct {
	name     string
	list     *libcni.NetworkConfigList
	conflist []byte
	ifName   string
	ports    bool // pass the port mappings
	cfg      *libcni.CNIConfig
	exec     *timedExec
}

// newChain makes a chain from conflist bytes; env replaces variables of the
// plugins' environment.
func (b *bench) newChain(name string, conflist []byte, ifName string, ports bool, env []string) (*chain, error) {
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	e := &timedExec{Exec: &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}}, env: env}
	return &chain{
		name: name, list: list, conflist: conflist, ifName: ifName, ports: ports, exec: e,
		cfg: libcni.NewCNIConfigWithCacheDir([]string{b.pluginDir}, filepath.Join(b.work, "cni-cache"), e),
	}, nil
}

func (c *chain) runtimeConf(id, ns string, ports []portmap.Port) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: ns, IfName: c.ifName, Args: [][2]string{{"IgnoreUnknown", "1"}}}
	if c.ports && len(ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": ports}
	}
	return rt
}

// add runs ADD; until del, the run's clean-up knows how to undo it.
func (b *bench) add(c *chain, id, ns string, ports []portmap.Port) (*types100.Result, error) {
	rt := c.runtimeConf(id, ns, ports)
	b.pend(id, func() error { return c.cfg.DelNetworkList(context.Background(), c.list, rt) })
	res, err := c.cfg.AddNetworkList(b.ctx, c.list, rt)
	if err != nil {
		return nil, fmt.Errorf("%s: ADD: %w", c.name, err)
	}
	return types100.NewResultFromResult(res)
}

func (b *bench) del(c *chain, id, ns string, ports []portmap.Port) error {
	if err := c.cfg.DelNetworkList(context.WithoutCancel(b.ctx), c.list, c.runtimeConf(id, ns, ports)); err != nil {
		return fmt.Errorf("%s: DEL: %w", c.name, err)
	}
	b.unpend(id)
	return nil
}

// confEdit returns the default conflist changed by edit, which gets the
// decoded conflist and its plugins.
func confEdit(conflist []byte, edit func(conf map[string]any, plugins []map[string]any) []map[string]any) ([]byte, error) {
	var conf map[string]any
	if err := json.Unmarshal(conflist, &conf); err != nil {
		return nil, err
	}
	raw, _ := conf["plugins"].([]any)
	var plugins []map[string]any
	for _, p := range raw {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, errors.New("conflist: a plugin is not an object")
		}
		plugins = append(plugins, m)
	}
	plugins = edit(conf, plugins)
	conf["plugins"] = plugins
	return json.Marshal(conf)
}

// pluginType returns the plugin of the given type, or nil.
func pluginType(plugins []map[string]any, typ string) map[string]any {
	for _, p := range plugins {
		if p["type"] == typ {
			return p
		}
	}
	return nil
}

// variant is one way to configure the default network for the plugins
// section.
type variant struct {
	name string
	// keep is how many plugins of the default chain to keep (0: all).
	keep int
	// nft sets the bridge's masquerade and portmap's backend to nftables.
	nft bool
	// nftOnPath puts nft on the plugins' PATH with the iptables backends:
	// a host where nft is installed.
	nftOnPath bool
	loopback  bool
}

// pluginsSection: what each plugin of the default network costs, by ADD and
// DEL of the chain cut after each plugin, and the nftables backends of the
// bridge plugin's masquerade and of portmap against their iptables ones
// (the firewall plugin has no nftables backend: iptables or firewalld).
// Each variant is also checked once for what the end-to-end tests need:
// published ports answer on 127.0.0.1, on the gateway and on the
// container's address, and another network cannot reach the container.
func (b *bench) pluginsSection() error {
	_, network, err := b.manager()
	if err != nil {
		return err
	}
	_, ports, err := localMapping()
	if err != nil {
		return err
	}

	variants := []variant{
		{name: "default chain: bridge+portmap+firewall, iptables"},
		{name: "loopback network", loopback: true},
		{name: "bridge (host-local), iptables masquerade", keep: 1},
		{name: "bridge+portmap, iptables", keep: 2},
		{name: "bridge, nftables masquerade", keep: 1, nft: true},
		{name: "bridge+portmap, nftables", keep: 2, nft: true},
		{name: "default chain, bridge and portmap on nftables", nft: true},
		{name: "default chain, iptables, nft installed on the host", nftOnPath: true},
	}
	nftEnv, nftErr := b.privateNft()
	if nftErr == nil {
		b.nftBefore, nftErr = nftTables(nftEnv)
	}
	var chains []*chain
	for _, v := range variants {
		if (v.nft || v.nftOnPath) && nftErr != nil {
			b.report.notef("plugins: %q not measured: %v", v.name, nftErr)
			continue
		}
		c, err := b.variantChain(v, network.Bytes, nftEnv)
		if err != nil {
			return err
		}
		chains = append(chains, c)
	}
	if nftErr == nil {
		defer b.clean.add("nftables tables", func() error { return b.removeNftTables(nftEnv) })()
	}

	// One untimed ADD and DEL of each: bridges and shared chains exist
	// afterwards, as they do on a host in use.
	adds := make([]series, len(chains))
	dels := make([]series, len(chains))
	for i := -1; i < b.n && !b.stopped(); i++ {
		for k, c := range chains {
			a, d, err := b.addDel(c, fmt.Sprintf("%sp%d-%d", idPrefix, k, i), ports)
			if err != nil {
				return err
			}
			if i >= 0 {
				adds[k], dels[k] = append(adds[k], a), append(dels[k], d)
			}
		}
	}
	if len(adds) == 0 || len(adds[0]) == 0 {
		return nil
	}
	// Rows: every variant's ADD+DEL against the default chain's.
	total := func(k int) series {
		var s series
		for i := range adds[k] {
			s = append(s, adds[k][i]+dels[k][i])
		}
		return s
	}
	funcs, err := b.checkVariants(chains, network)
	if err != nil {
		return err
	}
	for k, c := range chains {
		row := newRow("plugins", c.name+": ADD+DEL", total(k)).
			note("ADD %.1f, DEL %.1f ms", ms(adds[k].median()), ms(dels[k].median())).
			field("add_median_ms", ms(adds[k].median())).field("del_median_ms", ms(dels[k].median()))
		if k > 0 {
			row = row.againstPaired("default chain ADD+DEL", total(k), total(0))
		}
		if f := funcs[k]; f != "" {
			row = row.note("%s", f).field("checks", f)
		}
		b.report.add(row)
	}
	// Each plugin's own share: the difference between a chain and the same
	// chain one plugin shorter.
	byName := map[string]int{}
	for k, c := range chains {
		byName[c.name] = k
	}
	diff := func(longer, shorter string) string {
		l, ok1 := byName[longer]
		s, ok2 := byName[shorter]
		if !ok1 || !ok2 {
			return "n/a"
		}
		return fmt.Sprintf("ADD %+.1f, DEL %+.1f ms", ms(adds[l].median()-adds[s].median()), ms(dels[l].median()-dels[s].median()))
	}
	b.report.notef("plugins, each one's share (medians of chain differences): loopback network %s; bridge with host-local %s; portmap %s; firewall %s",
		fmt.Sprintf("ADD %.1f, DEL %.1f ms", ms(adds[byName["loopback network"]].median()), ms(dels[byName["loopback network"]].median())),
		fmt.Sprintf("ADD %.1f, DEL %.1f ms", ms(adds[byName[variants[2].name]].median()), ms(dels[byName[variants[2].name]].median())),
		diff(variants[3].name, variants[2].name), diff(variants[0].name, variants[3].name))
	return b.countExecs(execChains(chains), ports)
}

// variantChain builds the chain of a variant from the default conflist.
func (b *bench) variantChain(v variant, conflist []byte, nftEnv []string) (*chain, error) {
	if v.loopback {
		return b.newChain(v.name, []byte(ocinet.LoopbackConfList), "lo", false, nil)
	}
	out, err := confEdit(conflist, func(_ map[string]any, plugins []map[string]any) []map[string]any {
		if v.keep > 0 && v.keep < len(plugins) {
			plugins = plugins[:v.keep]
		}
		if v.nft {
			if p := pluginType(plugins, "bridge"); p != nil {
				p["ipMasqBackend"] = "nftables"
			}
			if p := pluginType(plugins, "portmap"); p != nil {
				p["backend"] = "nftables"
			}
		}
		return plugins
	})
	if err != nil {
		return nil, err
	}
	var env []string
	if v.nft || v.nftOnPath {
		env = nftEnv
	}
	return b.newChain(v.name, out, "eth0", true, env)
}

// addDel runs ADD then DEL of c in a fresh namespace and returns how long
// each took.
func (b *bench) addDel(c *chain, id string, ports []portmap.Port) (time.Duration, time.Duration, error) {
	ns, rm, err := b.newNS(id)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = b.undo(id)
		rm()
	}()
	t0 := time.Now()
	if _, err := b.add(c, id, ns, ports); err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	if err := b.del(c, id, ns, ports); err != nil {
		return 0, 0, err
	}
	return t1.Sub(t0), time.Since(t1), nil
}

// checkVariants runs each variant once with a server in the container and
// says what works: published on 127.0.0.1, published on the gateway, the
// container's own address, and isolation from a second network.
func (b *bench) checkVariants(chains []*chain, network *ocinet.Network) ([]string, error) {
	iso, err := b.isolationChain(network)
	if err != nil {
		return nil, err
	}
	peerID := idPrefix + "iso"
	peerNS, rmPeer, err := b.newNS(peerID)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = b.undo(peerID)
		rmPeer()
	}()
	if _, err := b.add(iso, peerID, peerNS, nil); err != nil {
		return nil, err
	}
	out := make([]string, len(chains))
	for k, c := range chains {
		if c.ifName == "lo" {
			continue
		}
		// The firewall plugin never removes a bridge's isolation rules:
		// drop them so that a chain without it is judged on its own.
		if err := removeIsolationRules(benchBridge); err != nil {
			return nil, err
		}
		res, err := b.checkOne(c, fmt.Sprintf("%scheck%d", idPrefix, k), peerNS)
		if err != nil {
			return nil, err
		}
		out[k] = res
	}
	return out, nil
}

// isoNetwork is the name of the isolation check's second network.
const isoNetwork = "ocibench-iso"

// isolationChain is a second network like the default one, on its own
// bridge and subnet, from a second Manager's default network.
func (b *bench) isolationChain(network *ocinet.Network) (*chain, error) {
	m, err := ocinet.New(filepath.Join(b.work, "iso-state"),
		ocinet.WithCNIConfDir(filepath.Join(b.work, "iso-net.d")),
		ocinet.WithPluginDirs(b.pluginDir),
		ocinet.WithDefaultBridge(isoBridge))
	if err != nil {
		return nil, err
	}
	b.clean.add("bridge "+isoBridge, func() error {
		// host-local keeps a directory per network name.
		return errors.Join(b.removeBridge(isoBridge), os.RemoveAll("/var/lib/cni/networks/"+isoNetwork))
	})
	n, err := m.Network(ocinet.DefaultNetworkName)
	if err != nil {
		return nil, err
	}
	if len(n.Subnets) == 0 || len(network.Subnets) == 0 || n.Subnets[0].Overlaps(network.Subnets[0]) {
		return nil, fmt.Errorf("isolation network: subnet %v overlaps %v", n.Subnets, network.Subnets)
	}
	conf, err := confEdit(n.Bytes, func(c map[string]any, p []map[string]any) []map[string]any {
		c["name"] = isoNetwork
		return p
	})
	if err != nil {
		return nil, err
	}
	return b.newChain("isolation peer", conf, "eth0", false, nil)
}

// checkOne attaches c with a port published on 127.0.0.1 and one on every
// address, serves from inside, and tries each way in.
func (b *bench) checkOne(c *chain, id, peerNS string) (string, error) {
	local, err := freePort()
	if err != nil {
		return "", err
	}
	all, err := freePort()
	if err != nil {
		return "", err
	}
	ports := []portmap.Port{
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: local, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: all, ContainerPort: 80, Protocol: "tcp"},
	}
	ns, rm, err := b.newNS(id)
	if err != nil {
		return "", err
	}
	defer func() {
		_ = b.undo(id)
		rm()
	}()
	res, err := b.add(c, id, ns, ports)
	if err != nil {
		return "", err
	}
	if len(res.IPs) == 0 || res.IPs[0].Gateway == nil {
		return "", fmt.Errorf("%s: no address or gateway in the result", c.name)
	}
	ip, gw := res.IPs[0].Address.IP.String(), res.IPs[0].Gateway.String()
	var ln net.Listener
	if err := inNetNS(ns, func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		return "", err
	}
	defer ln.Close()
	go serveOK(ln)

	try := func(addr string, dial func(string) (net.Conn, error)) string {
		conn, err := dial(addr)
		if err != nil {
			return "no"
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 3)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ok\n" {
			return "no"
		}
		return "yes"
	}
	host := func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
	fromPeer := func(addr string) (conn net.Conn, err error) {
		err = inNetNS(peerNS, func() error {
			conn, err = net.DialTimeout("tcp", addr, 500*time.Millisecond)
			return err
		})
		return conn, err
	}
	isolated := "yes"
	if try(net.JoinHostPort(ip, "80"), fromPeer) == "yes" {
		isolated = "no"
	}
	got := fmt.Sprintf("127.0.0.1:%s gateway:%s container:%s isolated:%s",
		try(fmt.Sprintf("127.0.0.1:%d", local), host), try(fmt.Sprintf("%s:%d", gw, all), host),
		try(net.JoinHostPort(ip, "80"), host), isolated)
	if err := b.del(c, id, ns, ports); err != nil {
		return "", err
	}
	return got, nil
}

// serveOK answers every connection with "ok\n" until ln is closed.
func serveOK(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = conn.Write([]byte("ok\n"))
		conn.Close()
	}
}

// privateNft returns the plugin environment that puts nft on the PATH. With
// no nft on the host, it unpacks Debian's nftables package into the run's
// directory (apt-get download: nothing is installed on the host), so that
// the host's own plugins keep running as they do.
func (b *bench) privateNft() ([]string, error) {
	path := os.Getenv("PATH")
	if _, err := exec.LookPath("nft"); err == nil {
		return []string{"PATH=" + path}, nil
	}
	dir := filepath.Join(b.work, "nft")
	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	download := func() error {
		cmd := exec.CommandContext(b.ctx, "apt-get", "download", "nftables", "libnftables1")
		cmd.Dir = debs
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get download nftables libnftables1: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := download(); err != nil {
		if out, uerr := exec.CommandContext(b.ctx, "apt-get", "update").CombinedOutput(); uerr != nil {
			return nil, fmt.Errorf("%v; apt-get update: %v: %s", err, uerr, out)
		}
		if err := download(); err != nil {
			return nil, err
		}
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, f := range files {
		if out, err := exec.Command("dpkg-deb", "-x", f, filepath.Join(dir, "root")).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %v: %s", f, err, out)
		}
	}
	libs, _ := filepath.Glob(filepath.Join(dir, "root", "usr", "lib", "*-linux-gnu"))
	env := []string{"PATH=" + filepath.Join(dir, "root", "usr", "sbin") + ":" + path, "LD_LIBRARY_PATH=" + strings.Join(libs, ":")}
	if out, err := nftCmd(env, "--version").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("unpacked nft does not run: %v: %s", err, out)
	}
	return env, nil
}

// nftCmd is nft with args, found and run with env.
func nftCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("nft", args...)
	cmd.Env = overrideEnv(os.Environ(), env)
	if p, ok := envValue(env, "PATH"); ok {
		if full, err := lookIn(p, "nft"); err == nil {
			cmd.Path, cmd.Err = full, nil
		}
	}
	return cmd
}

// nftTables lists the nftables tables ("family name").
func nftTables(env []string) (map[string]bool, error) {
	out, err := nftCmd(env, "list", "tables").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nft list tables: %v: %s", err, out)
	}
	t := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "table" {
			t[f[1]+" "+f[2]] = true
		}
	}
	return t, nil
}

// removeNftTables deletes the plugins' tables that appeared during the run.
func (b *bench) removeNftTables(env []string) error {
	after, err := nftTables(env)
	if err != nil {
		return err
	}
	var errs []error
	for t := range after {
		if b.nftBefore[t] || !strings.HasPrefix(strings.Fields(t)[1], "cni") {
			continue
		}
		if out, err := nftCmd(env, append([]string{"delete", "table"}, strings.Fields(t)...)...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s: %v: %s", t, err, out))
		}
	}
	return errors.Join(errs...)
}

func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// lookIn finds an executable in a PATH-like list.
func lookIn(path, name string) (string, error) {
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, path)
}

// execChains are the chains whose tool calls are counted: the default one
// on each backend.
func execChains(chains []*chain) []*chain {
	var out []*chain
	for _, c := range chains {
		if strings.HasPrefix(c.name, "default chain") {
			out = append(out, c)
		}
	}
	return out
}
