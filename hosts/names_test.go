package hosts

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "web", true},
		{"digits first", "1web", true},
		{"inner hyphen", "my-web", true},
		{"dotted", "web.example.com", true},
		{"upper case", "Web", true},
		{"63-byte label", strings.Repeat("a", 63), true},
		{"253 bytes", strings.Repeat(strings.Repeat("a", 63)+".", 4)[:253], true},
		{"empty", "", false},
		{"space", "my web", false},
		{"newline", "web\n10.0.0.1 evil", false},
		{"tab", "web\t", false},
		{"hash", "web#x", false},
		{"NUL", "web\x00", false},
		{"underscore", "my_web", false},
		{"colon", "web:1", false},
		{"non-ASCII", "wéb", false},
		{"empty label", "web..example", false},
		{"leading dot", ".web", false},
		{"trailing dot", "web.", false},
		{"64-byte label", strings.Repeat("a", 64), false},
		{"leading hyphen", "-web", false},
		{"trailing hyphen", "web-", false},
		{"hyphen at the end of an inner label", "web-.example", false},
		{"254 bytes", strings.Repeat(strings.Repeat("a", 63)+".", 4)[:254], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, want ErrInvalid", tt.in, err)
			}
			if q := fmt.Sprintf("%q", tt.in); !strings.Contains(err.Error(), q) {
				t.Errorf("error %q does not quote the name as %s", err, q)
			}
		})
	}
}

func TestParseExtraHost(t *testing.T) {
	tests := []struct {
		in      string
		want    ExtraHost
		wantErr bool
	}{
		{in: "db:10.0.0.5", want: ExtraHost{Name: "db", IP: ip("10.0.0.5")}},
		{in: "db.example.com:192.0.2.1", want: ExtraHost{Name: "db.example.com", IP: ip("192.0.2.1")}},
		{in: "v6:::1", want: ExtraHost{Name: "v6", IP: ip("::1")}},
		{in: "v6:[2001:db8::1]", want: ExtraHost{Name: "v6", IP: ip("2001:db8::1")}},
		{in: "v6:2001:db8::1", want: ExtraHost{Name: "v6", IP: ip("2001:db8::1")}},
		{in: "host.docker.internal:host-gateway", want: ExtraHost{Name: "host.docker.internal", Gateway: true}},
		{in: "db=10.0.0.5", want: ExtraHost{Name: "db", IP: ip("10.0.0.5")}},
		{in: "v6=::1", want: ExtraHost{Name: "v6", IP: ip("::1")}},
		{in: "v6=[2001:db8::1]", want: ExtraHost{Name: "v6", IP: ip("2001:db8::1")}},
		{in: "gw=host-gateway", want: ExtraHost{Name: "gw", Gateway: true}},
		{in: "db", wantErr: true},
		{in: "db=", wantErr: true},
		{in: "=10.0.0.5", wantErr: true},
		{in: "db:x=10.0.0.5", wantErr: true},
		{in: "db=10.0.0.5=1", wantErr: true},
		{in: "db:", wantErr: true},
		{in: ":10.0.0.5", wantErr: true},
		{in: "d b:10.0.0.5", wantErr: true},
		{in: "db:10.0.0.256", wantErr: true},
		{in: "db:fe80::1%eth0", wantErr: true},
		{in: "db:[fe80::1%eth0]", wantErr: true},
		{in: "db:[]", wantErr: true},
		{in: "db:gateway", wantErr: true},
		{in: "db:10.0.0.5 10.0.0.6", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseExtraHost(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseExtraHost(%q) = %+v, %v; want ErrInvalid", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExtraHost(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, equateAddr); diff != "" {
				t.Errorf("ParseExtraHost(%q) (-want +got):\n%s", tt.in, diff)
			}
			back, err := ParseExtraHost(got.String())
			if err != nil || back != got {
				t.Errorf("ParseExtraHost(%q) of String() = %+v, %v; want %+v", got.String(), back, err, got)
			}
		})
	}
}
