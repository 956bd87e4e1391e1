package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ocinet/ocinet/netns"
)

// netnsSection: netns.Create + Remove against `ip netns add` + `del`, both
// in the directory ip uses, with names of the run.
func (b *bench) netnsSection() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs ip (iproute2): %w", err)
	}
	name := func(kind string, i int) string { return fmt.Sprintf("%snetns-%d-%s%d", idPrefix, os.Getpid(), kind, i) }
	// Whatever an interrupted iteration leaves is removed at the end.
	defer b.clean.add("namespaces of the netns section", func() error {
		for i := 0; i < b.fast(); i++ {
			for _, k := range []string{"lib", "ip"} {
				p := filepath.Join(netns.DefaultDir, name(k, i))
				if _, err := os.Lstat(p); err == nil {
					_ = netns.Remove(p)
				}
			}
		}
		return nil
	})()
	lib := func(i int) (time.Duration, error) {
		t0 := time.Now()
		p, err := netns.Create(netns.DefaultDir, name("lib", i))
		if err != nil {
			return 0, err
		}
		if err := netns.Remove(p); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	ip := func(i int) (time.Duration, error) {
		t0 := time.Now()
		for _, op := range []string{"add", "del"} {
			if out, err := exec.Command("ip", "netns", op, name("ip", i)).CombinedOutput(); err != nil {
				return 0, fmt.Errorf("ip netns %s: %v: %s", op, err, out)
			}
		}
		return time.Since(t0), nil
	}
	// One untimed round first: the directory's shared mount is made then.
	if _, _, err := interleave(1, b.stopped, lib, ip); err != nil {
		return err
	}
	a, base, err := interleave(b.fast(), b.stopped, lib, ip)
	if len(a) > 0 {
		b.report.add(newRow("netns", "netns.Create+Remove", a).againstPaired("ip netns add+del", a, base))
	}
	return err
}
