package ocinet_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/portmap"
)

// fpBridge is the bridge of the networks the failpoint tests write.
const fpBridge = "ocitest1"

// chainConf renders a conflist named name whose chain is the default
// network's (bridge, portmap, firewall) on fpBridge, with the plugin
// entries of extra inserted before position at (0 = first, 3 = last).
func chainConf(name, version, subnet string, at int, extra ...string) string {
	chain := []string{
		`{"type":"bridge","bridge":"` + fpBridge + `","isGateway":true,"ipMasq":true,"hairpinMode":true,` +
			`"ipam":{"type":"host-local","ranges":[[{"subnet":"` + subnet + `"}]],"routes":[{"dst":"0.0.0.0/0"}]}}`,
		`{"type":"portmap","capabilities":{"portMappings":true}}`,
		`{"type":"firewall","ingressPolicy":"same-bridge"}`,
	}
	chain = slices.Insert(chain, at, extra...)
	return fmt.Sprintf(`{"cniVersion":%q,"name":%q,"plugins":[%s]}`, version, name, strings.Join(chain, ","))
}

// failpoint renders the failpoint plugin's entry.
func failpoint(failAt, mode string, extra string) string {
	s := fmt.Sprintf(`{"type":"failpoint","failAt":%q,"mode":%q`, failAt, mode)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

type fpEntry struct {
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Args        string `json:"args"`
	Valid       []struct {
		ContainerID string `json:"containerID"`
		IfName      string `json:"ifname"`
	} `json:"valid"`
	Acted   bool     `json:"acted"`
	PrevIPs []string `json:"prevIPs"`
}

func readFPLog(t *testing.T, path string) []fpEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fpEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e fpEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("failpoint log: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// TestFailingAttachLeavesNothing puts a plugin that fails (cleanly, or by
// crashing) at each position of the default chain, on the second of two
// networks: the attach fails with ErrPlugin, and whatever the plugins
// before it did, on both networks, is undone (the leak check), the port
// reservation included.
func TestFailingAttachLeavesNothing(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	p, _ := portmap.Parse("127.0.0.1:28100:80")
	ns := e.ns()
	for at := 0; at <= 3; at++ {
		for _, mode := range []string{"fail", "exit"} {
			t.Run(fmt.Sprintf("%s at %d", mode, at), func(t *testing.T) {
				e.writeConf("50-fp.conflist", chainConf("ocit-fp", "1.0.0", "10.213.12.0/24", at, failpoint("ADD", mode, "")))
				_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "fp", NetNS: ns, Networks: []string{"bridge", "ocit-fp"}, Ports: []portmap.Mapping{p}})
				if !errors.Is(err, ocinet.ErrPlugin) || !strings.Contains(err.Error(), `network "ocit-fp"`) {
					t.Fatalf("Attach: err = %v, want ErrPlugin naming ocit-fp", err)
				}
				if got := addrsIn(t, ns); strings.Contains(got, "eth") {
					t.Errorf("interfaces left in the namespace:\n%s", got)
				}
				if list, _ := e.m.List(); len(list) != 0 {
					t.Errorf("records left: %+v", list)
				}
				if owners, _ := e.m.Ports().Owners(); len(owners) != 0 {
					t.Errorf("port reservations left: %v", owners)
				}
			})
		}
	}
}

// TestHangingAttachIsBounded: a plugin that hangs at ADD is killed when the
// caller's context ends, and the teardown still runs (on a context of its
// own) and leaves nothing.
func TestHangingAttachIsBounded(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	e.writeConf("50-fp.conflist", chainConf("ocit-fp", "1.0.0", "10.213.12.0/24", 2, failpoint("ADD", "hang", "")))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.m.Attach(ctx, ocinet.AttachRequest{ID: "hang", NetNS: e.ns(), Networks: []string{"ocit-fp"}})
	if err == nil {
		t.Fatal("Attach with a hanging plugin succeeded")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Attach returned after %v; the context ended after 3s", d)
	}
	if list, _ := e.m.List(); len(list) != 0 {
		t.Errorf("records left: %+v", list)
	}
}

