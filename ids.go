package ocinet

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// validID checks an attachment ID (the CNI container ID): 1 to 128 letters,
// digits, '.', '_' or '-', starting with a letter or digit. IDs become file
// names, so nothing else is accepted.
func validID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("attachment id %q: must be 1 to 128 characters: %w", id, ErrInvalid)
	}
	for i, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("attachment id %q: character %q not allowed: %w", id, c, ErrInvalid)
		}
	}
	return nil
}

// validNetworkName checks a network name the way nerdctl and docker do:
// letters, digits, '.', '_' and '-', starting with a letter or digit, at most
// 64 characters.
func validNetworkName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("network name %q: must be 1 to 64 characters: %w", name, ErrInvalid)
	}
	for i, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("network name %q: character %q not allowed: %w", name, c, ErrInvalid)
		}
	}
	return nil
}

// validIfaceName checks a Linux interface name: 1 to 15 bytes, no '/', no
// whitespace, not "." or "..".
func validIfaceName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("interface name %q: must be 1 to 15 characters: %w", name, ErrInvalid)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return fmt.Errorf("interface name %q: character %q not allowed: %w", name, c, ErrInvalid)
		}
	}
	return nil
}

// validHostname checks a host name (RFC 1123): dot-separated labels of 1 to
// 63 letters, digits and '-', not starting or ending with '-', at most 253
// characters.
func validHostname(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("hostname %q: must be 1 to 253 characters: %w", name, ErrInvalid)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname %q: label %q must be 1 to 63 characters and not start or end with '-': %w", name, label, ErrInvalid)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("hostname %q: character %q not allowed: %w", name, c, ErrInvalid)
			}
		}
	}
	return nil
}

// validLabels checks an attachment's labels: at most 32, keys 1 to 256
// bytes and values at most 256 bytes, valid UTF-8 without control
// characters.
func validLabels(labels map[string]string) error {
	if len(labels) > 32 {
		return fmt.Errorf("%d labels, at most 32: %w", len(labels), ErrInvalid)
	}
	for k, v := range labels {
		if k == "" || len(k) > 256 || len(v) > 256 || !printable(k) || !printable(v) {
			return fmt.Errorf("label %q=%q: keys 1 to 256 bytes, values at most 256, printable: %w", k, v, ErrInvalid)
		}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
