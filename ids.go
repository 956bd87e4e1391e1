package ocinet

import (
	"fmt"
	"unicode/utf8"

	"github.com/ocinet/ocinet/internal/ident"
)

// The rules of each kind of name are package ident's, shared by every
// package.
func validID(id string) error            { return ident.AttachmentID(id) }
func validNetworkName(name string) error { return ident.NetworkName(name) }
func validIfaceName(name string) error   { return ident.IfaceName(name) }
func validHostname(name string) error    { return ident.Hostname("hostname", name) }

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
