package replay

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Input formats.
const (
	FormatHACSV = "ha-csv"
	FormatJSONL = "jsonl"
)

// StreamOptions bound the memory Stream takes.
type StreamOptions struct {
	// ChunkReadings is the most readings sorted in memory at once (default
	// DefaultChunkReadings): a longer input is sorted in runs of this many, spilled
	// to temporary files and merged, so memory does not grow with the input.
	ChunkReadings int
	// TempDir holds the runs (default os.TempDir()); they are removed on return.
	TempDir string
	// Read, if set, is called when the input has been read whole (and before the
	// first reading is handed on), with what was read.
	Read func(in *Input)
}

// DefaultChunkReadings is StreamOptions.ChunkReadings' default: about 8 MB of
// readings held at once.
const DefaultChunkReadings = 32768

// mergeFanIn is the most runs merged at once (each holds a 32 KB read buffer); more
// are merged in passes.
const mergeFanIn = 64

// Stream reads a history (format FormatHACSV or FormatJSONL) and calls fn with each
// reading kept, in time order (readings of the same time in input order). Bad rows
// are counted and listed in the returned Input, never fatal; an error reading the
// input, writing the temporary runs or from fn ends the stream. Memory is bounded by
// StreamOptions.ChunkReadings, whatever the input's size; a longer input costs
// about its readings' size in temporary files while it is sorted.
func Stream(r io.Reader, format string, m *Mapping, o *StreamOptions, fn func(device.Reading) error) (*Input, error) {
	var opts StreamOptions
	if o != nil {
		opts = *o
	}
	if opts.ChunkReadings <= 0 {
		opts.ChunkReadings = DefaultChunkReadings
	}
	in := &Input{Counts: map[string]int{}}
	var rows rowReader
	switch format {
	case FormatHACSV:
		rows = newHARows(r, m, in)
	case FormatJSONL:
		rows = newJSONLRows(r, m, in)
	default:
		return nil, fmt.Errorf("replay: unknown input format %q (have %s, %s)", format, FormatHACSV, FormatJSONL)
	}
	s := &sorter{dir: opts.TempDir}
	defer s.remove()
	chunk := make([]stamped, 0, min(opts.ChunkReadings, 4096))
	for {
		row, err := rows.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return in, err
		}
		in.Kept++
		chunk = append(chunk, row)
		if len(chunk) == opts.ChunkReadings {
			if err := s.spill(chunk); err != nil {
				return in, err
			}
			chunk = chunk[:0]
		}
	}
	if opts.Read != nil {
		opts.Read(in)
	}
	sortStamped(chunk)
	if len(s.runs) == 0 {
		for i := range chunk {
			if err := fn(chunk[i].r); err != nil {
				return in, err
			}
		}
		return in, nil
	}
	if len(chunk) > 0 {
		if err := s.spill(chunk); err != nil {
			return in, err
		}
	}
	chunk = nil
	return in, s.merge(fn)
}

func sortStamped(rows []stamped) {
	slices.SortFunc(rows, cmpStamped)
}

func cmpStamped(a, b stamped) int {
	if c := a.r.DeviceTime.Compare(b.r.DeviceTime); c != 0 {
		return c
	}
	return a.line - b.line
}

// sorter keeps the sorted runs spilled to temporary files.
type sorter struct {
	dir  string
	runs []string
	buf  []byte
}

func (s *sorter) remove() {
	for _, p := range s.runs {
		os.Remove(p)
	}
}

