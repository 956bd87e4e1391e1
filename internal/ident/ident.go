// Package ident holds ocinet's one rule for each kind of name: container
// IDs, containerd namespaces, attachment IDs, network names, host names and
// interface names. Every package checks names through it, so a name one
// package accepts is accepted by the others. Errors wrap
// errdefs.ErrInvalid, name the kind and quote the value.
//
// The checks are loops, not regular expressions: a regexp compiled at
// package init costs the hook binary's start more than its own work.
package ident

import (
	"fmt"
	"strings"

	"github.com/ocinet/ocinet/internal/errdefs"
)

// Limits of each kind of name.
const (
	MaxContainerID  = 76  // containerd's identifier limit
	MaxNamespace    = 76  // the same rule as container IDs
	MaxAttachmentID = 153 // "<namespace>-<container ID>"
	MaxNetworkName  = 64
	MaxHostname     = 253 // RFC 1035 section 2.3.4, without the trailing dot
	maxLabel        = 63
	MaxIfaceName    = 15 // IFNAMSIZ - 1
)

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// containerd checks containerd's identifier rule: groups of letters and
// digits joined by one of '.', '_' or '-', 1 to max characters.
func containerd(kind, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s %q: must be 1 to %d characters: %w", kind, s, max, errdefs.ErrInvalid)
	}
	prevSep := true
	for _, c := range []byte(s) {
		sep := c == '.' || c == '_' || c == '-'
		switch {
		case isAlnum(c):
			prevSep = false
		case sep && !prevSep:
			prevSep = true
		default:
			return fmt.Errorf("%s %q: character %q not allowed here (letters and digits, joined by single '.', '_' or '-'): %w", kind, s, c, errdefs.ErrInvalid)
		}
	}
	if prevSep {
		return fmt.Errorf("%s %q: must end with a letter or digit: %w", kind, s, errdefs.ErrInvalid)
	}
	return nil
}

// ContainerID checks a container ID the way containerd does.
func ContainerID(id string) error { return containerd("container id", id, MaxContainerID) }

// Namespace checks a containerd namespace (containerd's identifier rule).
func Namespace(ns string) error { return containerd("namespace", ns, MaxNamespace) }

// fileSafe checks 1 to max of [A-Za-z0-9_.-], starting with a letter or
// digit: safe as one path element.
func fileSafe(kind, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s %q: must be 1 to %d characters: %w", kind, s, max, errdefs.ErrInvalid)
	}
	for i, c := range []byte(s) {
		if !isAlnum(c) && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return fmt.Errorf("%s %q: character %q not allowed (letters, digits, '.', '_' and '-', starting with a letter or digit): %w", kind, s, c, errdefs.ErrInvalid)
		}
	}
	return nil
}

// AttachmentID checks an attachment ID (the CNI container ID, nerdctl's
// "<namespace>-<container ID>"): it becomes a file name.
func AttachmentID(id string) error { return fileSafe("attachment id", id, MaxAttachmentID) }

// NetworkName checks a network name the way docker and nerdctl do: letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func NetworkName(name string) error { return fileSafe("network name", name, MaxNetworkName) }

// Hostname checks a host name or any other name a hosts file or DNS answers
// for (RFC 1123): dot-separated labels of 1 to 63 letters, digits and inner
// '-', at most 253 characters; no trailing dot.
func Hostname(kind, s string) error {
	if s == "" || len(s) > MaxHostname {
		return fmt.Errorf("%s %q: must be 1 to %d characters: %w", kind, s, MaxHostname, errdefs.ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' {
			return fmt.Errorf("%s %q: character %q not allowed (letters, digits, '-' and '.'): %w", kind, s, c, errdefs.ErrInvalid)
		}
	}
	for label := range strings.SplitSeq(s, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%s %q: empty label: %w", kind, s, errdefs.ErrInvalid)
		case len(label) > maxLabel:
			return fmt.Errorf("%s %q: label %q is longer than %d characters: %w", kind, s, label, maxLabel, errdefs.ErrInvalid)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("%s %q: label %q starts or ends with '-': %w", kind, s, label, errdefs.ErrInvalid)
		}
	}
	return nil
}

// IfaceName checks a Linux interface name: 1 to 15 bytes, no '/', ':',
// white space or control characters, not "." or "..".
func IfaceName(name string) error {
	if name == "" || len(name) > MaxIfaceName || name == "." || name == ".." {
		return fmt.Errorf("interface name %q: must be 1 to %d characters: %w", name, MaxIfaceName, errdefs.ErrInvalid)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return fmt.Errorf("interface name %q: character %q not allowed: %w", name, c, errdefs.ErrInvalid)
		}
	}
	return nil
}
