package hosts

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParseHostsFile feeds arbitrary hosts files to the reader that splits
// managed from user lines: it must not panic, and rendering a managed block
// followed by the user lines it found must give back the same user lines,
// also when the write was torn before the truncate (padding left behind).
func FuzzParseHostsFile(f *testing.F) {
	managed := []byte(beginLine + "\n" + localEntries + "10.0.0.2\tweb\n" + endMarker + "\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		user := userLines(data)
		for _, l := range user {
			if bytes.IndexByte(l, '\n') >= 0 {
				t.Fatalf("user line %q holds a newline", l)
			}
		}
		out := composeHosts(managed, user)
		if !bytes.HasPrefix(out, managed) {
			t.Fatalf("composed file does not start with the managed block")
		}
		if got := userLines(out); !equalLines(got, user) {
			t.Fatalf("round trip changed the user lines:\n got %q\nwant %q", got, user)
		}
		torn := append(bytes.Clone(out), padding(1+len(data)%300)...)
		if got := userLines(torn); !equalLines(got, user) {
			t.Fatalf("padding changed the user lines:\n got %q\nwant %q", got, user)
		}
	})
}

func equalLines(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// FuzzValidateName checks that no accepted name can break a hosts file line.
func FuzzValidateName(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, not ErrInvalid", s, err)
			}
			return
		}
		if s == "" || len(s) > 253 {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
		if strings.ContainsAny(s, "#\x00:_") || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsFunc(s, func(r rune) bool { return r > unicode.MaxASCII }) {
			t.Fatalf("accepted %q", s)
		}
		for _, entry := range []string{s + ":192.0.2.1", s + "=192.0.2.1"} {
			e, err := ParseExtraHost(entry)
			if err != nil || e.Name != s {
				t.Fatalf("ParseExtraHost(%q) of an accepted name = %+v, %v", entry, e, err)
			}
		}
	})
}

// FuzzParseResolvConf feeds arbitrary resolv.conf files to the parser: it
// must not panic, every kept line must be one line without a comment or a
// known directive in it, and writing what it found and reading that back
// must give the same.
func FuzzParseResolvConf(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c := parseResolvConf(data)
		for _, l := range c.other {
			if l == "" || strings.ContainsAny(l, "\n") || l != strings.TrimSpace(l) || l[0] == '#' || l[0] == ';' {
				t.Fatalf("kept line %q", l)
			}
			switch strings.Fields(l)[0] {
			case "nameserver", "search", "domain", "options":
				t.Fatalf("kept a known directive as another: %q", l)
			}
		}
		for _, ip := range c.servers {
			if !ip.IsValid() || ip.Zone() != "" {
				t.Fatalf("kept server %v", ip)
			}
		}
		out := c.render()
		if got := parseResolvConf(out); !cmp.Equal(c, got, cmp.AllowUnexported(resolvConf{}), equateAddr, cmpopts.EquateEmpty()) {
			t.Fatalf("round trip changed the content:\n got %+v\nwant %+v\nfrom %q", got, c, out)
		}
	})
}
