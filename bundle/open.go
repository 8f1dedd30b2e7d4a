package bundle

import (
	"fmt"
	"os"
	"syscall"
)

// openFile opens a bundle file (a whole bundle, a part, a signature) only
// when it is a regular file. A FIFO or a device on the medium, or a link to
// one, would block the open or its reads forever, while import holds the
// repository's lock: the open does not wait (O_NONBLOCK), the type is
// checked on the open file, and then reads wait as usual.
func openFile(name string) (*os.File, error) {
	fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file (a pipe, a device or a folder): %w", name, ErrNotRegular)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
