package hook

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

func TestDecodeRequest(t *testing.T) {
	good := `{"version":1,"networks":["bridge"],"ports":["127.0.0.1:8080:80/tcp"],"name":"web","hostname":"web.local","extraHosts":["db:10.0.0.5"],"dnsServers":["1.1.1.1"]}`
	r, err := DecodeRequest(good)
	if err != nil {
		t.Fatalf("DecodeRequest(%s): %v", good, err)
	}
	want := sandbox.Request{Networks: []string{"bridge"}, Name: "web", Hostname: "web.local",
		ExtraHosts: []hosts.ExtraHost{{Name: "db", IP: netip.MustParseAddr("10.0.0.5")}},
		DNS:        hosts.DNS{Servers: []netip.Addr{netip.MustParseAddr("1.1.1.1")}}}
	m, _ := portmap.Parse("127.0.0.1:8080:80")
	want.Ports = []portmap.Mapping{m}
	cmpOpts := cmp.Options{cmp.Comparer(func(a, b portmap.Mapping) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}
	if diff := cmp.Diff(want, r, cmpOpts); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	// The codec round-trips: what EncodeRequest writes decodes to the same.
	enc, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRequest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back, cmpOpts); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestDecodeModes: the network modes none and host travel in the
// annotation and back.
func TestDecodeModes(t *testing.T) {
	for _, mode := range []sandbox.Mode{sandbox.ModeNone, sandbox.ModeHost} {
		in := `{"version":1,"mode":"` + string(mode) + `","name":"web","extraHosts":["db:10.0.0.5"]}`
		r, err := DecodeRequest(in)
		if err != nil {
			t.Fatalf("DecodeRequest(%s): %v", in, err)
		}
		if r.Mode != mode || r.Name != "web" || len(r.ExtraHosts) != 1 {
			t.Errorf("decoded %+v", r)
		}
		enc, err := EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		if enc != in {
			t.Errorf("encoded %s, want %s", enc, in)
		}
	}
	if enc, err := EncodeRequest(sandbox.Request{Name: "web"}); err != nil || strings.Contains(enc, "mode") {
		t.Errorf("a request on networks is encoded as %s (%v): mode must be left out", enc, err)
	}
}

// TestDecodeRecordedAnnotation decodes an annotation exactly as a spec
// written by the first release carries it: specs in the field still attach
// after an upgrade.
func TestDecodeRecordedAnnotation(t *testing.T) {
	recorded := `{"version":1,"networks":["bridge","front-1"],"ports":["127.0.0.1:8080:80/tcp","[::1]:9090:90/tcp","5353:53/udp"],"name":"web","hostname":"web","extraHosts":["db:10.0.0.5","gw:host-gateway"],"dnsServers":["1.1.1.1"],"dnsSearch":["example.com"],"dnsOptions":["ndots:2"],"static":[{"network":"bridge","ips":["10.4.0.9"],"mac":"02:42:ac:11:00:09"}]}`
	r, err := DecodeRequest(recorded)
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	if len(r.Ports) != 3 || r.Ports[2].Protocol != "udp" || len(r.ExtraHosts) != 2 || !r.ExtraHosts[1].Gateway ||
		len(r.Static) != 1 || r.Static[0].MAC.String() != "02:42:ac:11:00:09" || r.DNS.Options[0] != "ndots:2" {
		t.Errorf("decoded %+v", r)
	}
}

func TestDecodeRequestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", ``, "EOF"},
		{"not json", `web`, "invalid character"},
		{"no version", `{}`, "version 0"},
		{"future version", `{"version":2}`, "version 2"},
		{"unknown field", `{"version":1,"netns":"/proc/1/ns/net"}`, `unknown field "netns"`},
		{"trailing data", `{"version":1}{}`, "trailing data"},
		{"bad port", `{"version":1,"ports":["8080:80/tpc"]}`, `"tpc"`},
		{"port as object", `{"version":1,"ports":[{"hostPort":1}]}`, "cannot unmarshal"},
		{"newline in name", `{"version":1,"name":"web\nevil 1.2.3.4"}`, "web"},
		{"space in hostname", `{"version":1,"hostname":"a b"}`, "a b"},
		{"hash in name", `{"version":1,"name":"a#b"}`, "a#b"},
		{"NUL in name", `{"version":1,"name":"a\u0000b"}`, "a"},
		{"path in network", `{"version":1,"networks":["../../etc"]}`, "../../etc"},
		{"bad extra host", `{"version":1,"extraHosts":["db:not-an-ip"]}`, "not-an-ip"},
		{"bad dns", `{"version":1,"dnsServers":["1.1.1.1 evil"]}`, "1.1.1.1 evil"},
		{"too many networks", `{"version":1,"networks":[` + strings.Repeat(`"n",`, 16) + `"n"]}`, "too many"},
		{"static bad ip", `{"version":1,"static":[{"network":"bridge","ips":["10.0.0.300"]}]}`, "10.0.0.300"},
		{"static bad mac", `{"version":1,"static":[{"network":"bridge","mac":"02:42"}]}`, "02:42"},
		{"static three ips", `{"version":1,"static":[{"network":"bridge","ips":["10.0.0.2","10.0.0.3","::2"]}]}`, "one per family"},
		{"static bad network", `{"version":1,"static":[{"network":"../x"}]}`, "../x"},
		{"unknown mode", `{"version":1,"mode":"container:web"}`, `network mode "container:web"`},
		{"mode none with networks", `{"version":1,"mode":"none","networks":["bridge"]}`, "network mode none with networks (bridge)"},
		{"mode host with ports", `{"version":1,"mode":"host","ports":["8080:80/tcp"]}`, "network mode host with published ports"},
		{"mode host with aliases", `{"version":1,"mode":"host","aliases":["db"]}`, "network mode host with network aliases"},
		{"mode none with static", `{"version":1,"mode":"none","static":[{"network":"bridge","ips":["10.4.0.9"]}]}`, "network mode none with static"},
		{"mode none with host-gateway", `{"version":1,"mode":"none","extraHosts":["gw:host-gateway"]}`, "network mode none with an extra host at host-gateway"},
		{"too large", `{"version":1,"name":"` + strings.Repeat("a", maxRequestSize) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest(tc.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeRequest: err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") && tc.name != "newline in name" {
				t.Errorf("error has a newline: %q", err)
			}
		})
	}
}

