// Package spec holds the oci.SpecOpts that put ocinet's hook into a
// container's spec: [WithHooks] adds the createRuntime and poststop hooks,
// [WithRequest] and the options that edit one part of it ([WithNetworks],
// [WithPorts], [WithName], [WithHostname], [WithExtraHosts], [WithDNS]) set
// the request annotation the hook reads, [WithEtcFiles] bind-mounts the
// container's /etc/hosts and /etc/resolv.conf, and [WithNetNSPath] makes a
// container join a namespace made beforehand.
//
// Every option is idempotent: applying it twice gives the same spec. Hooks
// of other programs in the spec are kept.
//
// Errors: an option returns nil or an error wrapping hook.ErrInvalid for
// bad input (a relative hook path, an invalid request, a container ID that
// is not valid); anything else is a file-system error from WithEtcFiles.
package spec
