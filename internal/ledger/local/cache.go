package local

import "sync/atomic"

// entryCache holds the most recent entries of one ledger, contiguous ids up to
// the last durable one, within a byte budget. Only appends fill it: catch-up
// reads from disk never do, so they cannot evict the tail that tailing readers
// need. Every cache also counts its bytes in the store-wide total, which the
// evictor (evict.go) keeps within Options.CacheTotalBytes.
type entryCache struct {
	max     int64
	first   int64    // id of data[head]
	data    [][]byte // data[head:] are the cached entries
	head    int
	bytes   int64
	total   *atomic.Int64 // the store-wide count; nil in unit tests of the cache alone
	lastAdd int64         // store-wide sequence number of the latest add: recency
}

func (c *entryCache) account(delta int64) {
	c.bytes += delta
	if c.total != nil {
		c.total.Add(delta)
	}
}

func (c *entryCache) len() int { return len(c.data) - c.head }

// add caches entry id, evicting the oldest entries beyond the budget.
func (c *entryCache) add(id int64, data []byte) {
	if c.len() == 0 || id != c.first+int64(c.len()) {
		c.clear()
		c.first = id
	}
	c.data = append(c.data, data)
	c.account(int64(len(data)))
	for c.bytes > c.max && c.len() > 0 {
		c.dropFront()
	}
}

func (c *entryCache) dropFront() {
	c.account(-int64(len(c.data[c.head])))
	c.data[c.head] = nil
	c.head++
	c.first++
	if c.head == len(c.data) {
		c.data, c.head = c.data[:0], 0
	} else if c.head >= 64 && c.head >= len(c.data)/2 {
		n := copy(c.data, c.data[c.head:])
		clear(c.data[n:])
		c.data, c.head = c.data[:n], 0
	}
}

// get returns entry id when it is cached.
func (c *entryCache) get(id int64) ([]byte, bool) {
	if id < c.first || id >= c.first+int64(c.len()) {
		return nil, false
	}
	return c.data[c.head+int(id-c.first)], true
}

// trim drops the entries below before.
func (c *entryCache) trim(before int64) {
	for c.len() > 0 && c.first < before {
		c.dropFront()
	}
}

func (c *entryCache) clear() {
	clear(c.data)
	c.account(-c.bytes)
	c.data, c.head = c.data[:0], 0
}
