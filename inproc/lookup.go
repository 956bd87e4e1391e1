package inproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// lookupElements returns the elements of set s that have one of keys, by
// key (as a string), asking the kernel for each key on its own
// (NFT_MSG_GETSETELEM without NLM_F_DUMP). A listing of the whole set
// (Conn.GetSetElements) proves nothing about one element while the set
// changes: a dump that spans several messages skips elements, or repeats
// them, when a transaction or the kernel's garbage collector (which frees
// expired elements) changes the set between two of its messages, and
// nothing in the reply says so. A key that the set lacks, or a set or
// table that does not exist, is left out of the result.
func lookupElements(s *nftables.Set, keys [][]byte) (map[string]nftables.SetElement, error) {
	out := map[string]nftables.SetElement{}
	if len(keys) == 0 {
		return out, nil
	}
	lookups.Add(int64(len(keys)))
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	defer c.Close()
	// One request per key, sent lookupBatch at a time: the kernel answers
	// each in turn, with the element or an error (ENOENT: no such element,
	// set or table), one message each, which wait in the socket's buffer
	// until read.
	for len(keys) > 0 {
		n := min(len(keys), lookupBatch)
		reqs := make([]netlink.Message, n)
		for i, k := range keys[:n] {
			if reqs[i], err = elementRequest(s, k); err != nil {
				return nil, err
			}
		}
		keys = keys[n:]
		if _, err := c.SendMessages(reqs); err != nil {
			return nil, fmt.Errorf("nftables: look up elements of set %s: %w", s.Name, err)
		}
		for answered := 0; answered < n; {
			msgs, err := c.Receive()
			if errors.Is(err, unix.ENOENT) {
				answered++
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("nftables: look up an element of set %s: %w", s.Name, err)
			}
			for _, m := range msgs {
				answered++
				els, err := decodeElements(m)
				if err != nil {
					return nil, fmt.Errorf("nftables: element of set %s: %w", s.Name, err)
				}
				for _, el := range els {
					out[string(el.Key)] = el
				}
			}
		}
	}
	return out, nil
}

// lookups counts the keys looked up, for the tests of when an ADD looks.
var lookups atomic.Int64

// lookupBatch bounds the requests sent before their answers are read.
const lookupBatch = 64

// elementRequest is the request for the element of s with key k.
func elementRequest(s *nftables.Set, k []byte) (netlink.Message, error) {
	key, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: k}})
	if err != nil {
		return netlink.Message{}, err
	}
	elem, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: key}})
	if err != nil {
		return netlink.Message{}, err
	}
	list, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: elem}})
	if err != nil {
		return netlink.Message{}, err
	}
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(s.Table.Name + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(s.Name + "\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: list},
	})
	if err != nil {
		return netlink.Message{}, err
	}
	// nfgenmsg: family, version, resource id (big endian, unused).
	hdr := []byte{byte(s.Table.Family), unix.NFNETLINK_V0, 0, 0}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM), Flags: netlink.Request},
		Data:   append(hdr, data...),
	}, nil
}

// decodeElements reads the elements of a NEWSETELEM message: key, value,
// timeout, time to expiry and comment.
func decodeElements(m netlink.Message) ([]nftables.SetElement, error) {
	if len(m.Data) < 4 {
		return nil, errors.New("short message")
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	var out []nftables.SetElement
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				var el nftables.SetElement
				list.Nested(func(d *netlink.AttributeDecoder) error {
					for d.Next() {
						switch d.Type() {
						case unix.NFTA_SET_ELEM_KEY:
							d.Nested(func(v *netlink.AttributeDecoder) error { el.Key = dataValue(v); return nil })
						case unix.NFTA_SET_ELEM_DATA:
							d.Nested(func(v *netlink.AttributeDecoder) error { el.Val = dataValue(v); return nil })
						case unix.NFTA_SET_ELEM_TIMEOUT:
							el.Timeout = time.Duration(d.Uint64()) * time.Millisecond
						case unix.NFTA_SET_ELEM_EXPIRATION:
							el.Expires = time.Duration(d.Uint64()) * time.Millisecond
						case unix.NFTA_SET_ELEM_USERDATA:
							el.Comment, _ = userdata.GetString(d.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
						}
					}
					return nil
				})
				out = append(out, el)
			}
			return nil
		})
	}
	return out, ad.Err()
}

// dataValue is the NFTA_DATA_VALUE of an NFTA_DATA nest.
func dataValue(v *netlink.AttributeDecoder) []byte {
	var b []byte
	for v.Next() {
		if v.Type() == unix.NFTA_DATA_VALUE {
			b = v.Bytes()
		}
	}
	return b
}
