// Package hook is ocinet's OCI runtime hook: [Run], the entry point that
// runc executes, and the versioned annotation that carries a container's
// request ([EncodeRequest], [DecodeRequest]). The work itself is package
// sandbox's ([sandbox.AttachPinned], [sandbox.DetachPinned]), which
// programs that attach a container themselves call directly. The oci.SpecOpts that put the hook into a
// container's spec are in the subpackage [github.com/ocinet/ocinet/hook/spec],
// so that a hook binary that imports only this package does not link
// containerd's client (runc starts the hook for every container, and package
// initialisation of a large client costs more than the hook's own work to
// get going).
//
// A program (a nerdctl-like CLI, a containerd client) builds a spec with
// spec.WithHooks (a createRuntime and a poststop hook that run the program's
// own binary), spec.WithRequest (what the container asks for: networks,
// published ports, name, hostname, extra hosts, DNS, carried in one
// versioned annotation, [Annotation]) and spec.WithEtcFiles (the container's
// /etc/hosts and /etc/resolv.conf, bind-mounted from the state root). runc
// then runs the hook with the OCI state on standard input:
//
//   - createRuntime: the hook pins /proc/<pid>/ns/net under the namespace
//     directory, attaches the container through an [ocinet.Manager], and
//     writes its hosts and resolv.conf files (sandbox.AttachPinned);
//   - poststop: it removes the hosts record, detaches (CNI DEL with the
//     recorded config) and removes the pin.
//
// Trust: the OCI state and the annotation come from the container's spec and
// are untrusted. They are parsed strictly and validated before anything on
// the host changes. No path on the host is taken from them: every path is
// derived from the hook's own [Config] (fixed when the spec was made) and the
// validated container ID.
//
// Requirements: Linux and root (runc runs hooks as root). The program that
// runs the hook calls ocinet.RunHelper first in main (cmd/ocinet-hook
// does).
//
// Compatibility: the annotation's JSON only ever gains optional fields; a
// spec written by an earlier version still attaches and detaches.
//
// Errors: [Run] returns nil or an error whose message is one line, meant for
// the user; errors.Is(err, ErrInvalid) means the state or the request was
// refused before anything was changed. A poststop hook never fails: what it
// cannot finish stays in the journal for [ocinet.Manager.GC] and is logged.
package hook
