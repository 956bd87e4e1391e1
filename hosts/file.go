package hosts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// createEmpty creates an empty file at path with mode 0644 (whatever the
// umask, since processes in the container read it as any user) unless a file
// is already there, and reports whether it made one. It never truncates.
func createEmpty(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return true, err
	}
	return true, f.Close()
}

// openInPlace opens the bind-mounted file at path for an in-place update,
// creating it (and its directory) when missing. It refuses anything but a
// regular file.
func openInPlace(path string) (*os.File, error) {
	const flags = os.O_RDWR | unix.O_NOFOLLOW
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if _, err := createEmpty(path); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, flags, 0)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, nil
}

// maxReadSize caps how much of a hosts file is read back. The file is
// writable from inside the container; a container that fills it must not make
// the store read gigabytes on behalf of its peers. User lines past this
// point are dropped at the next rewrite.
const maxReadSize = 1 << 20

// readLimited reads up to maxReadSize bytes of f from offset 0 and returns
// them and the file's size.
func readLimited(f *os.File) ([]byte, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	n := min(size, maxReadSize)
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	return buf[:m], size, nil
}

// maxPad caps the padding writeInPlace adds; see there.
const maxPad = 64 << 10

// writeInPlace makes content the whole of f, keeping its inode: one write at
// offset 0, then a truncate to len(content). The file is never replaced by a
// rename, because the container's bind mount holds on to the inode, and
// never truncated first, so a reader never sees it empty.
//
// When the file is longer than content, a crash between the write and the
// truncate would leave the tail of the old content behind the new one. To
// make that harmless, the write fills the old length with a padding line: a
// '#' followed by spaces (or a lone newline when one byte is missing). That
// is a comment in both hosts and resolv.conf syntax, and the hosts parser
// drops it.
func writeInPlace(f *os.File, content []byte, oldSize int64) error {
	buf := content
	if pad := oldSize - int64(len(content)); pad > 0 && pad <= maxPad {
		buf = make([]byte, len(content), oldSize)
		copy(buf, content)
		buf = append(buf, padding(int(pad))...)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(content)))
}

// padding returns n bytes that read as one blank comment line, or as one
// empty line when n is 1.
func padding(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = ' '
	}
	p[0] = '#'
	p[n-1] = '\n'
	return p
}
