package inproc_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// churnKey is a key of the test map: 127.0.0.1 . port i.
func churnKey(i int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, 0x7f000001)
	binary.BigEndian.PutUint16(b[4:], uint16(i))
	return b
}

// While a map changes (elements that expire at once are added all the
// time, and the kernel frees them), a lookup of each key finds every
// element that stays, with its value and comment, and one that expires
// with its time left; the listing of the whole map, which the same churn
// makes skip elements, is what the DEL and the ADD no longer trust.
func TestLookupElementsWhileTheSetChanges(t *testing.T) {
	testenv.RequireRoot(t)
	path := newNS(t)
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	conn := func() *nftables.Conn {
		c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := conn()
	tbl := c.AddTable(&nftables.Table{Name: "lookup", Family: nftables.TableFamilyINet})
	typ := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	set := &nftables.Set{Table: tbl, Name: "m", KeyType: typ, DataType: typ, IsMap: true, Concatenation: true, HasTimeout: true}
	if err := c.AddSet(set, nil); err != nil {
		t.Fatal(err)
	}
	const stay = 200
	pad := strings.Repeat("x", 80) // long comments: a listing spans several messages
	var keys [][]byte
	var els []nftables.SetElement
	for i := range stay {
		keys = append(keys, churnKey(i))
		els = append(els, nftables.SetElement{Key: churnKey(i), Val: churnKey(i + 1), Comment: fmt.Sprintf("stay-%d-%s", i, pad)})
	}
	els = append(els, nftables.SetElement{Key: churnKey(stay), Val: churnKey(1), Comment: "going", Timeout: time.Hour})
	if err := c.SetAddElements(set, els); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	defer churn(conn(), set, 200*time.Microsecond, func(k int) nftables.SetElement {
		return nftables.SetElement{Key: churnKey(1000 + k%20000), Val: churnKey(1), Comment: "tmp-" + pad}
	})()

	const rounds = 20
	short := 0
	for round := range rounds {
		var got map[string]nftables.SetElement
		if err := ns.Do(func() error {
			var err error
			got, err = inproc.LookupElementsForTest(set, append(keys, churnKey(stay), churnKey(stay+1)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			el, ok := got[string(k)]
			if !ok {
				t.Fatalf("round %d: the lookup did not find element %d", round, i)
			}
			if string(el.Val) != string(churnKey(i+1)) || !strings.HasPrefix(el.Comment, fmt.Sprintf("stay-%d-", i)) || el.Expires != 0 {
				t.Fatalf("round %d: element %d: value %x, comment %q, expires in %v", round, i, el.Val, el.Comment, el.Expires)
			}
		}
		if el, ok := got[string(churnKey(stay))]; !ok || el.Comment != "going" || el.Expires <= 0 || el.Expires > time.Hour {
			t.Fatalf("round %d: the expiring element: %+v, %v", round, el, ok)
		}
		if _, ok := got[string(churnKey(stay+1))]; ok {
			t.Fatalf("round %d: found a key the map does not have", round)
		}
		if len(got) != stay+1 {
			t.Fatalf("round %d: %d elements, want %d", round, len(got), stay+1)
		}
		listed, err := conn().GetSetElements(set)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, el := range listed {
			if strings.HasPrefix(el.Comment, "stay-") {
				seen[el.Comment] = true
			}
		}
		if len(seen) < stay {
			short++
		}
	}
	t.Logf("listings of the whole map that missed an element that stays: %d of %d", short, rounds)
	// No table in the namespace at all: nothing found, no error.
	c.DelTable(tbl)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error {
		got, err := inproc.LookupElementsForTest(set, keys[:1])
		if err != nil || len(got) != 0 {
			return fmt.Errorf("lookup in a table that is gone: %v, %v", got, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// churn adds to set, in transactions of 20 until the returned stop is
// called, elements that expire after a millisecond (the k-th made by mk),
// sleeping pause between two: a set that changes all the time, by
// transactions and by the kernel freeing what expired.
func churn(c *nftables.Conn, set *nftables.Set, pause time.Duration, mk func(k int) nftables.SetElement) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 0; ; k += 20 {
			select {
			case <-done:
				return
			default:
			}
			els := make([]nftables.SetElement, 20)
			for j := range els {
				els[j] = mk(k + j)
				els[j].Timeout = time.Millisecond
			}
			if err := c.SetAddElements(set, els); err == nil {
				_ = c.Flush()
			}
			time.Sleep(pause)
		}
	})
	return func() { close(done); wg.Wait() }
}

// tableSet returns a connection and the set called name of the project's
// table on the host.
func tableSet(t *testing.T, name string) (*nftables.Conn, *nftables.Set) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.GetSetByName(&nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily}, name)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}
