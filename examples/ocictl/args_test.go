package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// TestParseInterspersed: flags count wherever they stand among the
// arguments, as with nerdctl's commands, up to a "--"; the arguments keep
// their order; a bad flag is still an error.
func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		subnet   string
		force    bool
		labels   []string
		want     []string
		parseErr bool
	}{
		{args: []string{"web"}, want: []string{"web"}},
		{args: []string{"--subnet", "10.1.0.0/24", "net1"}, subnet: "10.1.0.0/24", want: []string{"net1"}},
		{args: []string{"net1", "--subnet", "10.1.0.0/24", "--label", "a=b"}, subnet: "10.1.0.0/24", labels: []string{"a=b"}, want: []string{"net1"}},
		{args: []string{"a", "-f", "b", "--label=x=y", "c"}, force: true, labels: []string{"x=y"}, want: []string{"a", "b", "c"}},
		{args: []string{"a", "--", "-f", "--subnet"}, want: []string{"a", "-f", "--subnet"}},
		{args: []string{"--", "a"}, want: []string{"a"}},
		{args: nil, want: nil},
		{args: []string{"a", "--nosuch"}, parseErr: true},
		{args: []string{"a", "--subnet"}, parseErr: true},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		subnet := fs.String("subnet", "", "")
		force := fs.Bool("f", false, "")
		var labels listFlag
		fs.Var(&labels, "label", "")
		err := parseInterspersed(fs, tc.args)
		if (err != nil) != tc.parseErr {
			t.Errorf("%q: error %v, want error=%v", tc.args, err, tc.parseErr)
			continue
		}
		if tc.parseErr {
			continue
		}
		if *subnet != tc.subnet || *force != tc.force || !slices.Equal([]string(labels), tc.labels) || !slices.Equal(fs.Args(), tc.want) {
			t.Errorf("%q: subnet %q, -f %v, labels %q, args %q; want %q, %v, %q, %q", tc.args, *subnet, *force, labels, fs.Args(), tc.subnet, tc.force, tc.labels, tc.want)
		}
	}
}
