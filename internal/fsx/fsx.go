// Package fsx holds the few file-system steps that both the part file and the
// manifest need to be durable.
package fsx

import (
	"errors"
	"os"
)

// SyncDir fsyncs the folder dir so that a rename or a removal inside it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// CloseOnError closes f when *err is non-nil, adding any close error to it.
func CloseOnError(f *os.File, err *error) {
	if *err != nil {
		*err = errors.Join(*err, f.Close())
	}
}
