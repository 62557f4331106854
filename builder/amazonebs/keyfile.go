package amazonebs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// writeKeyFile writes a private key to a new file only this user can
// read: O_EXCL so that an existing file (or a symlink planted there) is
// never written through or left with its own mode, O_NOFOLLOW where the
// system has it, 0600 from creation.
func writeKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write debug key file %s: a file (or link) of that name exists; remove it (a killed -debug run's: `amibake cleanup --all` removes it) and run again", path)
	}
	if err != nil {
		return fmt.Errorf("write debug key file: %w", err)
	}
	_, err = f.Write(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write debug key file %s: %w", path, err)
	}
	return nil
}
