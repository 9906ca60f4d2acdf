package store

// Raw access to buckets, for this package's external tests (package store_test: the
// crash harness, the damage table, benchmarks), which fill buckets as an older or a
// damaged store would. The stages have only the typed views.

func (t *Tx) Get(b Bucket, key []byte) []byte     { return t.get(b, key) }
func (t *Tx) Put(b Bucket, key, val []byte) error { return t.put(b, key, val) }
func (t *Tx) Delete(b Bucket, key []byte) error   { return t.del(b, key) }
func (t *Tx) NextSeq(b Bucket) (uint64, error)    { t.bucket(b); return t.rawNextSeq(string(b)) }
func (t *Tx) Count(b Bucket) int                  { return t.count(b) }
func Key(seq uint64) []byte                       { return u64key(seq) }
func SeqOf(k []byte) uint64                       { return seqOf(k) }
func (t *Tx) ForEach(b Bucket, prefix []byte, fn func(k, v []byte) error) error {
	return t.forEach(b, prefix, fn)
}
