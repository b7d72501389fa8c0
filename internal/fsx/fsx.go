// Package fsx holds the few file-system steps that both the part file and the
// manifest need to be durable.
package fsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
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

// Plain restates a failure to open or read a file given by the user in
// plain words, "PATH is a folder, not a file" rather than "read PATH: is a
// directory"; other errors are returned as they are.
func Plain(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("%s is a folder, not a file", pe.Path)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", pe.Path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s cannot be read: permission denied", pe.Path)
	}
	return err
}