// TestFailingDetach: a DEL that fails keeps the record (incomplete) and
// does not stop the other networks' DEL; the next Detach finishes.
func TestFailingDetach(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	log := filepath.Join(t.TempDir(), "fp.log")
	e.writeConf("50-fp.conflist", chainConf("ocit-fp", "1.0.0", "10.213.12.0/24", 1, failpoint("DEL", "fail", `"times":1,"log":"`+log+`"`)))
	ns := e.ns()
	e.attach(ocinet.AttachRequest{ID: "delfail", NetNS: ns, Hostname: "delfail.example", Networks: []string{"ocit-fp", "bridge"},
		PerNetwork: []ocinet.NetworkOptions{{Network: "ocit-fp", IPs: []netip.Addr{netip.MustParseAddr("10.213.12.40")}}}})
	err := e.m.Detach(context.Background(), "delfail")
	if !errors.Is(err, ocinet.ErrPlugin) {
		t.Fatalf("Detach: err = %v, want ErrPlugin", err)
	}
	a, gerr := e.m.Get("delfail")
	if gerr != nil || a.Complete {
		t.Fatalf("after a failed DEL: Get = %+v, %v; want the record, incomplete", a, gerr)
	}
	if got := addrsIn(t, ns); strings.Contains(got, "eth1") || !strings.Contains(got, "eth0") {
		t.Errorf("after a DEL failed on eth0's network: eth1 should be gone and eth0 still there:\n%s", got)
	}
	if err := e.m.Check(context.Background(), "delfail"); !errors.Is(err, ocinet.ErrIncomplete) {
		t.Errorf("Check of a half torn down attachment: err = %v, want ErrIncomplete", err)
	}
	e.detach("delfail")
	if _, err := e.m.Get("delfail"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("record still there after the second Detach: %v", err)
	}
	// Both DELs got exactly the CNI_ARGS of the ADD: the static address
	// and the hostname included.
	var addArgs string
	var dels int
	for _, en := range readFPLog(t, log) {
		switch en.Command {
		case "ADD":
			addArgs = en.Args
		case "DEL":
			dels++
			if en.Args != addArgs {
				t.Errorf("DEL got CNI_ARGS %q, ADD got %q", en.Args, addArgs)
			}
		}
	}
	if dels != 2 || !strings.Contains(addArgs, "IP=10.213.12.40") || !strings.Contains(addArgs, "NERDCTL_CNI_DHCP_HOSTNAME=delfail.example") {
		t.Errorf("failpoint saw %d DELs (want 2), ADD args %q (want the static IP and the hostname)", dels, addArgs)
	}
}

// TestDetachPrevResult: every DEL of a chain gets the ADD's result as
// prevResult: from the CNI library's cache when the cache holds it (the
// conflist then goes as recorded), and from the journal when the cache
// file is gone or unreadable.
func TestDetachPrevResult(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	log := filepath.Join(t.TempDir(), "fp.log")
	e.writeConf("50-fp.conflist", chainConf("ocit-fp", "1.0.0", "10.213.12.0/24", 1, failpoint("", "fail", `"log":"`+log+`"`)))
	for _, c := range []struct {
		name   string
		cache  *string // written over the cache file; nil: kept, "": removed
		cached bool
	}{
		{"cache kept", nil, true},
		{"cache removed", new(""), false},
		{"cache unreadable", new("{"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := e.ns()
			a := e.attach(ocinet.AttachRequest{ID: "prev", NetNS: ns, Networks: []string{"ocit-fp"}})
			if len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) != 1 {
				t.Fatalf("attachment: %+v, want one interface with one address", a)
			}
			addr := a.Interfaces[0].IPs[0]
			file := filepath.Join(ocinet.DefaultCNICacheDir, "results", "ocit-fp-prev-eth0")
			if _, err := os.Stat(file); err != nil {
				t.Fatalf("the CNI library's cache: %v", err)
			}
			switch {
			case c.cache == nil:
			case *c.cache == "":
				if err := os.Remove(file); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(file, []byte(*c.cache), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := e.m.CachedResult("ocit-fp", "prev", "eth0"); got != c.cached {
				t.Errorf("the cache holds a result: %v, want %v", got, c.cached)
			}
			e.detach("prev")
			var del *fpEntry
			for _, en := range readFPLog(t, log) {
				if en.Command == "DEL" && en.ContainerID == "prev" {
					del = &en
				}
			}
			if del == nil || !slices.Contains(del.PrevIPs, addr.String()) {
				t.Errorf("the DEL's prevResult: %+v, want the address %s", del, addr)
			}
			if err := os.Remove(log); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the CNI library's cache after the DEL: %v", err)
			}
		})
	}
}

