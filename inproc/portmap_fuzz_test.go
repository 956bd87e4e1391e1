package inproc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzPortElements: any portMappings and previous result a config can
// carry give elements whose keys and values have the lengths of their
// maps, or an error wrapping ErrInvalid; never a panic.
func FuzzPortElements(f *testing.F) {
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"br0"},{"name":"veth0"},{"name":"eth0","sandbox":"/run/netns/x"}],
		"ips":[{"interface":2,"address":"10.4.0.2/24"},{"interface":2,"address":"fd00::2/64"}]}`
	f.Add(`[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]`, prev)
	f.Add(`[{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"},{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"::"}]`, prev)
	f.Add(`[{"hostPort":0,"containerPort":80}]`, prev)
	f.Add(`[{"hostPort":1,"containerPort":65536,"protocol":"icmp","hostIP":"x"}]`, `{"cniVersion":"1.0.0","ips":[{"interface":7,"address":"10.4.0.2/24"}]}`)
	f.Fuzz(func(t *testing.T, maps, prevResult string) {
		conf := `{"cniVersion":"1.0.0","name":"n","type":"portmap","runtimeConfig":{"portMappings":` + maps + `},"prevResult":` + prevResult + `}`
		n, err := loadAttachConf("portmap", []byte(conf))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("config error %v does not wrap ErrInvalid", err)
			}
			return
		}
		a, err := prevAttachment("portmap", n)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("prevResult error %v does not wrap ErrInvalid", err)
			}
			return
		}
		elems, err := portElements(n.RuntimeConfig.PortMaps, a, "c")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for name, els := range elems {
			s := sets[name]
			if s == nil {
				t.Fatalf("elements for unknown set %q", name)
			}
			for _, el := range els {
				if len(el.Key) != int(s.KeyType.Bytes) || len(el.Val) != int(s.DataType.Bytes) {
					b, _ := json.Marshal(el)
					t.Fatalf("set %s: element %s: key %d bytes (want %d), value %d (want %d)", name, b, len(el.Key), s.KeyType.Bytes, len(el.Val), s.DataType.Bytes)
				}
			}
		}
	})
}

// FuzzAttachmentComment: a comment made by AttachmentComment parses back
// to its parts when none contains the separators.
func FuzzAttachmentComment(f *testing.F) {
	f.Add("net", "abc", "eth0")
	f.Add("n", "", "")
	f.Fuzz(func(t *testing.T, network, id, ifName string) {
		n, i, f, ok := attachmentOf(AttachmentComment(network, id, ifName))
		if !ok {
			t.Fatalf("%q %q %q: not parsed", network, id, ifName)
		}
		if strings.Contains(network, " att=") || strings.Contains(id, "/") {
			return
		}
		if n != network || i != id || f != ifName {
			t.Fatalf("parsed %q %q %q from %q %q %q", n, i, f, network, id, ifName)
		}
	})
}
