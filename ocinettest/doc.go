// Package ocinettest helps programs that embed ocinet (custom runtimes,
// containerd client programs) test their use of it, the way
// net/http/httptest helps programs that use net/http.
//
// Without root:
//
//   - [NewEnv] gives a Manager that runs its real logic (requests checked,
//     the crash-safe journal, locks, port reservations, DEL from the
//     recorded config, rollback, GC) over a fake plugin executor,
//     [FakeCNI], on temporary directories, and a hook.Config on the same
//     state, so that sandbox.Attach, sandbox.Detach and sandbox.GC (the request's
//     parsing and validation, the hosts store) run too. The fake answers
//     like the real plugins in shape, takes addresses from a small IPAM of
//     its own, records every call, and fails, crashes the caller or holds
//     chosen calls ([FakeCNI.Inject]); [Crashed] runs the code a crash
//     cuts off, and [Env.NewManager] is the process that starts after it.
//     [Env.Leftovers] says what is still recorded.
//
// For tests with the real plugins, which need root (each helper skips the
// test with the reason when root or a tool it needs is missing, and fails
// it instead under CI=true):
//
//   - [NetNS]: a throwaway network namespace, removed when the test ends;
//   - [CheckLeaks], [TakeSnapshot], [Diff]: the leak oracle: namespaces,
//     veth and bridge links, per-container firewall rules, the per-network
//     chains, rules and set elements of the table inet ocinet (package
//     inproc), tuning's backups, IPAM leases, the CNI result cache, and
//     ocinet's journal, port and hosts records, before and after (the
//     firewall is read only as root);
//   - [FailpointPlugin]: a CNI plugin that fails, exits, sleeps or hangs
//     at a chosen command and call count ([Failpoint]), built for the test
//     (it needs the go command, not root; the real plugins beside it do).
//
// examples/runtime-unittest in the repository is a runtime's unit test
// written with this package.
//
// The fake executor reaches the Manager through ocinet.WithExec and
// ocinet.WithHost, the same seams any caller has: there is no
// second code path for tests.
//
// Errors: helpers that take a testing.TB fail the test on error. Through
// an Env's Manager, a fault whose Err is a *types.Error (the default)
// reaches the caller wrapped with ocinet.ErrPlugin; any other Err reaches
// it as itself; an uninstalled plugin is ocinet.ErrPluginNotFound.
package ocinettest
