package keys

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// ReadNodeID returns the node ID of the identity kept in data directory
// dir, without creating, rotating or writing anything: for a command that
// reports on a node that may be running (`veil status`), where Open would
// make keys for a node that never ran. The key file gets Open's checks; a
// missing one is an *Error satisfying errors.Is(err, fs.ErrNotExist).
func ReadNodeID(dir string) (NodeID, error) {
	path := filepath.Join(dir, IdentityFile)
	b, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NodeID{}, &Error{Path: path, Msg: "no identity: the node has never started with this data_dir", Err: err,
			Hint: "start the node once, or point data_dir at the directory it uses"}
	}
	if err != nil {
		return NodeID{}, err
	}
	id, err := parseIdentityFile(b)
	if err != nil {
		return NodeID{}, &Error{Path: path, Msg: err.Error(), Hint: hintDamagedIdentity, Err: ErrDamaged}
	}
	return id.ID(), nil
}