func TestParseState(t *testing.T) {
	st, err := ParseState(strings.NewReader(`{"ociVersion":"1.0.2","id":"web","status":"creating","pid":42,"bundle":"/b","annotations":{"a":"b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "web" || st.Pid != 42 || st.Annotations["a"] != "b" {
		t.Errorf("state: %+v", st)
	}
	for _, in := range []string{
		``,
		`{"id":"../etc","pid":1}`,
		`{"id":"a/b","pid":1}`,
		`{"id":"","pid":1}`,
		`{"id":"web","pid":-1}`,
		`{"id":"web","pid":1,"extra":true}`,
		`{"id":"web"} trailing`,
		`{"id":"` + strings.Repeat("a", 77) + `"}`,
		`{"id":"web.","pid":1}`,
		`{"id":"we\nb","pid":1}`,
	} {
		if _, err := ParseState(strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseState(%q): err = %v, want ErrInvalid", in, err)
		}
	}
	big := `{"id":"web","bundle":"` + strings.Repeat("a", maxStateSize) + `"}`
	if _, err := ParseState(strings.NewReader(big)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized state: err = %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"version":1}`, `{"version":1,"ports":["80"],"name":"a"}`, `{"version":1,"extraHosts":["h:host-gateway"]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := DecodeRequest(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, n := range []string{r.Name, r.Hostname} {
			if strings.ContainsAny(n, " \t\r\n#\x00") {
				t.Fatalf("accepted name %q", n)
			}
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add(`{"ociVersion":"1.0.2","id":"web","status":"creating","pid":42,"bundle":"/b"}`)
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(strings.NewReader(s))
		if err != nil {
			return
		}
		if validContainerID(st.ID) != nil || strings.Contains(st.ID, "/") || st.Pid < 0 {
			t.Fatalf("accepted state %+v", st)
		}
	})
}
