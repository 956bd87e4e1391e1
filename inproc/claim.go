package inproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/version"
)

// Claims reports whether every plugin of a conflist would run in process.
// When one would not, the error names the plugin and the field (or type)
// it does not know, and wraps ErrNotSupported; a conflist that is not
// valid JSON gets ErrInvalid.
func Claims(conflist []byte) error {
	var list struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(conflist, &list); err != nil {
		return fmt.Errorf("conflist: %v: %w", err, ErrInvalid)
	}
	if len(list.Plugins) == 0 {
		return fmt.Errorf("conflist %q: no plugins: %w", list.Name, ErrInvalid)
	}
	for i, p := range list.Plugins {
		if err := ClaimsPlugin(p); err != nil {
			return fmt.Errorf("conflist %q: plugin %d: %w", list.Name, i, err)
		}
	}
	return nil
}

// ClaimsPlugin reports whether one plugin config (an entry of a
// conflist's plugins, or the full config a plugin gets on its standard
// input) would run in process: nil when it would; else an error naming
// the plugin and the field (or declared capability) it does not know,
// wrapping ErrNotSupported. At run time the CNI_ARGS keys count too: those
// the Manager passes (IgnoreUnknown, IP, MAC, NERDCTL_CNI_DHCP_HOSTNAME)
// are claimed.
func ClaimsPlugin(pluginConf []byte) error {
	return claim("", pluginConf, "")
}

// Fields each claimed plugin type accepts. Values are checked further by
// the type's own claim function.
var (
	// commonFields are those every plugin gets: the config's own, and
	// what the CNI library injects (name, cniVersion, prevResult,
	// runtimeConfig for declared capabilities, the attachments GC keeps).
	commonFields = []string{"type", "name", "cniVersion", "capabilities", "prevResult", "runtimeConfig", "args", "cni.dev/valid-attachments", "cni.dev/attachments"}
	typeFields   = map[string][]string{
		"bridge":   {"bridge", "isGateway", "isDefaultGateway", "ipMasq", "hairpinMode", "mtu", "promiscMode", "ipam", "dns"},
		"loopback": {},
		"tuning":   {"mac", "sysctl"},
		// portmap: the default config the templates write; snat,
		// markMasqBit, conditionsV4/V6, backend and the rest run the binary.
		"portmap":  {},
		"firewall": {"ingressPolicy"},
	}
	// runtimeFields are the capability arguments each type implements.
	runtimeFields = map[string][]string{"bridge": {"ips", "mac"}, "loopback": {}, "tuning": {"mac"}, "portmap": {"portMappings"}, "firewall": {}}
	// cniArgsFields are the keys of args.cni each type implements.
	cniArgsFields = map[string][]string{"bridge": {"ips", "mac"}, "loopback": {}, "tuning": {"mac", "sysctl"}, "portmap": {}, "firewall": {}}
	ipamFields    = []string{"type", "ranges", "routes", "dataDir"}
	// rangeFields: "ipRange" is what nerdctl writes beside rangeStart and
	// rangeEnd; host-local ignores it, and so does this package.
	rangeFields = []string{"subnet", "rangeStart", "rangeEnd", "gateway", "ipRange"}
	routeFields = []string{"dst", "gw"}
	dnsFields   = []string{"nameservers", "domain", "search", "options"}
	// envArgKeys are the CNI_ARGS keys claimed: those the plugins read,
	// and those they ignore under IgnoreUnknown.
	envArgKeys = []string{"IgnoreUnknown", "IP", "MAC", "NERDCTL_CNI_DHCP_HOSTNAME",
		"K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"}
)

