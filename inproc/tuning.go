package inproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Where the tuning plugin keeps its backups and reads its allow-list.
const (
	tuningDataDir   = "/run/cni/tuning"
	tuningAllowlist = "/etc/cni/tuning/allowlist.conf"
)

type tuningConf struct {
	types.NetConf
	SysCtl        map[string]string `json:"sysctl"`
	Mac           string            `json:"mac,omitempty"`
	RuntimeConfig struct {
		Mac string `json:"mac,omitempty"`
	} `json:"runtimeConfig"`
	Args *struct {
		A *struct {
			SysCtl *map[string]string `json:"sysctl"`
			Mac    *string            `json:"mac,omitempty"`
		} `json:"cni"`
	} `json:"args"`
}

// tuningBackup is the plugin's backup file: what DEL puts back.
type tuningBackup struct {
	Mac string `json:"mac,omitempty"`
}

// loadTuningConf parses a tuning config as the plugin does: the MAC from
// the config, then CNI_ARGS MAC=, then the "mac" capability, then
// args.cni.mac; sysctls from the config and args.cni.sysctl; a sysctl key
// given twice is refused.
func loadTuningConf(stdin []byte, envArgs string) (*tuningConf, error) {
	obj, err := object(stdin)
	if err != nil {
		return nil, fmt.Errorf("tuning: load config: %v: %w", err, ErrInvalid)
	}
	if raw, ok := obj["sysctl"]; ok && string(raw) != "null" {
		if _, err := object(raw); err != nil {
			return nil, fmt.Errorf("tuning: sysctl: %v: %w", err, ErrInvalid)
		}
	}
	conf := &tuningConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, fmt.Errorf("tuning: load config: %v: %w", err, ErrInvalid)
	}
	if envArgs != "" {
		var e macEnvArgs
		if err := types.LoadArgs(envArgs, &e); err != nil {
			return nil, fmt.Errorf("tuning: CNI_ARGS: %v: %w", err, ErrInvalid)
		}
		if e.MAC != "" {
			conf.Mac = string(e.MAC)
		}
	}
	if conf.RuntimeConfig.Mac != "" {
		conf.Mac = conf.RuntimeConfig.Mac
	}
	if conf.Args != nil && conf.Args.A != nil {
		if conf.Args.A.SysCtl != nil {
			if conf.SysCtl == nil {
				conf.SysCtl = map[string]string{}
			}
			for k, v := range *conf.Args.A.SysCtl {
				conf.SysCtl[k] = v
			}
		}
		if conf.Args.A.Mac != nil {
			conf.Mac = *conf.Args.A.Mac
		}
	}
	return conf, nil
}

// sysctlFile maps a sysctl key (dots or slashes; IFNAME stands for the
// interface) to its file, refusing anything outside /proc/sys/net.
func sysctlFile(key, ifName string) (string, error) {
	k := strings.ReplaceAll(key, ".", "/")
	k = strings.Replace(k, "IFNAME", ifName, 1)
	f := filepath.Join("/proc/sys", k)
	if !strings.HasPrefix(f, "/proc/sys/net/") {
		return "", fmt.Errorf("tuning: sysctl %q: only keys under net. are allowed: %w", key, ErrInvalid)
	}
	return f, nil
}

// checkAllowlist refuses sysctls that the allow-list file, when there is
// one, does not match (each line a regular expression), as the plugin does.
func checkAllowlist(sysctls map[string]string) error {
	b, err := os.ReadFile(tuningAllowlist)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tuning: read allow-list: %w", err)
	}
	var allow []*regexp.Regexp
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		re, err := regexp.Compile(line)
		if err != nil {
			return fmt.Errorf("tuning: allow-list %s: %q: %v: %w", tuningAllowlist, line, err, ErrInvalid)
		}
		allow = append(allow, re)
	}
	for key := range sysctls {
		ok := false
		for _, re := range allow {
			ok = ok || re.MatchString(key)
		}
		if !ok {
			return fmt.Errorf("tuning: sysctl %s is not in the allow-list %s: %w", key, tuningAllowlist, ErrInvalid)
		}
	}
	return nil
}

