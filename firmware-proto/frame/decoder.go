package frame

import (
	"bytes"
	"io"
	"sync/atomic"
)

// Stats counts what a Decoder or Parser has seen. Each fault field counts frames dropped
// for that class (see the ErrX values); their sum is Faults.
type Stats struct {
	Bytes  uint64 // bytes consumed from the stream: frames, delimiters and garbage
	Frames uint64 // intact frames delivered

	TooLong    uint64 // ErrTooLong
	BadCOBS    uint64 // ErrBadCOBS
	Truncated  uint64 // ErrTruncated
	BadLength  uint64 // ErrBadLength
	BadCRC     uint64 // ErrBadCRC
	BadVersion uint64 // ErrBadVersion
}

// Faults returns the number of frames dropped, all classes together.
func (s Stats) Faults() uint64 {
	return s.TooLong + s.BadCOBS + s.Truncated + s.BadLength + s.BadCRC + s.BadVersion
}

// fault class indexes into core.faults.
const (
	fTooLong = iota
	fBadCOBS
	fTruncated
	fBadLength
	fBadCRC
	fBadVersion
	numFaults
)

var faultErrs = [numFaults]error{ErrTooLong, ErrBadCOBS, ErrTruncated, ErrBadLength, ErrBadCRC, ErrBadVersion}

// core is the frame splitter shared by Decoder and Parser. It holds at most one segment
// (the bytes since the last delimiter), never more than maxEnc bytes: a longer segment
// is reported as ErrTooLong and the rest of it skipped as it arrives.
type core struct {
	maxFrame int
	maxEnc   int
	acc      []byte // current segment, cap maxEnc; decoded in place at its delimiter
	skipping bool   // current segment already reported too long
	off      int64  // stream offset of the next byte
	segStart int64  // stream offset of the current segment's first byte

	bytes  atomic.Uint64
	frames atomic.Uint64
	faults [numFaults]atomic.Uint64
}

func (c *core) init(maxFrame int) {
	if maxFrame <= 0 {
		maxFrame = MaxFrame
	}
	maxFrame = min(max(maxFrame, HeaderLen+CRCLen), maxFrameLimit)
	c.maxFrame = maxFrame
	c.maxEnc = MaxEncodedLen(maxFrame)
	c.acc = make([]byte, 0, c.maxEnc)
}

// push consumes b up to and including its first delimiter (all of b if it has none). It
// returns the number of bytes consumed and, if they completed an intact frame, the frame.
func (c *core) push(b []byte, onFault func(*FaultError)) (n int, f Frame, ok bool) {
	i := bytes.IndexByte(b, Delimiter)
	if i < 0 {
		c.add(b, onFault)
		c.consumed(len(b))
		return len(b), Frame{}, false
	}
	c.add(b[:i], onFault)
	c.consumed(i + 1)
	start := c.segStart
	c.segStart = c.off
	seg := c.acc
	c.acc = c.acc[:0]
	if c.skipping {
		c.skipping = false
		return i + 1, Frame{}, false
	}
	if len(seg) == 0 { // an idle delimiter: not an error
		return i + 1, Frame{}, false
	}
	f, n, class := c.parse(seg)
	if class >= 0 {
		c.fault(class, start, len(seg), seg[:n], onFault)
		return i + 1, Frame{}, false
	}
	c.frames.Add(1)
	return i + 1, f, true
}

func (c *core) consumed(n int) {
	c.off += int64(n)
	c.bytes.Add(uint64(n))
}

// add appends p to the current segment, or starts skipping it if it gets too long.
func (c *core) add(p []byte, onFault func(*FaultError)) {
	if c.skipping || len(p) == 0 {
		return
	}
	if len(c.acc)+len(p) > c.maxEnc {
		c.fault(fTooLong, c.segStart, c.maxEnc+1, nil, onFault)
		c.skipping = true
		c.acc = c.acc[:0]
		return
	}
	c.acc = append(c.acc, p...)
}

// end reports a segment left unfinished when the stream ends.
func (c *core) end(onFault func(*FaultError)) {
	if !c.skipping && len(c.acc) > 0 {
		c.fault(fTruncated, c.segStart, len(c.acc), nil, onFault)
	}
	c.acc = c.acc[:0]
	c.skipping = false
	c.segStart = c.off
}

// parse decodes seg in place and checks it, in the order of SPEC.md §7. It returns the
// frame, or the number of bytes decoded and the fault class (>= 0); the decoded bytes
// are at the start of seg.
func (c *core) parse(seg []byte) (f Frame, n, class int) {
	n, err := cobsDecode(seg, seg)
	if err != nil {
		return Frame{}, 0, fBadCOBS
	}
	body := seg[:n]
	if n > c.maxFrame {
		return Frame{}, n, fTooLong
	}
	if n < HeaderLen+CRCLen {
		return Frame{}, n, fTruncated
	}
	plen := int(body[2])<<8 | int(body[3])
	switch want := HeaderLen + plen + CRCLen; {
	case n < want:
		return Frame{}, n, fTruncated
	case n > want:
		return Frame{}, n, fBadLength
	}
	if crc16Update(crc16Init, body[:n-CRCLen]) != uint16(body[n-2])<<8|uint16(body[n-1]) {
		return Frame{}, n, fBadCRC
	}
	if body[0] != Version {
		return Frame{}, n, fBadVersion
	}
	end := HeaderLen + plen
	return Frame{Version: body[0], Type: MsgType(body[1]), Payload: body[HeaderLen:end:end]}, n, -1
}

