package broker

import "github.com/messagebus/messagebus/internal/wire"

// entryMetadata parses the MessageMetadata of a stored entry (or of a
// message being published). ok is false when it cannot be parsed; md then
// describes a single message, which is how such an entry is dispatched.
func entryMetadata(data []byte) (md wire.MetadataInfo, ok bool) {
	meta, _, err := wire.SplitPayload(data)
	if err == nil && wire.ParseMetadata(meta, &md) == nil {
		return md, true
	}
	return wire.MetadataInfo{NumMessagesInBatch: 1}, false
}
