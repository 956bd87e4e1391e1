package hosts

import (
	"fmt"
	"path/filepath"

	"github.com/ocinet/ocinet/internal/fsutil"
)

// Import adds records to the store without rewriting any hosts file: the
// records and their index entries are written, and [Store.Repair] (which
// renders every container's file once) brings the files up to date. It is
// for filling a store in one pass, such as a benchmark's thousand peers,
// where joining them one by one would rewrite every earlier peer's file
// each time. Records are validated first; an invalid one is refused with
// an error wrapping ErrInvalid and nothing is written.
func (s *Store) Import(rs []Record) error {
	for i := range rs {
		if err := rs[i].validate(); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	unlock, err := s.lock(fsutil.Exclusive)
	if err != nil {
		return err
	}
	defer unlock()
	for i := range rs {
		r := &rs[i]
		for _, n := range r.Networks {
			if err := s.addIndex(n.Name, r.ID); err != nil {
				return err
			}
		}
		data, err := encodeRecord(r)
		if err != nil {
			return err
		}
		if err := writeRecordFile(filepath.Join(s.dir, recordsDir, r.ID+recordSuffix), data); err != nil {
			return fmt.Errorf("import: write record: %w", err)
		}
	}
	return nil
}