func (e *Exec) tuningAdd(c call) ([]byte, error) {
	conf, err := loadTuningConf(c.stdin, c.args)
	if err != nil {
		return nil, err
	}
	if err := checkAllowlist(conf.SysCtl); err != nil {
		return nil, err
	}
	if strings.Contains(c.ifc, "/") {
		return nil, fmt.Errorf("tuning: interface name %q contains '/': %w", c.ifc, ErrInvalid)
	}
	if c.containerID == "" || strings.Contains(c.containerID, "/") {
		return nil, fmt.Errorf("tuning: container ID %q cannot name a backup file: %w", c.containerID, ErrInvalid)
	}
	if conf.RawPrevResult == nil {
		return nil, fmt.Errorf("tuning: required prevResult missing: %w", ErrInvalid)
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return nil, fmt.Errorf("tuning: prevResult: %v: %w", err, ErrInvalid)
	}
	var mac net.HardwareAddr
	if conf.Mac != "" {
		if mac, err = net.ParseMAC(conf.Mac); err != nil {
			return nil, fmt.Errorf("tuning: MAC %q: %v: %w", conf.Mac, err, ErrInvalid)
		}
	}
	var sysctls []sysctl
	for k, v := range conf.SysCtl {
		f, err := sysctlFile(k, c.ifc)
		if err != nil {
			return nil, err
		}
		sysctls = append(sysctls, sysctl{path: strings.TrimPrefix(f, "/proc/sys/"), value: v, mustSucceed: true})
	}
	if len(sysctls) == 0 && mac == nil {
		// Nothing to change: the namespace need only be there, as the
		// plugin requires, and no netlink socket is opened in it.
		n, err := openNS(c.netns)
		if err != nil {
			return nil, fmt.Errorf("tuning: %w", err)
		}
		n.Close()
		return encodeResult(conf.PrevResult, conf.CNIVersion)
	}
	cont, err := openContainer(c.netns)
	if err != nil {
		return nil, fmt.Errorf("tuning: %w", err)
	}
	defer cont.Close()
	if len(sysctls) > 0 {
		if err := cont.ns.Do(func() error { return writeSysctls(sysctls) }); err != nil {
			return nil, fmt.Errorf("tuning: namespace %s: %w", c.netns, err)
		}
	}
	if mac != nil {
		link, err := cont.nl.LinkByName(c.ifc)
		if err != nil {
			return nil, fmt.Errorf("tuning: find %s in namespace %s: %w", c.ifc, c.netns, err)
		}
		b, _ := json.MarshalIndent(tuningBackup{Mac: link.Attrs().HardwareAddr.String()}, "", " ")
		if err := os.MkdirAll(tuningDataDir, 0o700); err != nil {
			return nil, fmt.Errorf("tuning: backup: %w", err)
		}
		if err := os.WriteFile(backupFile(c), b, 0o600); err != nil {
			return nil, fmt.Errorf("tuning: backup: %w", err)
		}
		if err := cont.nl.LinkSetHardwareAddr(link, mac); err != nil {
			return nil, fmt.Errorf("tuning: set MAC of %s to %s: %w", c.ifc, mac, err)
		}
		prev, err := types100.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, fmt.Errorf("tuning: prevResult: %v: %w", err, ErrInvalid)
		}
		for _, i := range prev.Interfaces {
			if i.Name == c.ifc {
				i.Mac = conf.Mac
			}
		}
		conf.PrevResult = prev
	}
	return encodeResult(conf.PrevResult, conf.CNIVersion)
}

func backupFile(c call) string {
	return filepath.Join(tuningDataDir, c.containerID+"_"+c.ifc+".json")
}

// tuningDel puts the backed-up MAC back, as the plugin does, and removes the
// backup; with the namespace gone there is nothing to put back, and the
// backup is removed all the same.
func (e *Exec) tuningDel(c call) error {
	if _, err := loadTuningConf(c.stdin, c.args); err != nil {
		return err
	}
	if strings.Contains(c.ifc, "/") || strings.Contains(c.containerID, "/") {
		return nil
	}
	b, err := os.ReadFile(backupFile(c))
	if err != nil {
		return nil // no backup: nothing to put back
	}
	var bk tuningBackup
	cont, err := openContainer(c.netns)
	if err == nil {
		if json.Unmarshal(b, &bk) == nil && bk.Mac != "" {
			if link, lerr := cont.nl.LinkByName(c.ifc); lerr == nil {
				if mac, perr := net.ParseMAC(bk.Mac); perr == nil {
					_ = cont.nl.LinkSetHardwareAddr(link, mac)
				}
			}
		}
		cont.Close()
	}
	_ = os.Remove(backupFile(c))
	return nil
}

func (e *Exec) tuningCheck(c call) error {
	conf, err := loadTuningConf(c.stdin, c.args)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return fmt.Errorf("tuning: required prevResult missing: %w", ErrInvalid)
	}
	cont, err := openContainer(c.netns)
	if err != nil {
		return fmt.Errorf("tuning: %w", err)
	}
	defer cont.Close()
	for k, want := range conf.SysCtl {
		f, err := sysctlFile(k, c.ifc)
		if err != nil {
			return err
		}
		var got []byte
		if err := cont.ns.Do(func() (err error) { got, err = os.ReadFile(f); return err }); err != nil {
			return fmt.Errorf("tuning: read %s: %w", f, err)
		}
		if cur := strings.TrimSuffix(string(got), "\n"); cur != want {
			return fmt.Errorf("tuning: sysctl %s is %s, the config says %s", k, cur, want)
		}
	}
	link, err := cont.nl.LinkByName(c.ifc)
	if err != nil {
		return fmt.Errorf("tuning: find %s in namespace %s: %w", c.ifc, c.netns, err)
	}
	if conf.Mac != "" && conf.Mac != link.Attrs().HardwareAddr.String() {
		return fmt.Errorf("tuning: MAC of %s is %s, the config says %s", c.ifc, link.Attrs().HardwareAddr, conf.Mac)
	}
	if link.Attrs().Promisc != 0 {
		return fmt.Errorf("tuning: %s is promiscuous, the config says not", c.ifc)
	}
	return nil
}
