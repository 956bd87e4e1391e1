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

// FuzzParseSocketTable feeds the /proc/net socket-table parser arbitrary
// tables in each format: it never panics, and every socket it returns has a
// valid, unmapped address.
func FuzzParseSocketTable(f *testing.F) {
	f.Add([]byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"+
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n"), uint8(0))
	f.Add([]byte("  sl  local_address                         remote_address                        st\n"+
		"   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000\n"), uint8(0))
	f.Add([]byte("   sl  local_address rem_address   st\n  1: 00000000:0035 00000000:0000 07 00000000:00000000\n"), uint8(1))
	f.Add([]byte(" ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n ffff8 ffff9 2   10  40   9000      0 1234 10.0.0.1 ::1\n"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		socks, err := parseSocketTable(data, tableFormat(format%3))
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.addr.IsValid() || s.addr.Is4In6() || s.addr.Zone() != "" {
				t.Fatalf("socket %+v from %q", s, data)
			}
		}
	})
}
