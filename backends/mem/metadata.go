package mem

import "github.com/ThreeDotsLabs/watermill/message"

// appendMetadata appends md to dst as key, value pairs. The strings are
// shared, not copied: they are immutable, and the caller's message may
// change its map afterwards but not the strings in it.
func appendMetadata(dst []string, md map[string]string) []string {
	for k, v := range md {
		dst = append(dst, k, v)
	}
	return dst
}

// metadataOf returns the value of key in pairs, "" if absent.
func metadataOf(pairs []string, key string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == key {
			return pairs[i+1]
		}
	}
	return ""
}

// metadataMap returns pairs as a new map, which the caller owns. It is
// never nil, so that a consumer may set metadata on what it received.
func metadataMap(pairs []string) message.Metadata {
	md := make(message.Metadata, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		md[pairs[i]] = pairs[i+1]
	}
	return md
}
