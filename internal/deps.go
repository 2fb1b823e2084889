// Package internal pins the dependencies chosen for veil whose users have not
// landed yet, so that `go mod tidy` keeps them in go.mod. Each blank import
// goes away as soon as a real package imports the module: memberlist with the
// directory's gossip (issue 3), reedsolomon with shard coding (issue 5).
package internal

import (
	_ "github.com/hashicorp/memberlist"
	_ "github.com/klauspost/reedsolomon"
)