// spill sorts rows and writes them as one run.
func (s *sorter) spill(rows []stamped) error {
	sortStamped(rows)
	return s.writeRun(func(put func(*stamped) error) error {
		for i := range rows {
			if err := put(&rows[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeRun writes the rows fill puts to a new run file.
func (s *sorter) writeRun(fill func(put func(*stamped) error) error) (err error) {
	f, err := os.CreateTemp(s.dir, "hearth-replay-run-")
	if err != nil {
		return fmt.Errorf("replay: sorting the input: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("replay: sorting the input: %w", cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 32<<10)
	err = fill(func(r *stamped) error {
		s.buf = appendStamped(s.buf[:0], r)
		_, err := w.Write(s.buf)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("replay: sorting the input: %w", err)
	}
	return nil
}

// merge merges the runs, mergeFanIn at a time, and hands the result to fn.
func (s *sorter) merge(fn func(device.Reading) error) error {
	for len(s.runs) > mergeFanIn {
		group := s.runs[:mergeFanIn]
		rest := slices.Clone(s.runs[mergeFanIn:])
		s.runs = rest
		err := s.writeRun(func(put func(*stamped) error) error {
			return mergeRuns(group, func(r *stamped) error { return put(r) })
		})
		for _, p := range group {
			os.Remove(p)
		}
		if err != nil {
			return err
		}
	}
	return mergeRuns(s.runs, func(r *stamped) error { return fn(r.r) })
}

// runReader reads one run.
type runReader struct {
	f   *os.File
	br  *bufio.Reader
	cur stamped
	buf []byte
}

func (rr *runReader) advance() (bool, error) {
	n, err := binary.ReadUvarint(rr.br)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if n > MaxLineBytes {
		return false, fmt.Errorf("a record of %d bytes", n)
	}
	rr.buf = slices.Grow(rr.buf[:0], int(n))[:n]
	if _, err := io.ReadFull(rr.br, rr.buf); err != nil {
		return false, err
	}
	return true, decodeStamped(rr.buf, &rr.cur)
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return cmpStamped(h[i].cur, h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns calls fn with the rows of the runs in order.
func mergeRuns(paths []string, fn func(*stamped) error) (err error) {
	var h runHeap
	defer func() {
		for _, rr := range h {
			rr.f.Close()
		}
	}()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("replay: sorting the input: %w", err)
		}
		rr := &runReader{f: f, br: bufio.NewReaderSize(f, 32<<10)}
		ok, err := rr.advance()
		if err != nil {
			f.Close()
			return fmt.Errorf("replay: sorting the input: run %s: %w", p, err)
		}
		if !ok {
			f.Close()
			continue
		}
		h = append(h, rr)
	}
	heap.Init(&h)
	for len(h) > 0 {
		rr := h[0]
		if err := fn(&rr.cur); err != nil {
			return err
		}
		ok, err := rr.advance()
		if err != nil {
			return fmt.Errorf("replay: sorting the input: run %s: %w", rr.f.Name(), err)
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			rr.f.Close()
			heap.Pop(&h)
		}
	}
	return nil
}

// appendStamped encodes a row of a run: its length, then time (ns), line, device,
// kind, signal, unit, label, value and aux.
func appendStamped(b []byte, s *stamped) []byte {
	var rec []byte
	rec = binary.AppendVarint(rec, s.r.DeviceTime.UnixNano())
	rec = binary.AppendUvarint(rec, uint64(s.line))
	for _, str := range []string{s.r.Device, string(s.r.Kind), string(s.r.Signal), s.r.Unit, s.r.Label} {
		rec = binary.AppendUvarint(rec, uint64(len(str)))
		rec = append(rec, str...)
	}
	rec = binary.LittleEndian.AppendUint64(rec, math.Float64bits(s.r.Value))
	rec = binary.AppendVarint(rec, s.r.Aux)
	b = binary.AppendUvarint(b, uint64(len(rec)))
	return append(b, rec...)
}

var errBadRecord = errors.New("a corrupt record")

func decodeStamped(b []byte, s *stamped) error {
	ns, n := binary.Varint(b)
	if n <= 0 {
		return errBadRecord
	}
	b = b[n:]
	line, n := binary.Uvarint(b)
	if n <= 0 {
		return errBadRecord
	}
	b = b[n:]
	var strs [5]string
	for i := range strs {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return errBadRecord
		}
		strs[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) < 8 {
		return errBadRecord
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(b))
	aux, n := binary.Varint(b[8:])
	if n <= 0 {
		return errBadRecord
	}
	*s = stamped{device.Reading{Device: strs[0], Kind: device.Kind(strs[1]), Signal: device.Signal(strs[2]),
		Unit: strs[3], Label: strs[4], Value: v, Aux: aux, DeviceTime: time.Unix(0, ns).UTC()}, int(line)}
	return nil
}
