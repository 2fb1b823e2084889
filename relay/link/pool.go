package link

import (
	"sync"

	"veil/onion"
)

// cellPool recycles cells between the reader, the Handler and the writer, so
// the relay path allocates nothing per cell. Putting a pointer in a
// sync.Pool does not allocate.
var cellPool = sync.Pool{New: func() any { return new(onion.Cell) }}

// NewCell returns a zeroed cell from the pool. Send it (the link releases it
// once written) or Release it.
func NewCell() *onion.Cell {
	c := getCell()
	*c = onion.Cell{}
	return c
}

// Release returns c to the pool. The caller must not use c afterwards. It
// accepts any cell, pooled or not, and nil.
func Release(c *onion.Cell) {
	if c != nil {
		cellPool.Put(c)
	}
}

// getCell returns a pooled cell with stale contents, for a caller that
// overwrites every field (ParseCell does).
func getCell() *onion.Cell { return cellPool.Get().(*onion.Cell) }
