//go:build !unix

package manifest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"
)

// lock creates name exclusively, as Packer does, waiting while another
// writer holds it.
func lock(ctx context.Context, name string) (func(), error) {
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
