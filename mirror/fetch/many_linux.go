package fetch

import (
	"net"
	"syscall"
)

// quickAck returns a function that asks the kernel to acknowledge what was
// received at once instead of delaying the ACK (TCP_QUICKACK, which does
// not stick and is asked again after every read). A server that answers
// pipelined requests with Nagle's algorithm on (nginx does until the
// connection idles) holds each small answer until the previous one is
// acknowledged: with delayed ACKs that is a 40 ms stall per window.
func quickAck(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return func() {}
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return func() {}
	}
	set := func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1) }
	return func() { rc.Control(set) }
}
