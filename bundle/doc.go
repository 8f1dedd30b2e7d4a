// Package bundle is the bundle format mirror-bundle/v1: what crosses the air
// gap. The full specification is docs/bundle-format.md; this comment is its
// summary.
//
// A bundle is NAME.tar.zst, one zstd frame (with content checksum, window at
// most 8 MiB) holding a POSIX tar archive whose members are, in this order:
//
//	manifest.json           the Manifest, JSON, signed by the operator
//	manifest.json.minisig   minisign signature (prehashed) over its exact bytes
//	README                  how to check the bundle with stock tools
//	SHA256SUMS              sha256sum -c list: manifest, signature, README, blobs
//	blobs/<sha256>          one per Manifest.Blobs entry, in that order
//
// and beside it NAME.tar.zst.minisig, a minisign signature over the whole
// file. Members are regular files with fixed headers (mode 0644, uid/gid 0,
// no owner names, mtime = manifest created), so the same inputs, key and
// time give byte-identical bundles. A bundle may be split into parts
// NAME.tar.zst.part-NNN, each a 4096-byte header signed by the operator
// (bundle id, index, count, offset, size and SHA-256 of its payload, total
// size and SHA-256) followed by a raw slice of NAME.tar.zst.
//
// A reader (Open) must check the operator signature over the manifest bytes
// before parsing them; refuse unknown formats; accept only the members
// above, each once, as regular files with exactly the expected names, sizes,
// hashes and canonical tar header bytes; bound every size and count
// (Limits); and refuse data after the tar end or the zstd frame.
// CheckFileSignature verifies the detached signature, as minisign -V does. Blob content is handed out while it is hashed,
// and the blob's reader fails at its end if the hash differs, so a consumer
// that commits only after io.EOF never makes a bad blob visible.
package bundle