// TestGCWaitsForAttach: GC started while an attachment is under way waits
// for it (CNI requires GC to be exclusive with ADD and DEL), so it never
// tears down half an attachment; it then finds the attachment complete.
func TestGCWaitsForAttach(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	log := filepath.Join(t.TempDir(), "fp.log")
	e.writeConf("50-fp.conflist", chainConf("ocit-fp", "1.0.0", "10.213.12.0/24", 1, failpoint("ADD", "sleep", `"sleep":"1s","log":"`+log+`"`)))
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "slow", NetNS: e.ns(), Networks: []string{"ocit-fp"}})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, _ := os.ReadFile(log); len(b) > 0 {
			break // the ADD is under way
		}
		if time.Now().After(deadline) {
			t.Fatal("the ADD did not start within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	report, err := e.m.GC(context.Background(), func(string) bool { return false }, ocinet.GCOptions{})
	// Had GC not waited, it would have found the attachment half done
	// (Finished) or not at all; Released means it saw it complete.
	if err != nil || !slices.Equal(report.Released, []string{"slow"}) || len(report.Finished) != 0 {
		t.Errorf("GC = %+v, %v; want the complete attachment released, nothing half done", report, err)
	}
	select {
	case aerr := <-done:
		if aerr != nil {
			t.Errorf("Attach: %v", aerr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Attach did not return within 30s of GC")
	}
}

// TestCheck: CHECK passes on a fresh attachment and fails, with ErrPlugin,
// once the container's interface is gone; Detach still cleans up
// everything (the interface stands in a placeholder for the DEL).
func TestCheck(t *testing.T) {
	e := newEnv(t)
	ns := e.ns()
	e.attach(ocinet.AttachRequest{ID: "chk", NetNS: ns})
	if err := e.m.Check(context.Background(), "chk"); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if out, err := inNS(ns, "ip", "link", "del", "eth0"); err != nil {
		t.Fatalf("ip link del eth0: %v: %s", err, out)
	}
	if err := e.m.Check(context.Background(), "chk"); !errors.Is(err, ocinet.ErrPlugin) {
		t.Errorf("Check without eth0: err = %v, want ErrPlugin", err)
	}
	if err := e.m.Check(context.Background(), "nosuch"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("Check(unknown): err = %v, want ErrNotFound", err)
	}
	e.detach("chk")
}

// TestStatus: STATUS reaches the plugins of a CNI 1.1 network; a plugin
// that is not ready makes it fail with ErrPlugin.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.writeConf("50-ok.conflist", chainConf("ocit-ok", "1.1.0", "10.213.13.0/24", 3, failpoint("", "", "")))
	e.writeConf("51-down.conflist", chainConf("ocit-down", "1.1.0", "10.213.14.0/24", 3, failpoint("STATUS", "fail", "")))
	e.writeConf("52-old.conflist", chainConf("ocit-old", "1.0.0", "10.213.15.0/24", 3, failpoint("STATUS", "fail", "")))
	if err := e.m.Status(ctx, "ocit-ok"); err != nil {
		t.Errorf("Status(ocit-ok): %v", err)
	}
	if err := e.m.Status(ctx, "ocit-down"); !errors.Is(err, ocinet.ErrPlugin) {
		t.Errorf("Status(ocit-down): err = %v, want ErrPlugin", err)
	}
	if err := e.m.Status(ctx, "ocit-old"); err != nil {
		t.Errorf("Status of a CNI 1.0 network (no STATUS verb): %v", err)
	}
	if err := e.m.Status(ctx, "ocit-nosuch"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("Status(unknown): err = %v, want ErrNotFound", err)
	}
	e.writeConf("53-missing.conflist", `{"cniVersion":"1.1.0","name":"ocit-missing","plugins":[{"type":"ocinet-no-such-plugin"}]}`)
	if err := e.m.Status(ctx, "ocit-missing"); !errors.Is(err, ocinet.ErrPluginNotFound) {
		t.Errorf("Status with a missing plugin: err = %v, want ErrPluginNotFound", err)
	}
}

// TestGC: GC releases the attachments whose container is not live (and
// tells OnRelease), keeps the live ones, releases orphaned port
// reservations, and sends the CNI GC verb with the attachments that remain
// valid.
func TestGC(t *testing.T) {
	e := newEnv(t)
	testenv.RemoveLinkAtEnd(t, fpBridge)
	ctx := context.Background()
	log := filepath.Join(t.TempDir(), "fp.log")
	e.writeConf("50-gc.conflist", chainConf("ocit-gc", "1.1.0", "10.213.16.0/24", 3, failpoint("", "", `"log":"`+log+`"`)))
	p, _ := portmap.Parse("127.0.0.1:28101:80")
	e.attach(ocinet.AttachRequest{ID: "gc-live", NetNS: e.ns(), Networks: []string{"ocit-gc"}})
	defer e.detach("gc-live")
	deadNS := e.ns()
	e.attach(ocinet.AttachRequest{ID: "gc-dead", Name: "dead", NetNS: deadNS, Networks: []string{"ocit-gc"}, Ports: []portmap.Mapping{p}})
	if _, err := e.m.Ports().Reserve("gc-orphan", "orphan", []portmap.Mapping{mustParse(t, "127.0.0.1:28102:80")}); err != nil {
		t.Fatal(err)
	}

	var released []string
	report, err := e.m.GC(ctx, func(id string) bool { return id == "gc-live" }, ocinet.GCOptions{
		OnRelease: func(a *ocinet.Attachment) error { released = append(released, a.Name); return nil },
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !slices.Equal(report.Released, []string{"gc-dead"}) || len(report.Finished) != 0 ||
		!slices.Equal(report.Ports, []string{"gc-orphan"}) || !slices.Equal(report.Networks, []string{"ocit-gc"}) {
		t.Errorf("GC report %+v", report)
	}
	if !slices.Equal(released, []string{"dead"}) {
		t.Errorf("OnRelease saw %v, want [dead]", released)
	}
	if _, err := e.m.Get("gc-dead"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("gc-dead still recorded: %v", err)
	}
	if got := addrsIn(t, deadNS); strings.Contains(got, "eth0") {
		t.Errorf("gc-dead's eth0 still there:\n%s", got)
	}
	if err := e.m.Check(ctx, "gc-live"); err != nil {
		t.Errorf("the live attachment does not pass CHECK after GC: %v", err)
	}
	var gcs []fpEntry
	for _, en := range readFPLog(t, log) {
		if en.Command == "GC" {
			gcs = append(gcs, en)
		}
	}
	if len(gcs) != 1 || len(gcs[0].Valid) != 1 || gcs[0].Valid[0].ContainerID != "gc-live" || gcs[0].Valid[0].IfName != "eth0" {
		t.Errorf("CNI GC calls %+v, want one naming gc-live/eth0 as the only valid attachment", gcs)
	}
	// A nil live keeps every complete attachment.
	if report, err := e.m.GC(ctx, nil, ocinet.GCOptions{}); err != nil || len(report.Released) != 0 {
		t.Errorf("GC(nil) = %+v, %v; want nothing released", report, err)
	}
}

func mustParse(t *testing.T, spec string) portmap.Mapping {
	t.Helper()
	m, err := portmap.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
