package bundle

import (
	"fmt"
	"io"
)

// frameWalker follows the block structure of the compressed stream as the
// decoder reads it (RFC 8878, section 3.1.1), to enforce what the decoder
// alone does not: the stream is exactly one zstd frame (a skippable frame or
// a second frame is refused) with its content checksum, and nothing follows
// it. It does not decompress.
type frameWalker struct {
	r     io.Reader
	state int
	need  int64  // bytes still wanted in this state
	hdr   []byte // bytes collected for a header
	err   error  // first violation
	off   int64  // bytes seen

	lastBlock bool
	single    bool
	maxWindow int64
}

const (
	fwMagic = iota
	fwDescriptor
	fwHeaderRest
	fwBlockHeader
	fwBlockBody
	fwChecksum
	fwDone
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

func newFrameWalker(r io.Reader, maxWindow int64) *frameWalker {
	return &frameWalker{r: r, state: fwMagic, need: 4, maxWindow: maxWindow}
}

func (w *frameWalker) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if w.err == nil {
		w.feed(p[:n])
	}
	return n, err
}

func (w *frameWalker) fail(kind error, format string, args ...any) {
	w.err = fmt.Errorf("%w: at byte %d of the compressed stream: "+format, append([]any{kind, w.off}, args...)...)
}

func (w *frameWalker) feed(p []byte) {
	for len(p) > 0 && w.err == nil {
		switch w.state {
		case fwDone:
			w.fail(ErrTrailingData, "%d bytes or more after the zstd frame", len(p))
			return
		case fwBlockBody:
			k := min(int64(len(p)), w.need)
			p = p[k:]
			w.off += k
			w.need -= k
			if w.need == 0 {
				w.endBlock()
			}
			continue
		}
		// Header states: collect need bytes.
		k := min(int64(len(p)), w.need)
		w.hdr = append(w.hdr, p[:k]...)
		p = p[k:]
		w.off += k
		w.need -= k
		if w.need > 0 {
			continue
		}
		h := w.hdr
		w.hdr = w.hdr[:0]
		switch w.state {
		case fwMagic:
			if string(h) != string(zstdMagic) {
				w.fail(ErrCorrupt, "not a zstd frame (magic %x)", h)
				return
			}
			w.state, w.need = fwDescriptor, 1
		case fwDescriptor:
			d := h[0]
			fcsFlag, single, dictFlag := d>>6, d&0x20 != 0, d&3
			if d&0x08 != 0 {
				w.fail(ErrCorrupt, "reserved bit set in the frame header")
				return
			}
			if d&0x10 != 0 || dictFlag != 0 {
				w.fail(ErrMalformed, "frame header uses the unused bit or a dictionary")
				return
			}
			if d&0x04 == 0 {
				w.fail(ErrMalformed, "frame has no content checksum")
				return
			}
			rest := int64([]int{0, 1, 2, 4}[dictFlag])
			if !single {
				rest++ // window descriptor
			}
			switch fcsFlag {
			case 0:
				if single {
					rest++
				}
			case 1:
				rest += 2
			case 2:
				rest += 4
			case 3:
				rest += 8
			}
			w.single = single
			w.state, w.need = fwHeaderRest, rest
			if rest == 0 {
				w.state, w.need = fwBlockHeader, 3
			}
		case fwHeaderRest:
			// A frame that is not single-segment starts with the window
			// descriptor, which must be one of the writer's windows (4 or
			// 8 MiB, mantissa 0): it is the one byte whose change the
			// decoder would not notice.
			if base := int64(1) << (10 + h[0]>>3); !w.single && base+base/8*int64(h[0]&7) > w.maxWindow {
				w.fail(ErrLimit, "zstd window of %d bytes, limit %d", base+base/8*int64(h[0]&7), w.maxWindow)
				return
			}
			if !w.single && h[0] != 12<<3 && h[0] != 13<<3 {
				w.fail(ErrMalformed, "window descriptor %#x is not a 4 or 8 MiB window", h[0])
				return
			}
			w.state, w.need = fwBlockHeader, 3
		case fwBlockHeader:
			bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
			last, typ, size := bh&1 != 0, (bh>>1)&3, int64(bh>>3)
			w.lastBlock = last
			switch typ {
			case 0, 2: // raw, compressed
				w.need = size
			case 1: // RLE
				w.need = 1
			default:
				w.fail(ErrCorrupt, "reserved block type")
				return
			}
			w.state = fwBlockBody
			if w.need == 0 {
				w.endBlock()
			}
		case fwChecksum:
			w.state = fwDone
		}
	}
}

func (w *frameWalker) endBlock() {
	if w.lastBlock {
		w.state, w.need = fwChecksum, 4
	} else {
		w.state, w.need = fwBlockHeader, 3
	}
}

// done reports an error unless exactly one whole frame was seen.
func (w *frameWalker) done() error {
	if w.err != nil {
		return w.err
	}
	if w.state != fwDone {
		return fmt.Errorf("%w: the zstd frame ends early, after %d bytes", ErrTruncated, w.off)
	}
	return nil
}