// fault counts a dropped segment and reports it. decoded holds the segment's decoded
// bytes when parse got that far.
func (c *core) fault(class int, off int64, n int, decoded []byte, onFault func(*FaultError)) {
	c.faults[class].Add(1)
	if onFault == nil {
		return
	}
	e := &FaultError{Err: faultErrs[class], Offset: off, Len: n}
	if len(decoded) > 0 {
		e.Version = decoded[0]
	}
	if len(decoded) > 1 {
		e.Type = MsgType(decoded[1])
	}
	onFault(e)
}

func (c *core) stats() Stats {
	return Stats{
		Bytes:      c.bytes.Load(),
		Frames:     c.frames.Load(),
		TooLong:    c.faults[fTooLong].Load(),
		BadCOBS:    c.faults[fBadCOBS].Load(),
		Truncated:  c.faults[fTruncated].Load(),
		BadLength:  c.faults[fBadLength].Load(),
		BadCRC:     c.faults[fBadCRC].Load(),
		BadVersion: c.faults[fBadVersion].Load(),
	}
}

// readBufSize is the Decoder's read buffer: a few frames' worth per Read call.
const readBufSize = 1024

// maxEmptyReads is how many (0, nil) reads in a row Next tolerates before giving up with
// io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// Decoder reads frames from a byte stream such as a serial port.
//
// Corrupt input never stops it: each damaged or foreign segment is counted in Stats,
// reported to OnFault, and skipped up to the next delimiter, where decoding resumes.
// Only an error from the underlying reader ends Next. Memory is fixed at construction:
// about MaxEncodedLen(maxFrame) + 1 KiB, whatever the input. The steady path (intact
// frames) does not allocate.
//
// A Decoder is not safe for concurrent use, except Stats, which may be called from any
// goroutine at any time (for example by a metrics collector).
type Decoder struct {
	// OnFault, if not nil, is called synchronously from Next for every dropped segment,
	// before Next returns. Set it before the first call to Next.
	OnFault func(err *FaultError)

	r     io.Reader
	c     core
	buf   []byte
	rpos  int
	rend  int
	err   error // sticky error from r
	ended bool  // c.end has run
}

// NewDecoder returns a Decoder reading from r that accepts decoded frames of up to
// maxFrame bytes, header and CRC included. maxFrame <= 0 means MaxFrame, which every
// receiver of this protocol must accept; other values are clamped to what the 16-bit
// length field can describe.
func NewDecoder(r io.Reader, maxFrame int) *Decoder {
	d := &Decoder{r: r, buf: make([]byte, readBufSize)}
	d.c.init(maxFrame)
	return d
}

// Next returns the next intact frame. Its Payload is valid until the next call to Next.
//
// Next returns an error only when the reader does: io.EOF at the end of the stream, or
// the reader's own error, after every frame that arrived before it. A frame left
// unfinished by the end of the stream is counted as ErrTruncated. After an error, Next
// keeps returning it.
func (d *Decoder) Next() (Frame, error) {
	for {
		for d.rpos < d.rend {
			n, f, ok := d.c.push(d.buf[d.rpos:d.rend], d.OnFault)
			d.rpos += n
			if ok {
				return f, nil
			}
		}
		if d.err != nil {
			if !d.ended {
				d.ended = true
				d.c.end(d.OnFault)
			}
			return Frame{}, d.err
		}
		d.rpos, d.rend = 0, 0
		d.rend, d.err = d.read()
	}
}

func (d *Decoder) read() (int, error) {
	for range maxEmptyReads {
		n, err := d.r.Read(d.buf)
		if n < 0 || n > len(d.buf) {
			return 0, io.ErrShortBuffer // a broken reader; do not trust n
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// Stats returns the counts so far. It is safe to call concurrently with Next.
func (d *Decoder) Stats() Stats { return d.c.stats() }

// Parser is the push-style form of Decoder, for callers that read the stream themselves
// and hand over whatever bytes arrive.
//
// It has the same fault handling, counters and memory bound as Decoder. A Parser is not
// safe for concurrent use, except Stats, which may be called from any goroutine.
type Parser struct {
	// OnFault, if not nil, is called synchronously from Feed for every dropped segment.
	OnFault func(err *FaultError)

	c core
}

// NewParser returns a Parser that accepts decoded frames of up to maxFrame bytes, with
// the same meaning of maxFrame as in NewDecoder.
func NewParser(maxFrame int) *Parser {
	p := &Parser{}
	p.c.init(maxFrame)
	return p
}

// Feed consumes b, calling fn with each intact frame it completes, in order. A frame may
// span any number of Feed calls. Frame.Payload is valid only until fn returns. Feed does
// not keep b.
func (p *Parser) Feed(b []byte, fn func(Frame)) {
	for len(b) > 0 {
		n, f, ok := p.c.push(b, p.OnFault)
		b = b[n:]
		if ok {
			fn(f)
		}
	}
}

// End declares the end of the stream: a frame left unfinished is dropped and counted as
// ErrTruncated. The Parser may be fed again afterwards, as a new stream.
func (p *Parser) End() { p.c.end(p.OnFault) }

// Stats returns the counts so far. It is safe to call concurrently with Feed.
func (p *Parser) Stats() Stats { return p.c.stats() }
