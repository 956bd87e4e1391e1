package hosts

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// helperEnv selects the helper mode of the test binary: when set to
// "DIR FIRST LAST", the process churns containers FIRST..LAST of the store in
// DIR (see churn) and exits, instead of running the tests.
const helperEnv = "OCINET_HOSTS_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		if err := runHelper(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return fmt.Errorf("bad %s %q", helperEnv, spec)
	}
	first, err1 := strconv.Atoi(f[1])
	last, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad %s %q", helperEnv, spec)
	}
	s, err := Open(f[0])
	if err != nil {
		return err
	}
	return churn(s, first, last)
}

const churnNetwork = "shared"

func churnID(i int) string { return fmt.Sprintf("c%02d", i) }

// churnStays says whether container i is still on the network at the end.
func churnStays(i int) bool { return i%3 != 0 }

func churnRecord(i int) Record {
	return Record{
		ID:       churnID(i),
		Name:     fmt.Sprintf("name-%02d", i),
		Hostname: fmt.Sprintf("host-%02d", i),
		Networks: []Network{{Name: churnNetwork, IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 88, 0, byte(10 + i)})}, Gateway: netip.MustParseAddr("10.88.0.1")}},
	}
}

// churn joins, leaves and joins again containers first..last from four
// goroutines; those for which churnStays is false leave at the end.
func churn(s *Store, first, last int) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for g := range 4 {
		wg.Go(func() {
			for i := first + g; i <= last; i += 4 {
				r := churnRecord(i)
				steps := []func() error{
					func() error { return s.Prepare(r.ID) },
					func() error { return s.Join(r) },
					func() error { return s.Leave(r.ID) },
					func() error { return s.Join(r) },
				}
				if !churnStays(i) {
					steps = append(steps, func() error { return s.Leave(r.ID) })
				}
				for _, step := range steps {
					if err := step(); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func TestConcurrentJoinLeave(t *testing.T) {
	const n = 50
	s := openStore(t)
	// Two other processes take 0..16 and 17..33; this one 34..49.
	var procs []*exec.Cmd
	for _, r := range [][2]int{{0, 16}, {17, 33}} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", helperEnv, s.dir, r[0], r[1]))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		t.Cleanup(func() {
			if t.Failed() && out.Len() > 0 {
				t.Logf("helper %v:\n%s", r, out.String())
			}
		})
	}
	if err := churn(s, 34, n-1); err != nil {
		t.Error(err)
	}
	for _, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	}
	if t.Failed() {
		return
	}

	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	for i := range n {
		if churnStays(i) {
			want = append(want, churnID(i))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("records left (-want +got):\n%s", diff)
	}
	for _, id := range want {
		rendered := mustRender(t, s, id)
		if file := readFile(t, s.HostsPath(id)); file != rendered {
			t.Errorf("hosts file of %s differs from Render:\nfile:\n%s\nrender:\n%s", id, file, rendered)
		}
		if e := entries(t, rendered); len(e) != len(want) {
			t.Errorf("%s lists %d containers, want %d:\n%s", id, len(e), len(want), rendered)
		}
	}
	members, err := os.ReadDir(filepath.Join(s.dir, networksDir, churnNetwork))
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != len(want) {
		t.Errorf("the index lists %d members, want %d", len(members), len(want))
	}
}
