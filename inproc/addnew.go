package inproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// An ADD adds its attachment's elements as new ones: the kernel refuses an
// element whose key is already there (NLM_F_EXCL, EEXIST; EBUSY when the
// values differ), and the whole transaction with it. Without that flag
// a kernel may keep an element with the same key and value as it is,
// timeout and all, and say nothing (6.18 gives it the new one's instead;
// older ones need not): an element that an earlier attachment's DEL left
// expiring (its host port and address given to this one) would then go a
// tick later. So an ADD whose elements the kernel takes as new knows
// that no key of theirs was expiring, with no lookup (waitExpired looks up
// every key, one request each: a noticeable part of an ADD that publishes
// twenty ports). Only when a key is taken does the ADD wait for expiring
// elements to go and add the elements as before, where a key held by a
// live attachment is a conflict.
//
// The library (google/nftables) sets no NLM_F_EXCL on the elements it
// adds, so this transaction is written here: the same messages as
// Conn.SetAddElements, with the flag on those of the per-attachment sets.
// The subnets and the network's own elements, which every attachment of
// the network adds again, go without it.

// errUnencodable is an element addNew does not write (a verdict, a key
// range or a timeout): the caller adds the elements through the library.
var errUnencodable = errors.New("element not written here")

// addAttachmentElements adds, in one transaction, the subnet elements of
// subnets (commented for bridge) and elems, by set: those of the
// per-attachment sets as new ones, once no element with one of their keys
// is still expiring. The error of the transaction that the library's
// Conn.Flush would return keeps its errno (EBUSY, EEXIST, ENOENT).
func addAttachmentElements(subnets []net.IPNet, bridge string, elems map[string][]nftables.SetElement) error {
	order := []string{}
	all := map[string][]nftables.SetElement{}
	for _, sn := range subnets {
		name := Subnets6
		if sn.IP.To4() != nil {
			name = Subnets4
		}
		all[name] = append(all[name], subnetElements(&sn, NetworkComment(bridge))...)
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	for _, name := range StaticSets {
		if len(elems[name]) > 0 {
			all[name] = append(all[name], elems[name]...)
			if !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	err := addNew(order, all)
	if err == nil || !(errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY) || errors.Is(err, errUnencodable)) {
		return err
	}
	// A key is taken: by an element still expiring, or by another
	// attachment's (the add below then fails as it did).
	if err := waitExpired(elems); err != nil {
		return err
	}
	conn, err := newConn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer closeConn(conn)
	for _, name := range order {
		if err := conn.SetAddElements(sets[name], all[name]); err != nil {
			return err
		}
	}
	return conn.Flush()
}

// addNew adds the elements of all, set by set in order, in one
// transaction; those of the per-attachment sets with NLM_F_EXCL.
func addNew(order []string, all map[string][]nftables.SetElement) error {
	msgs := make([]netlink.Message, 0, len(order)+2)
	msgs = append(msgs, batchMessage(unix.NFNL_MSG_BATCH_BEGIN))
	for _, name := range order {
		flags := netlink.Request | netlink.Acknowledge | netlink.Create
		if slices.Contains(attachmentSets, name) {
			flags |= netlink.Excl
		}
		m, err := newElementsMessage(sets[name], all[name], flags)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, batchMessage(unix.NFNL_MSG_BATCH_END))
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.Close()
	// The kernel answers every message that asks for an ack, with the
	// ack or its error, before the call returns: the deadline only
	// bounds a wait for an answer that would never come.
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.SendMessages(msgs); err != nil {
		return fmt.Errorf("nftables: add elements: %w", err)
	}
	var first error
	for answered := 0; answered < len(order); {
		got, err := c.Receive()
		if err != nil {
			answered++
			if first == nil {
				first = err
			}
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ETIMEDOUT) || isTimeout(err) {
				break // no more answers come, or none in time
			}
			continue
		}
		answered += len(got)
	}
	if first != nil {
		return fmt.Errorf("nftables: add elements: %w", first)
	}
	return nil
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// batchMessage is the start (NFNL_MSG_BATCH_BEGIN) or the end of a
// transaction of the nftables subsystem.
func batchMessage(t uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}

// newElementsMessage is NFT_MSG_NEWSETELEM with els for set s, with the
// header flags given: the attributes Conn.SetAddElements writes for an
// element with a key, a value, an interval end flag and a comment.
func newElementsMessage(s *nftables.Set, els []nftables.SetElement, flags netlink.HeaderFlags) (netlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, s.Table.Name)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(list *netlink.AttributeEncoder) error {
		for _, el := range els {
			if el.VerdictData != nil || len(el.KeyEnd) > 0 || el.Timeout != 0 {
				return errUnencodable
			}
			list.Nested(unix.NFTA_LIST_ELEM, func(e *netlink.AttributeEncoder) error {
				if el.IntervalEnd {
					e.Uint32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
				}
				e.Nested(unix.NFTA_SET_ELEM_KEY, func(v *netlink.AttributeEncoder) error {
					v.Bytes(unix.NFTA_DATA_VALUE, el.Key)
					return nil
				})
				if len(el.Val) > 0 {
					e.Nested(unix.NFTA_SET_ELEM_DATA, func(v *netlink.AttributeEncoder) error {
						v.Bytes(unix.NFTA_DATA_VALUE, el.Val)
						return nil
					})
				}
				if el.Comment != "" {
					e.Bytes(unix.NFTA_SET_ELEM_USERDATA, userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, el.Comment))
				}
				return nil
			})
		}
		return nil
	})
	data, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	hdr := []byte{byte(s.Table.Family), unix.NFNETLINK_V0, 0, 0}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM), Flags: flags},
		Data:   append(hdr, data...),
	}, nil
}
