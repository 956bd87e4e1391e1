package main

import (
	"slices"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(v ...int) series {
		var s series
		for _, x := range v {
			s = append(s, time.Duration(x)*time.Millisecond)
		}
		return s
	}
	for _, tc := range []struct {
		s           series
		median, p90 time.Duration
	}{
		{ms(), 0, 0},
		{ms(7), 7 * time.Millisecond, 7 * time.Millisecond},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond, 4 * time.Millisecond},
		{ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 5500 * time.Microsecond, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100), 6 * time.Millisecond, 10 * time.Millisecond},
	} {
		if got := tc.s.median(); got != tc.median {
			t.Errorf("median of %v = %v, want %v", tc.s, got, tc.median)
		}
		if got := tc.s.p90(); got != tc.p90 {
			t.Errorf("p90 of %v = %v, want %v", tc.s, got, tc.p90)
		}
	}
}

func TestRuleWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`-A CNI-ISOLATION-STAGE-2 -o ocibench0 -j DROP`, []string{"-A", "CNI-ISOLATION-STAGE-2", "-o", "ocibench0", "-j", "DROP"}},
		{`-A X -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j Y`,
			[]string{"-A", "X", "-m", "comment", "--comment", "CNI firewall plugin rules (ingressPolicy: same-bridge)", "-j", "Y"}},
		{`-A P -m comment --comment "name: \"bridge\" id: \"x\"" -j C`,
			[]string{"-A", "P", "-m", "comment", "--comment", `name: "bridge" id: "x"`, "-j", "C"}},
		{`-A P --comment ""  -j C`, []string{"-A", "P", "--comment", "", "-j", "C"}},
		{``, nil},
	} {
		if got := ruleWords(tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("ruleWords(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestParseInitTrace(t *testing.T) {
	out := []byte(`init internal/bytealg @0 ms, 0 ms clock, 0 bytes, 0 allocs
init runtime @0.18 ms, 0.37 ms clock, 0 bytes, 0 allocs
some other line
init errors @2.4 ms, 0.019 ms clock, 16 bytes, 1 allocs
init regexp @3.5 ms, 1.5 ms clock, 4096 bytes, 20 allocs
`)
	tr := parseInitTrace(out)
	if len(tr.pkgs) != 4 || tr.bytes != 4112 || tr.allocs != 21 {
		t.Fatalf("parsed %+v", tr)
	}
	if d := tr.totalMS - (0.37 + 0.019 + 1.5); d > 1e-9 || d < -1e-9 {
		t.Errorf("total %v", tr.totalMS)
	}
	if tr.mainMS != 5 {
		t.Errorf("main reached at %v, want 5", tr.mainMS)
	}
	if top := tr.top(1); len(top) != 1 || top[0].pkg != "regexp" {
		t.Errorf("top = %v", top)
	}
	m := mergeInitTraces([]initTrace{tr, parseInitTrace(out), {pkgs: map[string]float64{}}})
	if m.mainMS != 5 || m.pkgs["regexp"] != 1.5 {
		t.Errorf("median of three runs: %+v", m)
	}
}

func TestOverrideEnv(t *testing.T) {
	got := overrideEnv([]string{"PATH=/bin", "HOME=/root", "CNI_COMMAND=ADD"}, []string{"PATH=/x:/bin", "LD_LIBRARY_PATH=/x/lib"})
	want := []string{"HOME=/root", "CNI_COMMAND=ADD", "PATH=/x:/bin", "LD_LIBRARY_PATH=/x/lib"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAgainstPaired(t *testing.T) {
	d := func(v ...int) series {
		var s series
		for _, x := range v {
			s = append(s, time.Duration(x)*time.Millisecond)
		}
		return s
	}
	// The machine slows down tenfold half way: each pair's ratio is 2.
	a, b := d(2, 2, 20, 20), d(1, 1, 10, 10)
	r := newRow("s", "x", a).againstPaired("base", a, b)
	if !r.Paired || r.Ratio != 2 {
		t.Errorf("paired ratio %v (paired %v), want 2", r.Ratio, r.Paired)
	}
	// Unpaired series fall back to the ratio of the medians.
	r = newRow("s", "x", a).againstPaired("base", a, d(1, 1, 10))
	if r.Paired || r.Ratio != r.MedianMS/r.BaseMedianMS {
		t.Errorf("unpaired: ratio %v, paired %v", r.Ratio, r.Paired)
	}
}

func TestCPUTicks(t *testing.T) {
	prev, err := parseCPUTicks("cpu  100 0 50 800 50 0 0 7 0 0")
	if err != nil {
		t.Fatal(err)
	}
	// 100 more ticks: 20 of them user, 5 system, 70 idle, 5 iowait; the
	// steal time is left out.
	cur, err := parseCPUTicks("cpu  120 0 55 870 55 0 0 99 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if got := cur.busyShare(prev); got < 0.2499 || got > 0.2501 {
		t.Errorf("busy share %v, want 0.25", got)
	}
	if got := cur.busyShare(cur); got != 0 {
		t.Errorf("busy share over no time %v, want 0", got)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5 6"} {
		if _, err := parseCPUTicks(bad); err == nil {
			t.Errorf("parseCPUTicks(%q) accepted it", bad)
		}
	}
}
