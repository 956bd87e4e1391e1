package hook

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseRequestAliases(t *testing.T) {
	r, err := DecodeRequest(`{"version":1,"name":"web1","aliases":["web","www.example"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Aliases, []string{"web", "www.example"}) {
		t.Errorf("aliases %q", r.Aliases)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"bad character", `{"version":1,"aliases":["we_b"]}`, "we_b"},
		{"newline", `{"version":1,"aliases":["web\nevil"]}`, "web"},
		{"empty", `{"version":1,"aliases":[""]}`, `alias: name ""`},
		{"too many", `{"version":1,"aliases":[` + strings.Repeat(`"a",`, 32) + `"a"]}`, "too many"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest(tc.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseRequest: err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}
