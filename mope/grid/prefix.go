package grid

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// prefixWriter writes whole lines to w, each starting with prefix (one row's
// log among the grid's concurrent rows). Lines of all prefixWriters on one
// w are written one at a time.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex // shared by the prefixWriters of w
	prefix string
	buf    []byte
}

func newPrefixWriter(w io.Writer, mu *sync.Mutex, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return &prefixWriter{w: w, mu: mu, prefix: prefix}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1])
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}
