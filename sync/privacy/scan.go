package privacy

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// ScanReport is what a byte scan of a directory found.
type ScanReport struct {
	Files int   `json:"files"` // regular files read
	Bytes int64 `json:"bytes"` // bytes read
	// Hits counts the occurrences of each needle (by its index) in every file
	// (relative path) that holds one.
	Hits map[string][]int `json:"hits,omitempty"`
}

// Total is the number of occurrences of needle i in every file.
func (r ScanReport) Total(i int) int {
	n := 0
	for _, h := range r.Hits {
		n += h[i]
	}
	return n
}

// HitFiles are the files with any occurrence, sorted.
func (r ScanReport) HitFiles() []string {
	var out []string
	for f := range r.Hits {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Scan reads every regular file under dir and counts the occurrences of each needle
// in its bytes (a needle split across two reads is found: reads overlap by the
// longest needle). It is how an erasure checks that no byte of what it erased is left.
func Scan(dir string, needles ...[]byte) (ScanReport, error) {
	r := ScanReport{Hits: map[string][]int{}}
	longest := 0
	for _, n := range needles {
		if len(n) == 0 {
			return r, fmt.Errorf("privacy: scan: an empty needle")
		}
		longest = max(longest, len(n))
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		counts, n, err := scanFile(path, needles, longest)
		if err != nil {
			return err
		}
		r.Files++
		r.Bytes += n
		for _, c := range counts {
			if c > 0 {
				rel, _ := filepath.Rel(dir, path)
				r.Hits[rel] = counts
				break
			}
		}
		return nil
	})
	return r, err
}

func scanFile(path string, needles [][]byte, longest int) ([]int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	counts := make([]int, len(needles))
	buf := make([]byte, 0, 1<<20+longest)
	chunk := make([]byte, 1<<20)
	var total int64
	keep := 0 // bytes at the start of buf carried over from the last read
	for {
		n, err := f.Read(chunk)
		total += int64(n)
		buf = append(buf, chunk[:n]...)
		for i, nd := range needles {
			// Count matches that end past the carried-over bytes: each is counted once.
			for off := 0; ; {
				j := bytes.Index(buf[off:], nd)
				if j < 0 {
					break
				}
				if off+j+len(nd) > keep {
					counts[i]++
				}
				off += j + 1
			}
		}
		if tail := max(longest-1, 0); len(buf) > tail {
			copy(buf, buf[len(buf)-tail:])
			buf = buf[:tail]
		}
		keep = len(buf)
		if err == io.EOF {
			return counts, total, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
}
