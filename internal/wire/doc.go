// Package wire is the Pulsar binary protocol codec of MessageBus: it splits a
// byte stream into frames, encodes frames, checks payload checksums and reads
// the few protobuf fields the publish and dispatch paths need without a full
// decode.
//
// A frame is [u32 totalSize][u32 cmdSize][BaseCommand], big-endian, where
// totalSize counts everything after itself. SEND and MESSAGE frames continue
// with "headersAndPayload" (hp):
//
//	[u16 0x0e02][u32 size][BrokerEntryMetadata]   optional, broker-added
//	[u16 0x0e01][u32 crc32c]                      crc32c covers the rest
//	[u32 metaSize][MessageMetadata][payload]
//
// The protobuf types live in the pb subpackage. This package knows nothing of
// topics, producers, consumers or storage; it must depend only on pb and the
// protobuf runtime, so that every other layer can use it.
package wire
