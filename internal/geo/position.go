package geo

import (
	"fmt"
	"strconv"
	"strings"
)

// SourcePositionProperty is the message property holding the source
// position ("ledgerId:entryId") of a replicated entry, Pulsar's name.
const SourcePositionProperty = "__MSG_PROP_REPL_SOURCE_POSITION"

// CursorPrefix starts the names of replication cursors: pulsar.repl.<remote>.
// Replicators' producer names start with it too.
const CursorPrefix = "pulsar.repl."

// FormatSourcePosition is the SourcePositionProperty value of an entry.
func FormatSourcePosition(ledgerID, entryID int64) string {
	return strconv.FormatInt(ledgerID, 10) + ":" + strconv.FormatInt(entryID, 10)
}

// AppendSourcePosition appends FormatSourcePosition's text to b.
func AppendSourcePosition(b []byte, ledgerID, entryID int64) []byte {
	b = strconv.AppendInt(b, ledgerID, 10)
	b = append(b, ':')
	return strconv.AppendInt(b, entryID, 10)
}

// ParseSourcePosition reads a SourcePositionProperty value.
func ParseSourcePosition(v string) (ledgerID, entryID int64, err error) {
	l, e, ok := strings.Cut(v, ":")
	if !ok {
		return 0, 0, fmt.Errorf("source position %q is not ledgerId:entryId", v)
	}
	ledgerID, err1 := strconv.ParseInt(l, 10, 64)
	entryID, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || ledgerID < 0 || entryID < 0 {
		return 0, 0, fmt.Errorf("source position %q is not ledgerId:entryId", v)
	}
	return ledgerID, entryID, nil
}
