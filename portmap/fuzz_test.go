package portmap

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error wraps
// ErrInvalid, and that whatever it accepts is valid and survives a round
// trip through its canonical String form and its text encoding.
func FuzzParse(f *testing.F) {
	for _, tc := range validSpecs {
		f.Add(tc.spec)
	}
	for _, tc := range invalidSpecs {
		f.Add(tc.spec)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := Parse(spec)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", spec, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which Validate refuses: %v", spec, m, err)
		}
		s := m.String()
		again, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Parse(String()=%q): %v", spec, m, s, err)
		}
		if again != m {
			t.Fatalf("round trip of %q through %q: %+v != %+v", spec, s, again, m)
		}
		if again.String() != s {
			t.Fatalf("String is not stable: %q then %q", s, again.String())
		}
		text, err := m.MarshalText()
		if err != nil || string(text) != s {
			t.Fatalf("MarshalText = %q, %v; want %q", text, err, s)
		}
		ports, err := m.Expand()
		switch {
		case err != nil && !errors.Is(err, ErrInvalid):
			t.Fatalf("Expand of %q: %v does not wrap ErrInvalid", s, err)
		case err == nil && len(ports) != m.ContainerPorts.size():
			t.Fatalf("Expand of %q gave %d ports", s, len(ports))
		}
	})
}
