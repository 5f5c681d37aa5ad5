package delayed

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"

	"github.com/messagebus/messagebus/internal/pebbledb"
)

// VerifyReport is what Verify found in a store.
type VerifyReport struct {
	Indexes int   // subscriptions with an index (temporary ones included)
	Entries int64 // delayed entries stored
	Records int64 // Pebble records read
}

// Verify checks the store in dir without changing anything (mb verify): its
// files are checked, it is opened read-only and every record is read once
// and decoded. Damage is a *pebbledb.DamagedError. The store must exist and
// must not be open.
func Verify(dir string, log *slog.Logger) (VerifyReport, error) {
	var r VerifyReport
	db, err := pebbledb.Open(dir, pebbledb.Options{Store: "delayed-delivery", Logger: log, ReadOnly: true})
	if err != nil {
		return r, err
	}
	defer db.Close()
	var bad error // a record that does not decode: damage the checksums missed
	err = db.Guard(func() error {
		it, err := db.NewIter(nil)
		if err != nil {
			return err
		}
		for it.First(); it.Valid() && bad == nil; it.Next() {
			k, v := it.Key(), it.Value()
			r.Records++
			ok := true
			switch {
			case bytes.Equal(k, keyLastID):
				ok = len(v) == 8
			case len(k) == 0:
				ok = false
			case k[0] == prefixMeta:
				_, ok1 := decodeMetaKey(k)
				_, ok2 := decodeRecord(v)
				ok = ok1 && ok2
				r.Indexes++
			case k[0] == prefixCount:
				ok = len(k) == dataPrefLen && len(v) == 8
			case k[0] == prefixData:
				ok = len(k) == dataKeyLen
				r.Entries++
			default:
				ok = false
			}
			if !ok {
				bad = fmt.Errorf("record %q (value %q) does not decode", k, v)
			}
		}
		return errors.Join(it.Error(), it.Close())
	})
	if err == nil && bad != nil {
		err = &pebbledb.DamagedError{Store: "delayed-delivery", Dir: dir, Err: bad}
	}
	return r, err
}
