// Package nftfw removes the per-bridge isolation rules that the CNI
// firewall plugin leaves behind. With an ingressPolicy ("same-bridge",
// "isolated") the plugin appends rules to the iptables chains
// CNI-ISOLATION-STAGE-1 and CNI-ISOLATION-STAGE-2 of table filter that name
// the network's bridge (-i BRIDGE, -o BRIDGE), and never removes them, since
// it cannot know when the bridge's last container is gone. When a network
// is removed they are dead weight, and a new network whose bridge gets the
// same name would inherit them.
//
// On hosts whose iptables is iptables-nft those rules are nftables rules in
// the tables "ip filter" and "ip6 filter"; this package lists them with
// github.com/google/nftables, decodes each rule's expressions (the meta
// iifname / oifname load followed by the compare with the device name that
// iptables-nft writes for -i and -o) and deletes the matching ones by
// handle. It never runs iptables or nft. On hosts with legacy iptables (the
// rules live in x_tables, which netlink does not reach) it changes nothing
// and says so in its report.
//
// Needs: Linux and CAP_NET_ADMIN in the network namespace it works on (the
// caller's, or the one given with [WithNetNS]).
//
// Threads and locks: none of its own; each call opens its own netlink
// connection, bound to the namespace when one is given, so the calling
// thread never switches namespace. Concurrent removals are safe: a rule
// already gone is not an error.
//
// Errors: nil (done, also when there was nothing to remove); any other
// error names the netlink operation that failed.
package nftfw
