// Package shard is anonymous file sharing: segment encryption,
// Reed-Solomon erasure coding, share links, and shard placement, upload,
// download and repair over circuits (issue 5). Until that lands it only
// pins its chosen erasure-coding library in go.mod.
package shard

import _ "github.com/klauspost/reedsolomon" // used by the coder (issue 5)
