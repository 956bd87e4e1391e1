package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// DefaultDir is the namespace directory that `ip netns` and CNI use.
const DefaultDir = "/var/run/netns"

// maxNameLen keeps names well inside a file name's limit.
const maxNameLen = 200

// validName reports whether name may be a file in the namespace directory:
// letters, digits, '.', '_' and '-', not starting with '.', at most 200 bytes.
func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("namespace name %q: must be 1 to %d characters: %w", name, maxNameLen, ErrInvalid)
	}
	if name[0] == '.' {
		return fmt.Errorf("namespace name %q: must not start with '.': %w", name, ErrInvalid)
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("namespace name %q: character %q not allowed: %w", name, c, ErrInvalid)
		}
	}
	return nil
}

// RandomName returns a name like "cni-1f2e3d4c-5b6a-7988-a7b6-c5d4e3f2a1b0",
// the form containerd's CRI plugin gives pod sandboxes.
func RandomName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return "cni-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