// claim checks one plugin config and the CNI_ARGS it runs with. plugin is
// the type the caller expects ("" for the config's own).
func claim(plugin string, conf []byte, envArgs string) error {
	obj, err := object(conf)
	if err != nil {
		return fmt.Errorf("plugin config: %v: %w", err, ErrInvalid)
	}
	var typ string
	if raw, ok := obj["type"]; ok {
		_ = json.Unmarshal(raw, &typ)
	}
	if plugin == "" {
		plugin = typ
	}
	if typ != plugin {
		return fmt.Errorf("plugin %s: config names type %q: %w", plugin, typ, ErrInvalid)
	}
	fields, ok := typeFields[typ]
	if !ok {
		return fmt.Errorf("plugin %q runs as a binary: %w", typ, ErrNotSupported)
	}
	where := "plugin " + typ
	if err := knownKeys(where, obj, append(slices.Clone(commonFields), fields...)); err != nil {
		return err
	}
	if raw, ok := obj["cniVersion"]; ok {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s: field cniVersion: %v: %w", where, err, ErrInvalid)
		}
		if ok, err := version.GreaterThanOrEqualTo(v, "0.3.0"); err != nil || !ok {
			return fmt.Errorf("%s: cniVersion %q is older than 0.3.0: %w", where, v, ErrNotSupported)
		}
	}
	if err := subKeys(where, obj, "runtimeConfig", runtimeFields[typ]); err != nil {
		return err
	}
	// The CNI library injects runtimeConfig for each declared capability:
	// a capability not implemented here would come as an unknown field.
	if raw, ok := obj["capabilities"]; ok && string(raw) != "null" {
		var caps map[string]bool
		if err := json.Unmarshal(raw, &caps); err != nil {
			return fmt.Errorf("%s: field capabilities: %v: %w", where, err, ErrInvalid)
		}
		for _, k := range sortedKeys(caps) {
			if caps[k] && !slices.Contains(runtimeFields[typ], k) {
				return fmt.Errorf("%s: capability %q: %w", where, k, ErrNotSupported)
			}
		}
	}
	if raw, ok := obj["args"]; ok {
		args, err := object(raw)
		if err != nil {
			return fmt.Errorf("%s: field args: %v: %w", where, err, ErrInvalid)
		}
		if err := knownKeys(where+": args", args, []string{"cni"}); err != nil {
			return err
		}
		if err := subKeys(where+": args", args, "cni", cniArgsFields[typ]); err != nil {
			return err
		}
	}
	if typ == "bridge" {
		if err := claimIPAM(where, obj); err != nil {
			return err
		}
		if err := subKeys(where, obj, "dns", dnsFields); err != nil {
			return err
		}
	}
	if typ == "firewall" {
		if raw, ok := obj["ingressPolicy"]; ok {
			var p string
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("%s: field ingressPolicy: %v: %w", where, err, ErrInvalid)
			}
			if p != "" && p != "none" && p != "same-bridge" {
				return fmt.Errorf("%s: ingressPolicy %q: %w", where, p, ErrNotSupported)
			}
		}
	}
	return claimEnvArgs(where, envArgs)
}

func claimIPAM(where string, obj map[string]json.RawMessage) error {
	raw, ok := obj["ipam"]
	if !ok {
		return fmt.Errorf("%s: no ipam (a layer 2 bridge) runs as a binary: %w", where, ErrNotSupported)
	}
	ipam, err := object(raw)
	if err != nil {
		return fmt.Errorf("%s: field ipam: %v: %w", where, err, ErrInvalid)
	}
	var typ string
	_ = json.Unmarshal(ipam["type"], &typ)
	if typ != "host-local" {
		return fmt.Errorf("%s: ipam type %q runs as a binary: %w", where, typ, ErrNotSupported)
	}
	where += ": ipam"
	if err := knownKeys(where, ipam, ipamFields); err != nil {
		return err
	}
	var ranges [][]json.RawMessage
	if err := json.Unmarshal(ipam["ranges"], &ranges); err != nil || len(ranges) == 0 {
		return fmt.Errorf("%s: no ranges (or not a list of range sets): %w", where, ErrNotSupported)
	}
	for i, set := range ranges {
		if len(set) != 1 {
			return fmt.Errorf("%s: range set %d has %d ranges, only one is implemented: %w", where, i, len(set), ErrNotSupported)
		}
		r, err := object(set[0])
		if err != nil {
			return fmt.Errorf("%s: range set %d: %v: %w", where, i, err, ErrInvalid)
		}
		if err := knownKeys(fmt.Sprintf("%s: range set %d", where, i), r, rangeFields); err != nil {
			return err
		}
	}
	if raw, ok := ipam["routes"]; ok {
		var routes []json.RawMessage
		if err := json.Unmarshal(raw, &routes); err != nil {
			return fmt.Errorf("%s: field routes: %v: %w", where, err, ErrInvalid)
		}
		for i, rt := range routes {
			r, err := object(rt)
			if err != nil {
				return fmt.Errorf("%s: route %d: %v: %w", where, i, err, ErrInvalid)
			}
			if err := knownKeys(fmt.Sprintf("%s: route %d", where, i), r, routeFields); err != nil {
				return err
			}
		}
	}
	return nil
}

func claimEnvArgs(where, envArgs string) error {
	if envArgs == "" {
		return nil
	}
	for _, kv := range strings.Split(envArgs, ";") {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%s: CNI_ARGS %q: not KEY=VALUE: %w", where, kv, ErrInvalid)
		}
		if !slices.Contains(envArgKeys, k) {
			return fmt.Errorf("%s: CNI_ARGS key %q: %w", where, k, ErrNotSupported)
		}
	}
	return nil
}

// object decodes a JSON object, refusing duplicate keys (which encoding/json
// would silently resolve to the last).
func object(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("key %q given twice", key)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object")
	}
	return out, nil
}

func knownKeys(where string, obj map[string]json.RawMessage, known []string) error {
	var unknown []string
	for k := range obj {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("%s: field %q: %w", where, unknown[0], ErrNotSupported)
}

// subKeys checks the keys of obj[field], an object, when it is there.
func subKeys(where string, obj map[string]json.RawMessage, field string, known []string) error {
	raw, ok := obj[field]
	if !ok || string(raw) == "null" {
		return nil
	}
	sub, err := object(raw)
	if err != nil {
		return fmt.Errorf("%s: field %s: %v: %w", where, field, err, ErrInvalid)
	}
	return knownKeys(where+": "+field, sub, known)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
